"""Evaluate an index expression at numbers, directly (no ``doit``).

Substituting numbers and calling SymPy's ``doit`` on a large sum-of-sums
expression costs seconds per entry; walking the tree once with the values at
hand costs microseconds per node. Used to check derived forms numerically.

Tensor entries outside their range are zero, as everywhere in symderive.
"""
import functools
import math
import operator

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
        out = 0.0
        for a in e.args:          # left to right, as evaluate_grid (Python 3.12's sum() compensates)
            out += _eval(a, arrays, env)
        return out
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


# Every entry at once -------------------------------------------------------------------

#: Largest grid (entries × summation ranges in scope) evaluated as one array; beyond it, entry by entry.
GRID_LIMIT = 1_000_000


class NotVectorized(Exception):
    """An expression (or a size) the array evaluator leaves to the entry-by-entry one."""


def evaluate_grid(expr, idx, dims, arrays, scalars=None):
    """``expr`` at every value of the indices ``idx`` (sizes ``dims``): the array whose entry ``pos``
    is ``evaluate(expr, arrays, scalars, dict(zip(idx, pos)))``.

    The tree is walked once with NumPy arrays: each free index is an axis, each summation index a
    further axis summed away, so a layer costs one walk rather than one walk per entry (the
    multi-head attention form's check walked its layers 3 million times, issue 17). What the arrays
    cannot reproduce exactly (a function of a matrix given entry by entry, a value that is not finite,
    where the entry-by-entry walk raises or short-cuts 0 · ∞) is evaluated entry by entry, as before.

    >>> import numpy as np
    >>> from symderive.indices import make_index
    >>> W, x = sp.IndexedBase('W'), sp.IndexedBase('x')
    >>> i, j = make_index('i', 2), make_index('j', 3)
    >>> w, v = np.arange(6.0).reshape(2, 3), np.array([1.0, 2.0, 3.0])
    >>> evaluate_grid(sp.Sum(W[i, j] * x[j], (j, 0, 2)) / 2, (i,), (2,), {'W': w, 'x': v})
    array([ 4., 13.])
    >>> evaluate_grid(x[i + 2], (i,), (2,), {'x': v})         # outside the tensor: 0
    array([3., 0.])
    """
    import numpy as np
    dims = tuple(int(n) for n in dims)
    expr = sp.sympify(expr)
    if len(idx) == len(dims):
        try:
            with np.errstate(all="ignore"):
                out = np.broadcast_to(np.asarray(_Grid(arrays, scalars, idx, dims).value(expr), dtype=float), dims)
            if np.all(np.isfinite(out)):
                return np.array(out)
        except (NotVectorized, CannotEvaluate, ArithmeticError, ValueError, TypeError):
            pass
    out = np.zeros(dims)
    for pos in np.ndindex(*dims):
        out[pos] = evaluate(expr, arrays, scalars, dict(zip(idx, pos)))
    return out


