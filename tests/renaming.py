"""Renaming a problem consistently, and comparing answers up to that renaming.

Used by the capture tests: a renamed problem must give the same answers (up to the renaming,
and up to the names of indices, which carry no meaning) with the same statuses. The renamer
works on the problem's YAML data: declared names (sizes, tensors, layers), the index names of
element formulas, summation indices and the free indices of claims are identifiers in
SymPy-syntax expressions, and every one of them is renamed wherever it occurs. Statements,
notes and other authored text are left alone (they are not read by the engine).
"""
import itertools
import re

import sympy as sp
import yaml

from symderive.declarations import RESERVED
from symderive.functions import KNOWN_CONSTANTS, KNOWN_FUNCTIONS
from symderive.layers import formula_kinds
from symderive.simplify import alpha_normal
from symderive.indices import substitute

#: Identifiers that are never renamed unless declared (functions, constants, layer kinds).
FIXED = set(KNOWN_FUNCTIONS) | set(KNOWN_CONSTANTS) | set(formula_kinds()) | {"Sum", "diff"} | RESERVED
#: An identifier that is not a keyword argument (``stride=2``; ``x == 1`` is not one).
IDENTIFIER = re.compile(r"(?<![\\\w])([A-Za-z][A-Za-z0-9_]*)(?!\w)(?!\s*=(?!=))")
#: Question keys whose values are expressions or names (the upstream gradient's and the loss's
#: names are names too: they must not clash with the others).
EXPRESSION_KEYS = ("of", "wrt", "lhs", "rhs", "constraints", "given", "fold", "upstream", "loss")
#: Names a renaming may use besides the problem's own: the single letters that indices,
#: tensors and layers are most often called by.
POOL = ("i", "j", "k", "l", "m", "n", "p", "q", "r", "s", "t", "x", "y", "z", "a", "b", "c", "g", "h", "w")


def _size_name(size):
    """A size is a name, or a one-key mapping from its name to its options ({K: {tex: T}})."""
    return str(next(iter(size))) if isinstance(size, dict) else str(size)


def _layer_expr(value):
    """A layer is an expression, or a mapping with its expression under 'expr' (and a 'tex')."""
    return str(value.get("expr", "")) if isinstance(value, dict) else str(value)


def _declared(scope):
    names = [_size_name(s) for s in scope.get("sizes") or []]
    names += [str(k) for k in (scope.get("tensors") or {})]
    names += [str(k).split("[")[0].strip() for k in (scope.get("layers") or {})]
    return names


