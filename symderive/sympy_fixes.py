"""A workaround for a SymPy bug the engine's formulas meet: building ``Sum(f, ...)`` folds every
Piecewise in f to the top (``piecewise_fold``), even one inside an inner Sum whose condition uses
that inner sum's index, which then escapes its sum (SymPy issues #12631, #17919, #29794; fix
proposed in PR #29795). A transposed convolution's guard "0 ≤ j − s·m + p ≤ d(K−1)" inside
Σ_m is such a case: in Σ_j (y[j] − t[j])² the index m was left free.

``install()`` wraps the ``piecewise_fold`` that SymPy's Sum/Integral constructor calls so that it
leaves such an expression unfolded (never folding is always correct; SymPy folds only for
tidiness). It is installed when ``symderive.indices`` is imported, before any formula is built.
"""
import sympy as sp
from sympy.concrete import expr_with_limits
from sympy.core.cache import cacheit

_ORIGINAL = expr_with_limits.piecewise_fold


def binds_a_guard(expr):
    """True when a Piecewise inside a Sum (or Integral) of ``expr`` has a condition on that
    sum's own index, so that folding it to the top would free the index.

    >>> m, j = sp.symbols('m j', integer=True)
    >>> binds_a_guard(sp.Sum(sp.Piecewise((m, j - m >= 0), (0, True)), (m, 0, 3)) + 1)
    True
    >>> binds_a_guard(sp.Sum(sp.Piecewise((m, j >= 0), (0, True)), (m, 0, 3)) + 1)
    False
    """
    for inner in expr.find(lambda e: isinstance(e, expr_with_limits.ExprWithLimits)):
        bound = set(inner.variables)
        for p in inner.function.find(sp.Piecewise):
            if any(cond.free_symbols & bound for _, cond in p.args):
                return True
    return False


@cacheit
def _fold_unless_bound(expr, evaluate=True):
    """Memoized (a pure function of the tree; solving the shipped problems builds 20,457 sums from
    4,912 distinct bodies), and a body without a Piecewise is returned at once, as SymPy's own
    ``piecewise_fold`` does, without first looking for guards."""
    if not isinstance(expr, sp.Basic) or not expr.has(sp.Piecewise):
        return expr
    if binds_a_guard(expr):
        return expr
    return _ORIGINAL(expr, evaluate)


def install():
    expr_with_limits.piecewise_fold = _fold_unless_bound