class _Grid:
    """The array evaluator. The free indices are the last axes, in order; a summation index at depth
    d (d enclosing summation indices) is axis −(free + d + 1), in front of them, and its sum removes
    it again, so arrays of fewer axes broadcast against it as NumPy aligns shapes from the right."""

    def __init__(self, arrays, scalars, idx, dims):
        import numpy
        self.np, self.arrays, self.free = numpy, arrays, len(dims)
        self.scope = [math.prod(dims)]         # entries in scope: the free indices' and each enclosing sum's
        self.env = {k: float(v) for k, v in (scalars or {}).items()}
        self.by_name = {}                      # an Idx and the symbol of the same name are the same index
        for axis, (symbol, n) in enumerate(zip(idx, dims)):
            self.env[symbol] = self.by_name[getattr(symbol, "name", None)] = self._axis(n, len(dims) - axis)

    def _axis(self, values, back):
        """``values`` (a range, or its length) along axis −back."""
        values = self.np.arange(values) if isinstance(values, int) else values
        return values.astype(float).reshape((-1,) + (1,) * (back - 1))

    def value(self, e, depth=0):
        np = self.np
        if e.is_Number:
            return float(e)
        if isinstance(e, (sp.Symbol, sp.Idx)):
            if e in self.env:
                return self.env[e]
            if getattr(e, "name", None) in self.by_name:
                return self.by_name[e.name]
            raise CannotEvaluate(f"no value for {e}")
        if e is sp.pi:
            return math.pi
        if e is sp.E:
            return math.e
        if isinstance(e, sp.Indexed):
            return self._entry(e, depth)
        if isinstance(e, sp.Add):
            out = 0.0
            for a in e.args:
                out = out + self.value(a, depth)
            return out
        if isinstance(e, sp.Mul):
            out = 1.0
            for a in e.args:
                out = out * self.value(a, depth)
            return out
        if isinstance(e, sp.Pow):
            return _floats(_each_function()[1](self.value(e.base, depth), self.value(e.exp, depth)))
        if isinstance(e, sp.Sum):
            return self._sum(e.function, list(e.limits), depth)
        if isinstance(e, sp.KroneckerDelta):
            return np.where(self.value(e.args[0], depth) == self.value(e.args[1], depth), 1.0, 0.0)
        if isinstance(e, sp.Heaviside):
            v = self.value(e.args[0], depth)
            at_zero = float(e.args[1]) if len(e.args) > 1 else 0.5
            return np.where(v > 0, 1.0, np.where(v < 0, 0.0, at_zero))
        if isinstance(e, sp.Piecewise):
            out = 0.0
            for value, cond in reversed(e.args):          # the first condition that holds wins
                out = np.where(self.truth(cond, depth), self.value(value, depth), out)
            return out
        if isinstance(e, (sp.Max, sp.Min)):
            values = np.broadcast_arrays(*[np.asarray(self.value(a, depth), dtype=float) for a in e.args])
            return (np.maximum if isinstance(e, sp.Max) else np.minimum).reduce(values)
        if isinstance(e, sp.Mod):
            return np.mod(self.value(e.args[0], depth), self.value(e.args[1], depth))
        if isinstance(e, WHOLE_MATRIX):
            name = e.args[0].label.name
            if name not in self.arrays:
                raise CannotEvaluate(f"no values for {name}")
            return e.numeric(self.arrays[name])
        if type(e) in UNARY:
            return _floats(_each_function()[0][type(e)](self.value(e.args[0], depth)))
        raise NotVectorized(type(e).__name__)          # OF_ENTRIES and anything new: entry by entry

    def _entry(self, e, depth):
        np = self.np
        array = self.arrays.get(e.base.label.name)
        if array is None and isinstance(e.base, InverseOf) and e.base.matrix.label.name in self.arrays:
            array = numpy_inverse(self.arrays[e.base.matrix.label.name])
        if array is None:
            raise CannotEvaluate(f"no values for {e.base.label.name}")
        array = np.asarray(array, dtype=float)
        if array.ndim != len(e.indices) or 0 in array.shape:
            raise NotVectorized("an entry of a tensor of another rank")
        at = [np.rint(np.asarray(self.value(a, depth), dtype=float)) for a in e.indices]
        inside = True
        for a, n in zip(at, array.shape):
            inside = inside & (a >= 0) & (a < n)
        clipped = tuple(np.clip(a, 0, n - 1).astype(np.intp) for a, n in zip(at, array.shape))
        return np.where(inside, array[clipped], 0.0)

    def _sum(self, body, limits, depth):
        np = self.np
        var, lo, hi = limits[-1]                       # SymPy lists the innermost sum first
        lo = np.ceil(np.asarray(self.value(lo, depth), dtype=float) - 1e-9)
        hi = np.floor(np.asarray(self.value(hi, depth), dtype=float) + 1e-9)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise NotVectorized("an infinite bound")
        start, stop = lo.min(), hi.max()
        if stop < start:
            return 0.0
        back = self.free + depth + 1
        values = self._axis(np.arange(start, stop + 1), back)
        if self.scope[-1] * values.size > GRID_LIMIT:
            raise NotVectorized("a grid too large for one array")
        name = getattr(var, "name", None)
        saved = dict(self.env), dict(self.by_name)
        self.env[var] = self.by_name[name] = values
        self.scope.append(self.scope[-1] * values.size)
        try:
            inner = self._sum(body, limits[:-1], depth + 1) if len(limits) > 1 else self.value(body, depth + 1)
        finally:
            self.env, self.by_name = saved
            self.scope.pop()
        inner, inside = np.broadcast_arrays(inner, (values >= lo) & (values <= hi))
        total = 0.0
        for term, counted in zip(inner, inside):        # axis −back is the first: added in order, as `_sum`
            total = total + np.where(counted, term, 0.0)
        return total

    def truth(self, cond, depth):
        np = self.np
        if cond == sp.true:
            return True
        if cond == sp.false:
            return False
        if isinstance(cond, sp.And):
            return np.logical_and.reduce(np.broadcast_arrays(*[self.truth(c, depth) for c in cond.args]))
        if isinstance(cond, sp.Or):
            return np.logical_or.reduce(np.broadcast_arrays(*[self.truth(c, depth) for c in cond.args]))
        if isinstance(cond, sp.Not):
            return np.logical_not(self.truth(cond.args[0], depth))
        if isinstance(cond, sp.ITE):
            c, then, other = cond.args
            return np.where(self.truth(c, depth), self.truth(then, depth), self.truth(other, depth))
        a, b = self.value(cond.lhs, depth), self.value(cond.rhs, depth)
        compare = {sp.Eq: np.equal, sp.Ne: np.not_equal, sp.GreaterThan: np.greater_equal,
                   sp.StrictGreaterThan: np.greater, sp.LessThan: np.less_equal, sp.StrictLessThan: np.less}
        if type(cond) not in compare:
            raise NotVectorized(type(cond).__name__)
        return compare[type(cond)](a, b)


def _floats(values):
    return values.astype(float) if hasattr(values, "astype") else float(values)


def _each(function, arity):
    """``function`` of Python floats applied to every entry: NumPy's exp, log and power may round the last
    bit differently from ``math``'s, and the sheets print the check's error (1.1e-16), so the arrays
    compute exactly what ``_eval`` does, and raise where it raises (math.log(−1), 0.0 ** −1)."""
    import numpy
    return numpy.frompyfunc(function, arity, 1)


@functools.lru_cache(maxsize=None)
def _each_function():
    """({SymPy function: its math form on every entry}, power on every entry), made when first used (``list``
    loads no NumPy)."""
    return {f: _each(function, 1) for f, function in UNARY.items()}, _each(operator.pow, 2)
