"""Index symbols: creation with ranges, and conversion to the printed index base.

Internally every index is 0-based, as in PyTorch, and is a SymPy ``Idx`` that
knows its range (so ``KroneckerDelta`` and range conditions can use it).
``Idx`` prints its range in LaTeX, and a sheet may use 1-based indices, so
``for_display`` turns each ``Idx`` into a plain integer symbol shifted to the
requested base.
"""
import functools
import itertools

import sympy as sp
from sympy.core.cache import cacheit

from . import indexed_facts, sympy_fixes, sympy_memos

indexed_facts.install()       # every Indexed built re-deduced its base's assumptions (issue 17)
sympy_fixes.install()         # before any formula is built: Sum must not free a guarded inner index
sympy_memos.install()         # Sum free symbols and Max/Min comparisons were recomputed on every call (issue 17)


def _idx_latex(self, printer):
    r"""An index in LaTeX is its letter. SymPy writes its range too, ``{i}_{0\mathrel{..}\nobreak 1}``,
    which MathJax 2 cannot render: a notebook showing ``derivative(y, x).value`` printed ``\nobreak``.
    Set on SymPy's ``Idx`` (``_latex`` is SymPy's hook for a class's own LaTeX); ranges are stated
    by the sheet and by ``ElementDerivative``, not inside every index.

    >>> sp.latex(make_index("i", 3) + 1)
    'i + 1'
    """
    return printer._print(self.label)


sp.Idx._latex = _idx_latex

#: Preferred letters for free and summation indices, in order.
INDEX_LETTERS = ("i", "j", "k", "l", "m", "n", "a", "b", "c", "d", "e", "r", "u", "v")
#: Then i2, j2, ..., v99: built once (building them on every call was 0.7 % of a whole run).
_NUMBERED_NAMES = tuple(f"{p}{n}" for n in range(2, 100) for p in INDEX_LETTERS)


def make_index(name, size):
    """An index running over 0 .. size-1."""
    return sp.Idx(sp.Symbol(name, integer=True), (0, sp.sympify(size) - 1))


def fresh_index(size, avoid, preferred=INDEX_LETTERS):
    """An index over 0..size-1 whose name is not in ``avoid`` (a set of names).

    >>> fresh_index(3, {"i", "j"}).name
    'k'
    """
    for name in itertools.chain(preferred, _NUMBERED_NAMES):
        if name not in avoid:
            return make_index(name, size)
    raise ValueError("ran out of index names")


def indices_for(shape, avoid, preferred=INDEX_LETTERS):
    """One fresh index per dimension of ``shape``, none named in ``avoid``."""
    chosen, taken = [], set(avoid)
    for size in shape:
        idx = fresh_index(size, taken, preferred)
        taken.add(idx.name)
        chosen.append(idx)
    return tuple(chosen)


def names_in(expr):
    """All symbol names that occur in ``expr`` (free or bound), to avoid clashes (a new set)."""
    if not isinstance(expr, sp.Basic):
        return set()
    return set(_names_in(expr))


@cacheit
def _names_in(expr):
    """Memoized for every subtree: solving the shipped problems traversed 631 distinct expressions
    5847 times, and a new expression is mostly old parts (nyu24-1.2.2f: 108 calls of two ``atoms``
    walks each, 0.26 of 5.8 profiled s). The names of every Symbol and Idx in the tree, as
    ``atoms(Symbol)`` and ``atoms(Idx)`` give them."""
    own = (expr.name,) if isinstance(expr, (sp.Symbol, sp.Idx)) else ()
    return frozenset(own).union(*[_names_in(a) for a in expr.args if isinstance(a, sp.Basic)])


def for_display(expr, base=0):
    """Replace each ``Idx`` by a plain symbol and shift indices to ``base`` (0 or 1).

    With base 1 an index value v is printed as v + 1: every ``Idx`` i becomes
    i − 1 inside the expression, every subscript e becomes e + 1, and sum
    limits move up by one.

    >>> x = sp.IndexedBase('x'); i = make_index('i', 5)
    >>> for_display(x[2*i], base=1)
    x[2*i - 1]
    """
    if not isinstance(expr, sp.Basic):
        return expr
    return _for_display(expr, base)


