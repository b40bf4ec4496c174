"""What an answer is compared with: the engine's results for a question, typed.

Each ``Result`` of the engine's ``Answer`` becomes a ``Target`` by its kind
(``answer.Kind``, set by the ask): a shape, an element formula with its free indices
(the result's ``axes``: the output's and the variable's, in the order of the
question's left side), explicit entries, a number, a list or a word. The
``meaning.Context`` for reading the student's answer is built here too: the
question's scope, the upstream gradient of a chain-rule question, the state of a
recurrence.
"""
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import sympy as sp

from .meaning import Context

@dataclass
class Target:
    label: str
    kind: str                  # shape, element, entries, value, word, tuple
    value: object
    axes: tuple = ()           # ((group, Idx), ...) of an element formula
    alt_shapes: tuple = ()     # other accepted shapes (a Jacobian as its flattened matrix)
    latex: str = ""
    key: str = ""              # the result's key (answer.Result.key)
    components: tuple = ()     # what each entry of a tuple counts ("with bias", "without bias")
    row: int = 0               # for one row of an explicit matrix (∂y_k/∂x): k, the row's place in the whole
    blocks: tuple = ()         # a matrix printed by blocks: answer.Result.blocks


@dataclass
class QuestionInfo:
    """Everything about one question that checking needs, built once per question."""
    problem: object
    question: object
    answer: object
    targets: list
    context_args: dict
    constraints: list = field(default_factory=list)
    values: dict = field(default_factory=dict)       # scalar tensors with declared values
    tolerance: object = None
    definitions: list = field(default_factory=list)   # inner layers of declared ones (attention's y_scores)
    #: {name: course_forms.Intermediate} backprop's δ's: names in what is graded, their values computed
    #: from these definitions at each test point (compare.numeric_equal)
    computed: dict = field(default_factory=dict)
    checkable: bool = True
    reason: str = ""

    def context(self):
        return Context(**self.context_args)


def question_info(problem, question, answer):
    from ..answer import Status
    decls = problem.declarations(question)
    args = {"scope": decls, "base": problem.index_base}
    info = QuestionInfo(problem, question, answer, [], args)
    from .tolerance import read_tolerance
    info.tolerance = read_tolerance(question)
    if question.ask == "text" or answer.status is Status.AUTHORED:
        info.checkable, info.reason = False, "an authored-text question: there is nothing to compare with"
        return info
    if answer.status is Status.FAILED:
        info.checkable, info.reason = False, f"the engine could not answer this question: {answer.error}"
        return info
    from ..asks import ASKS
    ask = ASKS.get(question.ask)
    if ask is not None and ask.grading is not None:      # what reading an answer to this ask needs
        extra = dict(ask.grading(question, decls))
        info.constraints = list(extra.pop("constraints", []))
        args.update(extra)
    for name, tensor in all_tensors(decls).items():
        value = getattr(tensor, "value_spec", None)
        if not tensor.shape and isinstance(value, (int, float)) and not isinstance(value, bool):
            info.values[tensor.base] = sp.Rational(str(value))
    from .aliases import read_aliases
    args["aliases"] = read_aliases(question, decls)
    info.targets = _targets(answer)
    # The names the sheet defines (ŷ, P, the one-hot Y; course_forms.Intermediate): a student may write them,
    # and a boxed result written with them is graded as what they stand for
    recorded = {name: i for name, i in getattr(answer, "intermediates", {}).items() if decls.lookup(name) is None}
    defined = {name: i for name, i in recorded.items() if not i.computed}
    if recorded:
        from dataclasses import replace
        from ..course_forms import expand_intermediates
        readable = dict(defined)
        for i in defined.values():                    # Ŷ for P: where the question and the sheet leave it free
            readable.update({other: i for other in i.also if other not in readable and decls.lookup(other) is None})
        args["definitions"] = readable
        for t in info.targets:
            if t.kind == "element":
                t.value = expand_intermediates(t.value, defined)
        # backprop's δ's stay names (sheet_names makes them tensors); their values are computed from these
        info.computed = {name: replace(i, element=expand_intermediates(i.element, defined))
                         for name, i in recorded.items() if i.computed}
    info.definitions = inner_layer_definitions(info.targets, decls, [i.element for i in recorded.values()])
    # names in those definitions (an inner layer's own inner layers, y_k under y_scores) get values drawn
    args["extra_tensors"], args["constants"] = sheet_names(answer, decls, info.targets,
                                                           [i.element for i in info.computed.values()]
                                                           + [d[2] for d in info.definitions])
    args["used_names"] = used_names(info.targets, info.definitions, decls,
                                    [i.element for i in info.computed.values()])
    args["sheet_step"] = any(isinstance(e, sp.Basic) and e.has(sp.Heaviside)
                             for e in [t.value for t in info.targets] + [d[2] for d in info.definitions]
                             + [i.element for i in info.computed.values()])
    args["unused_sizes"] = unused_sizes(decls)
    args["question_indices"] = tuple(sorted({i.name for t in info.targets for _, i in t.axes}))
    if not info.targets:
        info.checkable, info.reason = False, "the engine's answer has nothing an answer can be compared with"
    return info


