"""A memo for the free symbols of a ``Sum`` (SymPy's ``ExprWithLimits.free_symbols``).

SymPy computes a sum's free symbols afresh on every call, and the computation is not cheap: it
``xreplace`` s each summation index by itself, which rebuilds every subtree that contains the
index (new ``Indexed`` entries, new products), then walks the rebuilt body. SymPy asks for them
again and again: ``is_number`` does, and so does every sign or zero question about a product
with a sum in it. Solving the shipped problems asked 33,729 times for 2,941 distinct sums, and
the calls were 14 % of the whole profile (docs/performance.md). A sum is immutable and its free
symbols depend on its structure only, so they are kept per distinct sum in SymPy's own bounded
cache (``cacheit``, which honours ``SYMPY_USE_CACHE``); every caller gets its own copy of the set.
"""
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.cache import cacheit

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


def install():
    ExprWithLimits.free_symbols = property(free_symbols, doc=ExprWithLimits.free_symbols.__doc__)
