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
"""
import functools

from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.cache import cacheit
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


def install():
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
