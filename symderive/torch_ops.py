"""SymPy expressions evaluated numerically, for cross-checking derived results: with torch ops
(autograd runs through them) for the torch side, with NumPy float64 for the engine's side.

The torch counterpart of each layer kind is registered by the kind's own module under
``symderive/layers/``. torch is imported lazily, inside the functions: importing this module
never needs it.
"""
import sympy as sp
from sympy.core.cache import cacheit

from .errors import VerifyError
from .functions import forms
from .matrix_functions import WHOLE_MATRIX, InverseOf


def _torch():
    import torch
    return torch


# ---------------------------------------------------------------------------------------------
# SymPy expressions evaluated numerically: with torch ops (autograd runs through them) for the
# torch side, with NumPy float64 for the engine's side. Sums are iterated, never rewritten.
# ---------------------------------------------------------------------------------------------
class _Numbers:
    """The operations ``evaluate`` needs, on one kind of number."""

    def __init__(self, const, functions, heaviside, maximum, minimum, power, matrix=None, linalg=None):
        self.const, self.functions, self.heaviside = const, functions, heaviside
        self.maximum, self.minimum, self.power = maximum, minimum, power
        self.matrix, self.linalg = matrix, linalg or {}   # rows of numbers -> a matrix; det, logdet, inv


def _float_numbers():
    import numpy as np
    return _Numbers(
        np.float64, forms("numpy"),
        lambda v, at_zero: np.heaviside(v, at_zero), np.maximum, np.minimum, np.power,
        lambda rows: np.array(rows, dtype=float),
        {"det": np.linalg.det, "logdet": lambda m: np.linalg.slogdet(m)[1] if np.linalg.det(m) > 0 else np.nan,
         "inv": np.linalg.inv})


def _torch_numbers():
    torch = _torch()

    def const(v):
        return torch.tensor(float(v), dtype=torch.float64)
    return _Numbers(
        const, {function: getattr(torch, name) for function, name in forms("torch").items()},
        lambda v, at_zero: torch.heaviside(v, const(at_zero)), torch.maximum, torch.minimum,
        lambda b, e: b ** e if not isinstance(e, torch.Tensor) else torch.pow(b, e),
        lambda rows: torch.stack([torch.stack(list(row)) for row in rows]),
        {"det": torch.linalg.det, "logdet": torch.logdet, "inv": torch.linalg.inv})


def to_torch(expr, lookup, env=None):
    """Evaluate a SymPy expression in float64 torch (see ``evaluate``); autograd runs through it."""
    return evaluate(expr, lookup, env, _torch_numbers())


def to_float(expr, lookup, env=None):
    """Evaluate a SymPy expression in NumPy float64 (see ``evaluate``); no torch involved.

    >>> import sympy as sp
    >>> from symderive.indices import make_index
    >>> x, j = sp.IndexedBase('x'), make_index('j', 3)
    >>> float(to_float(sp.Sum(x[j] ** 2, (j, 0, 2)), lambda a: float(a.indices[0])))
    5.0
    """
    return evaluate(expr, lookup, env, _float_numbers())


def integer_value(expr, env):
    """An integer index expression at ``env``: indices by name (str keys), sizes by their symbol
    (``Symbol`` keys), so that a summation index k and a size k never mix."""
    e = sp.sympify(expr)
    if e.is_Integer:
        return int(e)
    indices, symbols, _, _ = _atoms(e)
    subs = {a: sp.Integer(env[a.name]) for a in indices if a.name in env}
    for a in symbols:
        if a in env:
            subs[a] = sp.Integer(env[a])
        elif a.is_integer and not a.is_positive and a.name in env:   # an index as a plain symbol; sizes
            subs.setdefault(a, sp.Integer(env[a.name]))              # are positive and keyed by symbol
    value = e.xreplace(subs)
    if not value.is_Integer:
        raise VerifyError(f"the index expression {e} is not a whole number here ({value})")
    return int(value)


@cacheit
def _atoms(e):
    """(its ``Idx``, its ``Symbol``s, its ``Indexed`` entries, its free symbols that are not entries) of an
    index expression. Memoized: a check evaluates the same few index expressions at every entry (gn-chain's
    cross-check walked them 131,936 times, 3.7 of its 5.1 profiled seconds).

    >>> from symderive.indices import make_index
    >>> j, k, y = make_index('j', 3), sp.Symbol('k', integer=True), sp.IndexedBase('y')
    >>> indices, symbols, entries, others = _atoms(2 * j + k + y[j])
    >>> indices == (j,), k in symbols, entries == (y[j],), sorted(map(str, others))    # y: the entry's label
    (True, True, True, ['j', 'k', 'y'])
    """
    return (tuple(e.atoms(sp.Idx)), tuple(e.atoms(sp.Symbol)), tuple(e.atoms(sp.Indexed)),
            tuple(s for s in e.free_symbols if not isinstance(s, sp.Indexed)))


