"""Memos for two things SymPy recomputes for the same trees again and again (issue 17): the free
symbols of a ``Sum`` and whether two arguments of a ``Max``/``Min`` are comparable.

**Free symbols of a Sum** (SymPy's ``ExprWithLimits.free_symbols``). SymPy computes a sum's free
symbols afresh on every call, and the computation is not cheap: it
``xreplace`` s each summation index by itself, which rebuilds every subtree that contains the
index (new ``Indexed`` entries, new products), then walks the rebuilt body. SymPy asks for them
again and again: ``is_number`` does, and so does every sign or zero question about a product
with a sum in it. Solving the shipped problems asked 33,729 times for 2,941 distinct sums, and
the calls were 14 % of the whole profile (docs/performance.md). A sum is immutable and its free
symbols depend on its structure only, so they are kept per distinct sum in SymPy's own bounded
cache (``cacheit``, which honours ``SYMPY_USE_CACHE``); every caller gets its own copy of the set.

**Max and Min.** Building ``Max(a, b, …)`` compares every pair of arguments
(``MinMaxBase._is_connected``: ``a >= b``, ``a <= b``, then ``factor_terms(a - b)``), and the
engine rebuilds the same Max whenever it contracts or renames indices in a tree that holds one:
in a profile of three questions, 31 Max/Min built made 900 comparisons (19 % of the profile). The
answer (True, False, Max or Min) depends only on the class and the two arguments.

**Building a Sum** (SymPy's ``expr_with_limits._common_new``, under every ``Sum(...)`` and every
rebuild of one by ``xreplace``/``subs``/``replace``) walks the whole body with
``atoms(Piecewise)`` to find the Piecewise to fold, on every call. Most bodies hold none, and the
same bodies are built again and again: nyu24-1.2.2f built 857 sums, and those walks were 0.59 of
its 6.7 profiled seconds. ``has_piecewise`` answers per distinct subtree (memoized, so a new body
made of old parts costs a lookup per new node); a body without one takes the constructor's path
with nothing to fold, which is SymPy's own result: no Piecewise to mask, and ``piecewise_fold`` of
a tree without a Piecewise is the tree. A body that holds one is folded as SymPy folds it, memoized
per body and summation indices, with its Piecewise found per distinct subtree (the 105 such builds
of 1.2.2f, 71 distinct bodies, walked 0.65 profiled seconds).
"""
import functools

from sympy import ITE, Dummy, S, Piecewise, sympify
from sympy.concrete import expr_with_limits
from sympy.concrete.expr_with_limits import ExprWithLimits, _process_limits
from sympy.core.basic import Basic
from sympy.core.cache import cacheit
from sympy.core.relational import Equality
from sympy.functions.elementary.miscellaneous import MinMaxBase

SYMPY_FREE_SYMBOLS = ExprWithLimits.free_symbols.fget


@cacheit
def _free_symbols(expr):
    return SYMPY_FREE_SYMBOLS(expr)


def free_symbols(self):
    """SymPy's free symbols of a sum (or integral), memoized; a fresh set on each call.

    >>> import sympy as sp
    >>> x, y, i = sp.symbols('x y i')
    >>> s = sp.Sum(x * i, (i, 0, y))
    >>> sorted(s.free_symbols, key=str), s.free_symbols is s.free_symbols
    ([x, y], False)
    """
    return _free_symbols(self).copy()


SYMPY_IS_CONNECTED = MinMaxBase._is_connected.__func__


@cacheit
def is_connected(cls, x, y):
    """SymPy's ``MinMaxBase._is_connected`` memoized.

    >>> import sympy as sp
    >>> x = sp.Symbol('x')
    >>> is_connected(sp.Max, x + 1, x), is_connected(sp.Max, x, x ** 2)
    (Max, False)
    """
    return SYMPY_IS_CONNECTED(cls, x, y)


@cacheit
def has_piecewise(expr):
    """Whether ``expr`` holds a Piecewise anywhere (as ``expr.has(Piecewise)``), memoized for every
    subtree it looks at.

    >>> import sympy as sp
    >>> x = sp.Symbol('x')
    >>> has_piecewise(sp.exp(x) + 1), has_piecewise(1 + sp.Piecewise((x, x > 0), (0, True)))
    (False, True)
    """
    return isinstance(expr, Piecewise) or any(has_piecewise(a) for a in expr.args if isinstance(a, Basic))


@cacheit
def piecewise_atoms(expr):
    """Every Piecewise in ``expr`` (as ``expr.atoms(Piecewise)``), memoized for every subtree.

    >>> import sympy as sp
    >>> x = sp.Symbol('x')
    >>> p = sp.Piecewise((x, x > 0), (0, True))
    >>> e = x * p + sp.Piecewise((p, x < 3), (1, True))
    >>> piecewise_atoms(e) == e.atoms(sp.Piecewise), len(piecewise_atoms(e)), piecewise_atoms(x + 1)
    (True, 2, frozenset())
    """
    found = frozenset({expr}) if isinstance(expr, Piecewise) else frozenset()
    return found.union(*(piecewise_atoms(a) for a in expr.args if isinstance(a, Basic)))


@cacheit
def fold_piecewise(function, symbols_of_integration):
    """SymPy's folding step of ``_common_new``: the Piecewise that hold a summation index are folded
    to the top (``piecewise_fold``, as ``sympy_fixes`` wraps it), the others are masked off first."""
    reps = {p: Dummy() for p in piecewise_atoms(function) if not p.has(*symbols_of_integration)}
    function = expr_with_limits.piecewise_fold(function.xreplace(reps))
    return function.xreplace({v: k for k, v in reps.items()})


