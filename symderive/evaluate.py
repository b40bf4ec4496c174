"""Evaluate an index expression at numbers, directly (no ``doit``).

Substituting numbers and calling SymPy's ``doit`` on a large sum-of-sums
expression costs seconds per entry; walking the tree once with the values at
hand costs microseconds per node. Used to check derived forms numerically.

Tensor entries outside their range are zero, as everywhere in symderive.
"""
import math

import sympy as sp

from .functions import forms
from .matrix_functions import OF_ENTRIES, WHOLE_MATRIX, InverseOf


def numpy_inverse(array):
    import numpy
    return numpy.linalg.inv(array)


class CannotEvaluate(Exception):
    pass


def evaluate(expr, arrays, scalars=None, indices=None):
    """The value of ``expr`` as a float.

    ``arrays``: {tensor name: NumPy array}; ``scalars``: {Symbol: number} (sizes, scalar tensors);
    ``indices``: {index symbol: int}.

    >>> import numpy as np
    >>> from symderive.indices import make_index
    >>> x = sp.IndexedBase('x'); j = make_index('j', 3)
    >>> evaluate(sp.Sum(x[j]**2, (j, 0, 2)), {'x': np.array([1.0, 2.0, 3.0])})
    14.0

    A condition on a Piecewise folds into an ITE (the padded max pool's −∞ in a comparison):

    >>> t = sp.Symbol('t')
    >>> e = sp.Piecewise((1, sp.ITE(t > 0, t > 1, t < -1)), (0, True))
    >>> [evaluate(e, {}, {t: v}) for v in (2, 0.5, -2, -0.5)]
    [1.0, 0.0, 1.0, 0.0]
    """
    env = {}
    for k, v in (scalars or {}).items():
        env[k] = float(v)
    for k, v in (indices or {}).items():
        env[k] = int(v)
    return float(_eval(sp.sympify(expr), arrays, env))


def _name_value(e, env):
    if e in env:
        return env[e]
    for k, v in env.items():     # an Idx and the symbol of the same name are the same index
        if getattr(k, "name", None) == getattr(e, "name", object()) and isinstance(v, int):
            return v
    raise CannotEvaluate(f"no value for {e}")


UNARY = forms("math")


def _eval(e, arrays, env):
    if e.is_Number:
        return float(e)
    if isinstance(e, (sp.Symbol, sp.Idx)):
        return _name_value(e, env)
    if e is sp.pi:
        return math.pi
    if e is sp.E:
        return math.e
    if isinstance(e, sp.Indexed):
        array = arrays.get(e.base.label.name)
        if array is None and isinstance(e.base, InverseOf) and e.base.matrix.label.name in arrays:
            array = numpy_inverse(arrays[e.base.matrix.label.name])
        if array is None:
            raise CannotEvaluate(f"no values for {e.base.label.name}")
        at = tuple(int(round(_eval(a, arrays, env))) for a in e.indices)
        if any(not 0 <= a < n for a, n in zip(at, array.shape)):
            return 0.0
        return float(array[at])
    if isinstance(e, sp.Add):
        return sum(_eval(a, arrays, env) for a in e.args)
    if isinstance(e, sp.Mul):
        out = 1.0
        for a in e.args:
            out *= _eval(a, arrays, env)
            if out == 0.0:
                break
        return out
    if isinstance(e, sp.Pow):
        return _eval(e.base, arrays, env) ** _eval(e.exp, arrays, env)
    if isinstance(e, sp.Sum):
        return _sum(e.function, list(e.limits), arrays, env)
    if isinstance(e, sp.KroneckerDelta):
        return 1.0 if _eval(e.args[0], arrays, env) == _eval(e.args[1], arrays, env) else 0.0
    if isinstance(e, sp.Heaviside):
        v = _eval(e.args[0], arrays, env)
        at_zero = float(e.args[1]) if len(e.args) > 1 else 0.5
        return 1.0 if v > 0 else 0.0 if v < 0 else at_zero
    if isinstance(e, sp.Piecewise):
        for value, cond in e.args:
            if _truth(cond, arrays, env):
                return _eval(value, arrays, env)
        return 0.0
    if isinstance(e, (sp.Max, sp.Min)):
        values = [_eval(a, arrays, env) for a in e.args]
        return max(values) if isinstance(e, sp.Max) else min(values)
    if isinstance(e, sp.Mod):
        return _eval(e.args[0], arrays, env) % _eval(e.args[1], arrays, env)
    if isinstance(e, OF_ENTRIES):
        return e.numeric(lambda expr, at: _eval(expr, arrays, {**env, **at}))
    if isinstance(e, WHOLE_MATRIX):
        name = e.args[0].label.name
        if name not in arrays:
            raise CannotEvaluate(f"no values for {name}")
        return e.numeric(arrays[name])
    if type(e) in UNARY:
        return UNARY[type(e)](_eval(e.args[0], arrays, env))
    raise CannotEvaluate(f"cannot evaluate {type(e).__name__}")


def _sum(body, limits, arrays, env):
    var, lo, hi = limits[-1]                     # SymPy lists the innermost sum first
    lo, hi = int(math.ceil(_eval(lo, arrays, env) - 1e-9)), int(math.floor(_eval(hi, arrays, env) + 1e-9))
    total = 0.0
    for value in range(lo, hi + 1):
        inner = {**env, var: value}
        total += _sum(body, limits[:-1], arrays, inner) if len(limits) > 1 else _eval(body, arrays, inner)
    return total


def _truth(cond, arrays, env):
    if cond == sp.true:
        return True
    if cond == sp.false:
        return False
    if isinstance(cond, sp.And):
        return all(_truth(c, arrays, env) for c in cond.args)
    if isinstance(cond, sp.Or):
        return any(_truth(c, arrays, env) for c in cond.args)
    if isinstance(cond, sp.Not):
        return not _truth(cond.args[0], arrays, env)
    if isinstance(cond, sp.ITE):                 # a relation of a Piecewise, folded: ITE(c, then, else)
        c, then, other = cond.args
        return _truth(then if _truth(c, arrays, env) else other, arrays, env)
    a, b = _eval(cond.lhs, arrays, env), _eval(cond.rhs, arrays, env)
    return {sp.Eq: a == b, sp.Ne: a != b, sp.GreaterThan: a >= b, sp.StrictGreaterThan: a > b,
            sp.LessThan: a <= b, sp.StrictLessThan: a < b}[type(cond)]