#: Bound of the display memos (entries: one per distinct subtree; a whole run of the shipped problems
#: displays about 6,600 distinct subtrees).
_MEMO = 1 << 14


@cacheit
def _for_display(expr, base):
    """Memoized: a sheet displayed 254 distinct expressions 1105 times."""
    shift = sp.Integer(base)
    found = expr.atoms(sp.Idx)
    if len({idx.name for idx in found}) == len(found):
        # Every index prints as its own name, so each subtree is displayed the same wherever it
        # occurs: rebuilt once per run (a run displays 6,614 distinct subtrees 100,603 times).
        out = _displayed(expr, shift)
    else:
        out = _displayed_primed(expr, shift, found)
    # Tidy affine index arithmetic (e.g. 2*(i - 1) + 1 -> 2*i - 1) inside subscripts.
    return _tidy_subscripts(out)


def _own_name(idx, shift):
    """An index as printed when no other index shares its name: its plain symbol, shifted."""
    return sp.Symbol(idx.name, integer=True) - shift


@functools.lru_cache(maxsize=_MEMO, typed=True)
def _displayed(expr, shift):
    """``_rebuilt`` with every index under its own name: a pure function of the subtree, memoized."""
    return _rebuilt(expr, shift, lambda e: _displayed(e, shift), _own_name)


def _displayed_primed(expr, shift, found):
    """``_rebuilt`` where two different indices share a name: the second is primed, so a subtree's
    display depends on the whole expression, and is reused within this display only."""
    plain, names = {}, {}
    # SymPy's sort key for an Idx ignores its range: break ties by the range, or the order
    # (and so which index gets the prime) would change from run to run.
    for idx in sorted(found, key=lambda i: (sp.default_sort_key(i), str(i.lower), str(i.upper))):
        # Two different indices that share a name must not print as one: prime the second.
        name = idx.name
        while name in names and names[name] != idx:
            name += "'"
        names[name] = idx
        plain[idx] = sp.Symbol(name, integer=True) - shift

    done = {}       # a subtree met again is rebuilt once (a display repeats each about 3 times)

    def rebuild(e):
        if e not in done:
            done[e] = _rebuilt(e, shift, rebuild, lambda idx, _: plain[idx])
        return done[e]

    return rebuild(expr)


def _rebuilt(e, shift, rebuild, plain):
    """One node of ``for_display``: its children through ``rebuild``, each ``Idx`` as ``plain(idx, shift)``.

    >>> i = make_index('i', 3)
    >>> _rebuilt(sp.IndexedBase('x')[i], sp.Integer(1), lambda a: _own_name(a, sp.Integer(1)), _own_name)
    x[i]
    """
    if isinstance(e, sp.Indexed):
        return e.base[tuple(sp.expand(rebuild(a) + shift) for a in e.indices)]
    if isinstance(e, sp.KroneckerDelta):  # compares index values: shift both sides
        return sp.KroneckerDelta(*[sp.expand(rebuild(a) + shift) for a in e.args])
    if isinstance(e, (sp.Sum, sp.Product)):
        body = rebuild(e.function)
        limits = []
        for var, lo, hi in e.limits:
            v = plain(var, shift) + shift if isinstance(var, sp.Idx) else sp.Symbol(var.name, integer=True)
            limits.append((v, sp.expand(rebuild(lo) + shift), sp.expand(rebuild(hi) + shift)))
        return e.func(body, *limits)
    if isinstance(e, sp.Idx):
        return plain(e, shift)
    if not e.args:
        return e
    return e.func(*[rebuild(a) for a in e.args])


_tidy_subscripts = sympy_memos.replacer(lambda e: isinstance(e, sp.Indexed),
                                        lambda e: e.base[tuple(sp.expand(a) for a in e.indices)])


# Capture-free substitution ---------------------------------------------------------------
# A summation index is bound: renaming it never changes a value, but substituting a free name
# into a sum that binds the same name does (Σ_j e^{z_j} with j := the free j of ∂/∂z_j). SymPy's
# ``subs`` and ``xreplace`` both capture, so every substitution into an expression that may hold
# sums goes through ``substitute``, and bound indices are renamed apart first.

_BINDERS = (sp.Sum, sp.Product)