SYMPY_COMMON_NEW = expr_with_limits._common_new


def process_limits(symbols, discrete):
    """SymPy's ``_process_limits`` (limits in canonical form, and the orientation), memoized: it
    checks each ``Idx`` bound against the index's range with a comparison (``lo >= idx.lower``,
    assumption queries), and the engine builds sums over the same few limits again and again
    (nyu24-1.2.2f: 6 % of its CPU in a sampling profile). A fresh list for each caller."""
    limits, orientation = _memo_process_limits(symbols, discrete)
    return list(limits), orientation


@cacheit
def _memo_process_limits(symbols, discrete):
    limits, orientation = _process_limits(*symbols, discrete=discrete)
    return tuple(limits), orientation


def common_new(cls, function, *symbols, discrete, **assumptions):
    """SymPy's ``_common_new`` (a sum's or integral's body, limits and orientation), with the search
    for Piecewise to fold memoized, and skipped when the body holds none; the rare cases (an
    equation, NaN, no limits, a Range to change variables for) are left to SymPy's own."""
    function = sympify(function)
    if not symbols or isinstance(function, Equality) or function is S.NaN or not isinstance(function, Basic):
        return SYMPY_COMMON_NEW(cls, function, *symbols, discrete=discrete, **assumptions)
    limits, orientation = process_limits(symbols, discrete)
    if any(len(limit) == 4 for limit in limits):
        return SYMPY_COMMON_NEW(cls, function, *symbols, discrete=discrete, **assumptions)
    while cls == type(function):                        # denest, as SymPy does
        limits = list(function.limits) + limits
        function = function.function
    if has_piecewise(function) and not is_flat_piecewise(function):
        function = fold_piecewise(function, tuple(limit[0] for limit in limits))
    return function, limits, orientation


def is_flat_piecewise(expr):
    """A Piecewise with no Piecewise in its values and no if-then-else in its conditions (a guarded
    body, as ``contract`` writes them): there is nothing to fold, and SymPy's ``piecewise_fold``
    would only build it again from its own arguments, re-evaluating its conditions (8 % of
    nyu24-1.2.2f's CPU). Solving the shipped problems built 249 such sums; rebuilding changed none.
    Leaving a Piecewise unfolded is always correct (``sympy_fixes``).

    >>> import sympy as sp
    >>> x = sp.Symbol('x')
    >>> p = sp.Piecewise((x, x > 0), (0, True))
    >>> is_flat_piecewise(p), is_flat_piecewise(sp.Piecewise((p, x < 3), (1, True))), is_flat_piecewise(x)
    (True, False, False)
    """
    return isinstance(expr, Piecewise) and not any(has_piecewise(value) or cond.has(ITE) for value, cond in expr.args)


def replace(expr, query, value):
    """``expr.replace(query, value)`` for a callable ``query`` and ``value`` (SymPy's default walk:
    arguments first, then the rebuilt node; a node that became an argument's replacement is not
    replaced again), visiting each distinct subtree once. A formula repeats its subtrees (the
    softmax denominator in every term), and ``Basic.replace`` walks and queries every copy:
    nyu24-1.2.2f made 96,727 visits in 805 calls. ``query`` and ``value`` must be pure functions
    of the node, as every caller's are. The walk is ``replacer``'s, with a memo for this call only.

    >>> import sympy as sp
    >>> x, y = sp.symbols('x y')
    >>> e = sp.exp(x + 1) * (x + 1) + sp.sin(x + 1)
    >>> replace(e, lambda n: n == x + 1, lambda n: y) == e.replace(lambda n: n == x + 1, lambda n: y)
    True
    >>> replace([x], lambda n: True, lambda n: y)        # not a SymPy tree (a list, a mutable Matrix): as it is
    [x]
    """
    return replacer(query, value, maxsize=None)(expr) if isinstance(expr, Basic) else expr


def install():
    expr_with_limits._common_new = common_new
    ExprWithLimits.free_symbols = property(free_symbols, doc=ExprWithLimits.free_symbols.__doc__)
    MinMaxBase._is_connected = classmethod(is_connected)


def replacer(query, value, maxsize=1 << 14):
    """``lambda expr: expr.replace(query, value)`` for a pure ``query`` and ``value``, memoized per
    subtree across calls.

    SymPy's ``replace`` walks every node of the tree and asks ``query`` of each, even where the
    same subtree was walked in the previous call. The displays of a run show the same subtrees
    again and again (6,614 distinct subtrees in 100,603 visits), so the walk below, a copy of
    ``Basic.replace``'s (bottom-up, ``simultaneous=True``), keeps each subtree's result. With a
    pure query and value the result depends only on the subtree, so it is the same as SymPy's.

    >>> import sympy as sp
    >>> x, y = sp.symbols('x y')
    >>> double_x = replacer(lambda e: e == x, lambda e: 2 * x)
    >>> double_x(sp.sin(x) + y * x), (sp.sin(x) + y * x).replace(lambda e: e == x, lambda e: 2 * x)
    (2*x*y + sin(2*x), 2*x*y + sin(2*x))
    """
    @functools.lru_cache(maxsize=maxsize, typed=True)
    def walk(rv):
        args = getattr(rv, "args", None)
        if args is None:
            return rv
        if args:
            newargs = tuple([walk(a) for a in args])
            if args != newargs:
                rv = rv.func(*newargs)
                for old, new in zip(args, newargs):   # an argument replaced into rv itself: not again
                    if rv == old and old != new:
                        return rv
        result = query(rv)
        if result or result == {}:
            replaced = value(rv)
            if replaced is not None and replaced != rv:
                rv = replaced
        return rv

    return walk