def sheet_names(answer, decls, targets, definitions=()):
    """({name: Tensor}, {name: value}): the names the answer sheet itself introduces, so that a boxed
    answer pasted back reads: backpropagation's δ^{z_1} (an IndexedBase of the engine's answer that the
    question does not declare: delta__z1) and a numeric pass's abbreviations τ_k (their exact values)."""
    from ..tensors import Tensor
    tensors = {}
    for t in [*targets, *(SimpleNamespace(value=d) for d in definitions)]:
        value = t.value
        exprs = list(value) if isinstance(value, (tuple, sp.MatrixBase)) else [value]
        for e in exprs:
            atoms = getattr(e, "atoms", None)
            for base in (atoms(sp.IndexedBase) if atoms is not None else ()):
                name = base.label.name
                if name in tensors or not base.shape:
                    continue
                try:
                    if decls.lookup(name) is not None:
                        continue
                except Exception:
                    pass
                tensor = Tensor(name, base.shape)
                tensor.base = base
                tensors[name] = tensor
    for base, _, _, tex in getattr(answer, "definitions", ()) or ():
        name = base.label.name
        if name in tensors or not base.shape or decls.lookup(name) is not None:
            continue
        tensor = Tensor(name, base.shape)
        tensor.base = base
        tensors[name] = tensor
        hat = re.fullmatch(r"\{?\\hat\{(\w)\}\}?", tex or "")
        if hat:                                   # \hat{y} reads as the name hat:y
            tensors.setdefault(f"hat:{hat.group(1)}", tensor)
    constants = {str(symbol): value for symbol, value in getattr(answer, "abbreviations", {}).items()}
    return tensors, constants


def inner_layer_definitions(targets, decls, extra=()):
    """Definitions of the layers built inside a declared one that the engine's answer names (an attention
    layer y's scores y_scores and weights y_weights), in its results or in the ``extra`` expressions (the
    definitions of the names its sheet introduces: P = y_weights): an answer that writes them out
    (Q K^T/√E) compares with them, instead of with random values drawn for a name the question does not
    declare."""
    used = set()
    for value in [t.value for t in targets] + list(extra):
        for e in (list(value) if isinstance(value, (tuple, sp.MatrixBase)) else [value]):
            if isinstance(e, sp.Basic):
                used |= {a.base.label.name for a in e.atoms(sp.Indexed)}
    out, seen = [], set()
    for node in all_tensors(decls).values():
        if not getattr(node, "is_layer", False):
            continue
        for name, inner in node.layer_inputs().items():
            if name in used and name not in seen and inner.shape and decls.lookup(name) is None:
                seen.add(name)
                idx = inner.free_indices()
                out.append((inner.base, tuple(idx), inner.element(idx, expand=False), inner.tex))
    return out


def unfold(expr, definitions):
    """``expr`` with every entry of a defined tensor (δ^{z_1}, ŷ) replaced by its definition, until none is
    left, so that an answer written out in the forward layers and one using the sheet's names compare.
    The definitions' summation indices are renamed on each use, so that nothing is captured."""
    by_base = {d[0]: d for d in definitions}
    if not by_base or not isinstance(expr, sp.Basic):
        return expr
    for _ in range(len(by_base) + 1):
        found = [a for a in expr.atoms(sp.Indexed) if a.base in by_base]
        if not found:
            break
        expr = expr.xreplace({a: _fresh_bound(by_base[a.base][2]).xreplace(dict(zip(by_base[a.base][1], a.indices)))
                              for a in found})
    return expr