def bound_names(expr):
    """Names of the summation (and product) indices bound anywhere in ``expr``.

    >>> i, j = make_index('i', 3), make_index('j', 3); x = sp.IndexedBase('x')
    >>> sorted(bound_names(x[i] * sp.Sum(x[j], (j, 0, 2))))
    ['j']
    """
    if not isinstance(expr, sp.Basic):
        return set()
    return {limit[0].name for s in expr.atoms(*_BINDERS) for limit in s.limits}


def _renamed(var, name):
    """``var`` (an ``Idx`` or a plain symbol) under another name, same range and assumptions."""
    if isinstance(var, sp.Idx):
        if var.lower is None:
            return sp.Idx(sp.Symbol(name, integer=True))
        return sp.Idx(sp.Symbol(name, integer=True), (var.lower, var.upper))
    return sp.Symbol(name, **var.assumptions0)


def rename_bound_apart(expr, avoid):
    """Rename every bound index named in ``avoid``, or shadowing an enclosing bound index, to a
    name used nowhere in ``expr`` or ``avoid``. The value of ``expr`` does not change.

    >>> i, j = make_index('i', 3), make_index('j', 3); x = sp.IndexedBase('x')
    >>> rename_bound_apart(x[i] * sp.Sum(x[j], (j, 0, 2)), {'j'})
    x[i]*Sum(x[k], (k, 0, 2))
    """
    if not isinstance(expr, sp.Basic) or not expr.has(*_BINDERS):
        return expr
    avoid = set(avoid)
    taken = avoid | names_in(expr)

    chosen = {}                  # the same index in sibling sums keeps one new name

    def fresh(var, enclosing):
        if var in chosen and chosen[var].name not in enclosing:
            return chosen[var]
        preferred = (var.name,) + INDEX_LETTERS
        # Lazily: the list of every candidate (tens of thousands of names) was 3 % of nyu24-1.2.2f.
        candidates = itertools.chain(preferred, (f"{p}{k}" for k in range(2, 1000) for p in preferred))
        name = next(n for n in candidates if n not in taken)
        taken.add(name)
        chosen[var] = _renamed(var, name)
        return chosen[var]

    def walk(e, enclosing):
        """``e`` renamed apart; ``e`` itself when nothing in it is renamed (a layer's definition is
        renamed apart on every use, and usually nothing clashes)."""
        if isinstance(e, _BINDERS):
            limits = [tuple(limit) for limit in e.limits]
            renames = {var: fresh(var, enclosing) for var, *_ in limits if var.name in avoid or var.name in enclosing}
            body = e.function.xreplace(renames) if renames else e.function
            limits = [(renames.get(var, var), *[b.xreplace(renames) for b in bounds]) for var, *bounds in limits]
            inner = enclosing | {limit[0].name for limit in limits}
            new_body = walk(body, inner)
            new_limits = [(var, *[walk(b, enclosing) for b in bounds]) for var, *bounds in limits]
            if not renames and new_body is e.function and all(
                    all(a is b for a, b in zip(new, old)) for new, old in zip(new_limits, e.limits)):
                return e
            return e.func(new_body, *new_limits)
        if not e.args or isinstance(e, (sp.Idx, sp.Indexed, sp.IndexedBase)):
            return e
        args = [walk(a, enclosing) for a in e.args]
        return e if all(a is b for a, b in zip(args, e.args)) else e.func(*args)

    return walk(expr, frozenset())


def substitute(expr, mapping):
    """``expr.xreplace(mapping)`` without capture: a bound index that shares a name with a key or
    with a name in a value is renamed first, so only free occurrences are replaced.

    >>> i, j = make_index('i', 3), make_index('j', 3); x = sp.IndexedBase('x')
    >>> substitute(x[i] * sp.Sum(x[j] * x[i], (j, 0, 2)), {i: j})
    x[j]*Sum(x[j]*x[k], (k, 0, 2))
    """
    if not isinstance(expr, sp.Basic):
        return expr
    if expr.has(*_BINDERS):
        names = set()
        for key, value in mapping.items():
            names |= names_in(key) | names_in(value)
        if names & bound_names(expr):
            expr = rename_bound_apart(expr, names)
    return expr.xreplace(mapping)