def evaluate(expr, lookup, env, numbers):
    """The value of ``expr`` with indices (by name) and sizes (by symbol) from ``env``.

    ``lookup(atom)`` gives the value of a tensor entry (an ``Indexed`` whose subscripts are
    already numbers) or of a scalar tensor (a ``Symbol``). Finite sums are iterated with their
    index bound in ``env``; range conditions (``Piecewise``, ``KroneckerDelta``) are decided on
    the index values.
    """
    env = dict(env or {})
    inverses = {}

    def integer(e):
        e = sp.sympify(e)
        # An index read from a tensor of labels: z[n, y[n]], δ(q, y[p]), or a scalar label z[o]
        # (a tensor's symbol is real; sizes and indices are integer symbols).
        _, _, entries, others = _atoms(e)
        labels = {a: a.base[tuple(sp.Integer(integer(i)) for i in a.indices)] for a in entries}
        bases = {a.base.label for a in entries}
        labels.update({s: s for s in others if s not in bases
                       and s.is_real and s.is_integer is not True and s.name not in env})
        if labels:
            e = e.xreplace({a: sp.Integer(_label(lookup(at), a)) for a, at in labels.items()})
        return integer_value(e, env)

    def whole(base):
        """A declared square matrix as one matrix of numbers (for det, log det and X⁻¹)."""
        n = integer(base.shape[0])
        return numbers.matrix([[ev(base[sp.Integer(i), sp.Integer(j)]) for j in range(n)] for i in range(n)])

    def decide(cond):
        if cond in (sp.true, sp.false):
            return bool(cond)
        if isinstance(cond, sp.And):
            return all(decide(c) for c in cond.args)
        if isinstance(cond, sp.Or):
            return any(decide(c) for c in cond.args)
        if isinstance(cond, sp.Not):
            return not decide(cond.args[0])
        if isinstance(cond, sp.core.relational.Relational):
            left, right = ev(cond.lhs), ev(cond.rhs)
            return bool({"==": left == right, "!=": left != right, ">=": left >= right, ">": left > right,
                         "<=": left <= right, "<": left < right}[cond.rel_op])
        raise VerifyError(f"cannot decide the condition {cond}")

    def ev(e):
        if isinstance(e, sp.Indexed) and isinstance(e.base, InverseOf):
            if e.base not in inverses:
                inverses[e.base] = numbers.linalg["inv"](whole(e.base.matrix))
            return inverses[e.base][integer(e.indices[0]), integer(e.indices[1])]
        if isinstance(e, WHOLE_MATRIX):
            return numbers.linalg[type(e).__name__](whole(e.args[0]))
        if isinstance(e, sp.Indexed):
            atom = e.base[tuple(sp.Integer(integer(i)) for i in e.indices)]
            return _number(lookup(atom), numbers)
        if isinstance(e, sp.Symbol) and e in env:
            return numbers.const(env[e])                       # a size
        if isinstance(e, sp.Idx) or (isinstance(e, sp.Symbol) and e.name in env and e.is_integer
                                     and not e.is_positive):
            if e.name not in env:
                raise VerifyError(f"the index {e} has no value here")
            return numbers.const(env[e.name])
        if isinstance(e, sp.Symbol):
            return _number(lookup(e), numbers)
        if e.is_Number or isinstance(e, sp.NumberSymbol):
            return numbers.const(float(e))
        if isinstance(e, sp.Add):
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = out + ev(a)
            return out
        if isinstance(e, sp.Mul):
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = out * ev(a)
            return out
        if isinstance(e, sp.Pow):
            base, exponent = e.args
            return numbers.power(ev(base), float(exponent) if exponent.is_Number else ev(exponent))
        if isinstance(e, sp.Sum):
            return _iterate(e)
        if type(e) in numbers.functions and len(e.args) == 1:
            return numbers.functions[type(e)](ev(e.args[0]))
        if isinstance(e, (sp.Max, sp.Min)):
            fn = numbers.maximum if isinstance(e, sp.Max) else numbers.minimum
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = fn(out, ev(a))
            return out
        if isinstance(e, sp.Heaviside):
            return numbers.heaviside(ev(e.args[0]), float(e.args[1]) if len(e.args) > 1 else 0.5)
        if isinstance(e, sp.Piecewise):
            for value, cond in e.args:
                if decide(cond):
                    return ev(value)
            return numbers.const(0.0)
        if isinstance(e, sp.KroneckerDelta):
            return numbers.const(1.0 if integer(e.args[0]) == integer(e.args[1]) else 0.0)
        if isinstance(e, sp.Mod):          # of whole index expressions: a stride's divisibility condition
            return numbers.const(float(integer(e.args[0]) % integer(e.args[1])))
        raise VerifyError(f"cannot evaluate {type(e).__name__} ({e}) numerically")

    def _iterate(e):
        # Outermost sum first: the bounds of an inner sum may name an outer index.
        body, (var, lo, hi), rest = e.function, e.limits[-1], e.limits[:-1]
        inner = sp.Sum(body, *rest) if rest else body
        saved = env.get(var.name)
        out = numbers.const(0.0)
        for v in range(integer(lo), integer(hi) + 1):
            env[var.name] = v
            out = out + ev(inner)
        if saved is None:
            env.pop(var.name, None)
        else:
            env[var.name] = saved
        return out

    return ev(sp.sympify(expr))


def _label(value, atom):
    """An entry of a tensor of class labels or indices as an int (it must be a whole number)."""
    number = float(value)
    if number != int(number):
        raise VerifyError(f"{atom} is used as an index but its value {number} is not a whole number")
    return int(number)


def _number(value, numbers):
    return numbers.const(value) if isinstance(value, (int, float)) else value