def _texts(scope):
    """Every expression text of one scope (file or question)."""
    out = []
    for shape in (scope.get("tensors") or {}).values():
        shape = shape.get("shape", []) if isinstance(shape, dict) else shape
        out += [s for s in shape or [] if isinstance(s, str)]
    for key, value in (scope.get("layers") or {}).items():
        out += [str(key), _layer_expr(value)]
    for key in EXPRESSION_KEYS:
        value = scope.get(key)
        out += [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
    return out


def scopes(spec):
    return [spec] + list(spec.get("questions") or [])


def question_names(spec, question):
    """The names one question sees: the file's and its own (declared names and indices)."""
    one = {**spec, "questions": [question]}
    return set(renamable_names(one))


def declared_names(spec):
    """Sizes, tensors and layers declared anywhere in the problem (the rest are indices)."""
    return {n for scope in scopes(spec) for n in _declared(scope)}


def index_letters_first(names, perm, declared):
    """An injective renaming from a permutation of the targets: declared names take the next
    target in order, indices the next one-letter target (students, and so the checker, write an
    index as one letter; a multi-letter index is issue 14's), any target when none is left."""
    pool, mapping = list(perm), {}
    for name in names:
        pick = pool[0] if name in declared else next((t for t in pool if len(t) == 1), pool[0])
        pool.remove(pick)
        mapping[name] = pick
    return mapping


def renamable_names(spec):
    """Declared names, then every other identifier the engine reads (indices), in first-seen order."""
    declared = [n for scope in scopes(spec) for n in _declared(scope)]
    others = [m.group(1) for scope in scopes(spec) for text in _texts(scope)
              for m in IDENTIFIER.finditer(text) if m.group(1) not in FIXED]
    return list(dict.fromkeys(declared + others))


def rename_text(text, mapping):
    return IDENTIFIER.sub(lambda m: mapping.get(m.group(1), m.group(1)), text)


def _rename_scope(scope, mapping):
    """The scope with every identifier renamed. Display names (``tex:``) are dropped: they belong to
    the original identifiers (a renamed tensor called x beside one displayed as x would be ambiguous),
    so the renamed problem is shown with the default names of its new identifiers."""
    out = dict(scope)
    if "sizes" in scope and isinstance(scope["sizes"], list):
        out["sizes"] = [mapping.get(_size_name(s), _size_name(s)) for s in scope["sizes"]]
    if isinstance(scope.get("tensors"), dict):
        tensors = {}
        for name, shape in scope["tensors"].items():
            if isinstance(shape, dict):
                shape = {**{k: v for k, v in shape.items() if k != "tex"},
                         "shape": [rename_text(s, mapping) if isinstance(s, str) else s
                                   for s in shape.get("shape", [])]}
            elif isinstance(shape, list):
                shape = [rename_text(s, mapping) if isinstance(s, str) else s for s in shape]
            tensors[mapping.get(str(name), name)] = shape
        out["tensors"] = tensors
    if isinstance(scope.get("layers"), dict):
        out["layers"] = {rename_text(str(k), mapping): rename_text(_layer_expr(v), mapping)
                         for k, v in scope["layers"].items()}
    if isinstance(scope.get("aliases"), dict):   # x_n: "X[n, :]": the tensor is renamed, the alias and its index not
        out["aliases"] = {k: re.sub(r"^\s*([A-Za-z_]\w*)", lambda m: mapping.get(m.group(1), m.group(1)), str(v))
                          for k, v in scope["aliases"].items()}
    for key in EXPRESSION_KEYS:
        value = scope.get(key)
        if isinstance(value, str):
            out[key] = rename_text(value, mapping)
        elif isinstance(value, list):
            out[key] = [rename_text(v, mapping) if isinstance(v, str) else v for v in value]
    return out


def rename_spec(spec, mapping):
    """The problem data with every name in ``mapping`` replaced (an injective map)."""
    out = _rename_scope(spec, mapping)
    if "questions" in spec:
        out["questions"] = [_rename_scope(q, mapping) for q in spec["questions"]]
    return out


def valid_targets(spec):
    """Names a renaming may map to: the problem's own names and the usual single letters."""
    return sorted((set(renamable_names(spec)) | set(POOL)) - FIXED)


def load_spec(text):
    return yaml.safe_load(text)


def dump_spec(spec):
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


# Comparing answers up to the renaming ------------------------------------------------------

def _is_index(symbol):
    return isinstance(symbol, sp.Idx) or (symbol.is_integer and not symbol.is_positive)


def restore_declared(expr, inverse):
    """Give declared names (tensors, layers, sizes: every symbol that is not an index) back their
    original names; indices are left to ``equal_up_to_indices``."""
    if not isinstance(expr, sp.Basic):
        return expr
    labels = {b.label for b in expr.atoms(sp.IndexedBase)}
    replace = {s: sp.Symbol(inverse[s.name], **s._assumptions_orig) for s in expr.atoms(sp.Symbol)
               if s.name in inverse and (s in labels or not _is_index(s)) and not isinstance(s, sp.Idx)}
    # backpropagation's δ of a layer is named after it: delta__z1 is the δ of z1
    replace.update({s: sp.Symbol("delta__" + inverse[s.name[7:]], **s._assumptions_orig) for s in labels
                    if s.name.startswith("delta__") and s.name[7:] in inverse})
    return expr.xreplace(replace) if replace else expr


def free_indices(expr):
    found = set()
    for s in expr.free_symbols:
        if isinstance(s, sp.Idx):
            found.add(s)
        elif isinstance(s, sp.Symbol) and _is_index(s) and not any(
                isinstance(i, sp.Idx) and i.label == s for i in expr.free_symbols):
            found.add(s)
    return sorted(found, key=sp.default_sort_key)


def equal_up_to_indices(a, b):
    """True when b becomes a under some one-to-one renaming of its free indices (bound indices
    compared by their position, whatever their names)."""
    if a == b:
        return True
    fa, fb = free_indices(a), free_indices(b)
    if len(fa) != len(fb) or len(fa) > 6:
        return False
    target = _canonical(a)
    for perm in itertools.permutations(fa):
        if _canonical(substitute(b, dict(zip(fb, perm)))) == target:
            return True
    return False


def _canonical(expr):
    """Bound indices named by position, products and powers multiplied out (inside sums and
    subscripts too): rebuilding an expression after renaming may distribute a factor differently,
    e.g. ceiling((p - 1)/2) against ceiling(p/2 - 1/2)."""
    def rebuild(e):
        if not e.args or isinstance(e, sp.Idx):
            return e
        if isinstance(e, sp.Indexed):
            return e.base[tuple(sp.expand(rebuild(i)) for i in e.indices)]
        return e.func(*[rebuild(a) for a in e.args])

    return sp.expand(rebuild(alpha_normal(expr)))


def same_value(a, b, inverse):
    """Is the renamed problem's result ``b`` the original's ``a``, up to the renaming?"""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and (a == b or rename_text(b, inverse) == a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            same_value(x, y, inverse) for x, y in zip(a, b))
    if isinstance(a, sp.MatrixBase):
        if not isinstance(b, sp.MatrixBase) or a.shape != b.shape:
            return False
        return all(same_value(a[r, c], b[r, c], inverse) for r in range(a.rows) for c in range(a.cols))
    if isinstance(a, sp.Basic):
        b = restore_declared(sp.sympify(b), inverse)
        return equal_up_to_indices(a, b)
    return a == b