def _fresh_bound(expr):
    if isinstance(expr, sp.Sum):
        body, limits = _fresh_bound(expr.function), []
        for var, lo, hi in expr.limits:
            fresh = sp.Dummy(var.name, integer=True)
            body = body.xreplace({var: fresh})
            limits.append((fresh, lo, hi))
        return sp.Sum(body, *limits)
    if expr.args and not isinstance(expr, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return expr.func(*[_fresh_bound(a) for a in expr.args])
    if isinstance(expr, sp.Indexed):
        return expr.func(expr.base, *[_fresh_bound(i) for i in expr.indices])
    return expr


def used_names(targets, definitions, decls, computed=()):
    """The tensors and layers the engine's answer uses, its definitions written out (and the formulas of
    the δ's it computes, ``computed``), with every layer's inputs: the question's own names."""
    names = set()
    values = [t.value for t in targets] + list(computed)
    for value in values:
        for e in (list(value) if isinstance(value, (tuple, sp.MatrixBase)) else [value]):
            e = unfold(e, definitions) if isinstance(e, sp.Basic) else e
            if isinstance(e, sp.Basic):
                names |= {a.base.label.name for a in e.atoms(sp.Indexed)} | {str(x) for x in e.free_symbols}
    for name in list(names):
        try:
            node = decls.lookup(name)
        except Exception:
            node = None
        if node is not None and getattr(node, "is_layer", False):
            names |= set(node.layer_inputs()) | set(node.leaves())
    return frozenset(names)


def unused_sizes(decls):
    """The declared sizes that no tensor or layer of the question has in its shape (the file's
    ``sizes:`` list serves all its questions)."""
    used = set()
    for t in all_tensors(decls).values():
        for n in getattr(t, "shape", ()) or ():
            used |= {s.name for s in getattr(sp.sympify(n), "free_symbols", ())}
    return tuple(sorted(name for name in decls.sizes if name not in used))


def all_tensors(decls):
    """Every tensor and layer that ``decls`` can name, by name; inner declarations win."""
    out = {}
    chain = []
    node = decls
    while node is not None:
        chain.append(node)
        node = node.parent
    for level in reversed(chain):
        for name in list(level.tensors) + list(level.layer_specs):
            try:
                t = level.lookup(name)
            except Exception:
                continue
            if t is not None:
                out[name] = t
    return out


def _size(x):
    """A dimension of a shape result as SymPy: a size's name is the size symbol, never SymPy's own N
    (``sympify("N")`` is the function N, which made \\text{averaged over } N an internal error).

    >>> _size("N"), _size(3), _size("N").is_positive
    (N, 3, True)
    """
    from ..tensors import size_symbol
    if isinstance(x, str) and x.isidentifier():
        return size_symbol(x)
    return sp.sympify(x)


def _free_idx(expr):
    bound = set()
    for s in expr.atoms(sp.Sum, sp.Product):
        bound |= {lim[0] for lim in s.limits}
    return sorted((i for i in expr.atoms(sp.Idx) if i not in bound), key=lambda i: i.name)


def _targets(answer):
    """The targets of an answer's results, read off each result's kind and axes."""
    from ..answer import Kind
    out = [t for t in (_target(r) for r in answer.results) if t is not None]
    # An exact value and its decimal are one target: the exact one.
    if any(r.kind is Kind.VALUE for r in answer.results):
        decimals = {r.key for r in answer.results if r.kind is Kind.DECIMAL}
        out = [t for t in out if t.key not in decimals]
    return out


def _target(r):
    from ..answer import Kind
    v, label, kind = r.value, str(r.label), r.kind
    if kind is Kind.WORD:
        return Target(label, "word", v, latex=r.latex, key=r.key)
    if kind in (Kind.SHAPE, Kind.TUPLE):
        return Target(label, kind.value, tuple(_size(x) for x in v), alt_shapes=r.alt_shapes,
                      latex=r.latex, key=r.key, components=tuple(getattr(r, "components", ()) or ()))
    if kind is Kind.ENTRIES:
        if isinstance(v, sp.MatrixBase):
            return Target(label, "entries", sp.Matrix(v), latex=r.latex, key=r.key, blocks=tuple(r.blocks))
        if isinstance(v, sp.NDimArray) and v.rank() <= 2:
            return Target(label, "entries", v.tomatrix(), latex=r.latex, key=r.key)
        if isinstance(v, sp.NDimArray) and v.rank() in (3, 4) and all(int(n) > 0 for n in v.shape):
            return Target(label, "entries", v, latex=r.latex, key=r.key)      # a list of matrices
        return None
    if kind is Kind.CLAIM:                       # compare with its right side
        free = tuple((None, i) for i in _free_idx(v))
        return Target(label, "element", v.rhs, axes=free, latex=r.latex, key=r.key)
    if kind is Kind.ELEMENT:
        v = sp.sympify(v)
        free = _free_idx(v)
        axes = r.axes
        use = axes if axes and set(i for _, i in axes) >= set(free) else tuple((None, i) for i in free)
        return Target(label, "element", v, axes=use, latex=r.latex, key=r.key)
    if kind in (Kind.VALUE, Kind.DECIMAL):
        if isinstance(v, (int, float)):
            return Target(label, "value", sp.sympify(v), latex=r.latex, key=r.key)
        free = _free_idx(v)
        if free:                                 # a scalar formula in tensor entries
            return Target(label, "element", v, axes=tuple((None, i) for i in free), latex=r.latex, key=r.key)
        if v.is_number:
            return Target(label, "value", v, latex=r.latex, key=r.key)
        return Target(label, "element", v, axes=(), latex=r.latex, key=r.key)
    if kind is Kind.MATRIX_FORM and getattr(r, "claim", None) is not None:    # dY = -Y dX Y: its entry
        return Target(label, "element", r.claim, axes=tuple(r.axes), latex=r.latex, key=r.key)
    return None                                  # matrix forms, facts and text are shown, not graded
