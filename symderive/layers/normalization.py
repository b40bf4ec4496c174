"""Shared index formula of the normalisation kinds (batch_norm, layer_norm, group_norm): an entry
minus the mean of the entries it is normalised with, over the square root of their biased
variance plus eps, then scaled and shifted.

Each kind says only which entries share its statistics: ``Normalize.group(idx, fresh)`` gives
the entry of x that the summation indices ``fresh`` run over and the limits of those sums.
"""
import sympy as sp

from ..errors import ShapeError
from ..indices import indices_for
from .base import Layer, entry, taken_by

#: PyTorch's default eps, exact so that numeric passes stay exact.
DEFAULT_EPS = sp.Rational(1, 100000)

SUM_LETTERS = ("a", "b", "e", "f", "h", "m", "q", "t", "u", "v")


def summed(shape, taken):
    """Fresh summation indices over ``shape``, none named in ``taken``."""
    return indices_for(shape, taken, SUM_LETTERS)


def checked_eps(kind, eps):
    """eps as an exact positive number (PyTorch divides by √(σ² + eps); eps ≤ 0 can divide by 0).

    >>> checked_eps("layer_norm", sp.Rational(1, 10))
    1/10
    """
    eps = sp.sympify(eps)
    if not (eps.is_number and eps.is_real and eps > 0):
        raise ShapeError(f"{kind}: eps must be a positive number, got {eps}")
    return eps


class Normalize(Layer):
    """y[idx] = (x[idx] − μ) / √(σ² + eps) · weight[w_idx] + bias[w_idx], μ and σ² over the group."""

    def __init__(self, name, x, weight, bias, eps, affine_shape):
        self.x, self.weight, self.bias = x, weight, bias
        self.eps = checked_eps(self.kind, eps)
        for role, t in (("weight", weight), ("bias", bias)):
            if t is not None and (t.rank != len(affine_shape) or any(
                    sp.simplify(m - n) != 0 for m, n in zip(t.shape, affine_shape))):
                raise ShapeError(f"{self.kind}: {role} {t.name} must have shape "
                                 f"({', '.join(map(str, affine_shape))}{',' if len(affine_shape) == 1 else ''}), "
                                 f"not {t.shape}")
        super().__init__(name, [t for t in (x, weight, bias) if t is not None], x.shape)

    # Subclasses: the entry of x summed over to get idx's statistics and the sums' limits (fresh
    # indices, none named in ``taken``), and the weight's index for idx.
    def group(self, idx, taken):
        raise NotImplementedError

    def affine_index(self, idx):
        raise NotImplementedError

    def count(self):
        """How many entries share one mean (M in μ = (1/M) Σ x)."""
        raise NotImplementedError

    def _statistics(self, idx, taken):
        """μ = (1/M) Σ x and the biased σ² = (1/M) Σ (x − μ)², two passes as PyTorch: the one-pass
        (1/M) Σ x² − μ² is the same number and evaluates faster, but its derivative loses digits in
        float64 when σ² is small (a relative 8e-9 against torch at N = 2)."""
        x_entry, limits = self.group(idx, taken)
        mean = sp.Sum(x_entry, *reversed(limits)) / self.count()
        taken = taken | {str(v) for v, _, _ in limits}
        x_entry, limits = self.group(idx, taken)
        variance = sp.Sum((x_entry - mean) ** 2, *reversed(limits)) / self.count()
        return mean, variance

    def definition(self, idx, avoid=()):
        taken = taken_by(avoid, idx)
        mean, variance = self._statistics(tuple(idx), taken)
        y = (entry(self.x, idx) - mean) / sp.sqrt(variance + self.eps)
        at = self.affine_index(tuple(idx))
        if self.weight is not None:
            y = y * entry(self.weight, at)
        if self.bias is not None:
            y = y + entry(self.bias, at)
        return y


def torch_affine(layer, get):
    return (get(layer.weight) if layer.weight is not None else None,
            get(layer.bias) if layer.bias is not None else None)
