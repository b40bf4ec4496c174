"""Shared index formula of the normalisation kinds (batch_norm, layer_norm, group_norm): an entry
minus the mean of the entries it is normalised with, over the square root of their biased
variance plus eps, then scaled and shifted.

Each kind says only which entries share its statistics: ``Normalize.group(idx, fresh)`` gives
the entry of x that the summation indices ``fresh`` run over and the limits of those sums.
"""
import sympy as sp

from ..errors import ShapeError
from ..indices import indices_for
from .base import Layer, entry, mark_inner, taken_by
from .cells import Names

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
    """y[idx] = x̂[idx] · weight[w_idx] + bias[w_idx], x̂ = (x − μ) / √(σ² + eps), μ and σ² over the
    group of entries that share idx's statistics.

    μ, σ² and (with a weight or a bias) x̂ are layers of their own, built inside this one: ``mu``,
    ``var`` and ``xhat`` (for an input x; shown μ, var, x̂), or a free variant of these names. A
    derivation goes through them (backpropagation, one δ each), and the gradient is written in them
    as CS231n writes batch norm's dx (``course_forms.standardized``). Without weight and bias the
    layer itself is x̂.

    Subclasses say which entries share statistics (``per``: in words, for the sheet)."""

    per = ""

    def __init__(self, name, x, weight, bias, eps, affine_shape):
        self.x, self.weight, self.bias = x, weight, bias
        self.eps = checked_eps(self.kind, eps)
        for role, t in (("weight", weight), ("bias", bias)):
            if t is not None and (t.rank != len(affine_shape) or any(
                    sp.simplify(m - n) != 0 for m, n in zip(t.shape, affine_shape))):
                raise ShapeError(f"{self.kind}: {role} {t.name} must have shape "
                                 f"({', '.join(map(str, affine_shape))}{',' if len(affine_shape) == 1 else ''}), "
                                 f"not {t.shape}")
        names = Names(name, [t for t in (x, weight, bias) if t is not None])
        self.mean = Statistic(names("mu"), self)
        self.variance = Statistic(names("var"), self, mean=self.mean)
        affine = weight is not None or bias is not None
        self.standardized = Standardized(names(f"{x.name}hat"), self) if affine else None
        inputs = [self.standardized, weight, bias] if affine else [x, self.mean, self.variance]
        super().__init__(name, [t for t in inputs if t is not None], x.shape)
        mark_inner(self, [t for t in (x, weight, bias) if t is not None])

    # Subclasses: the shape of the statistics (one μ per group), the statistics' index of the entry at
    # idx, the entry of x summed over for the statistics at ``at`` with the sums' limits (fresh indices,
    # none named in ``taken``), the number of entries in a group, and the weight's index for idx.
    def stats_shape(self):
        raise NotImplementedError

    def stats_index(self, idx):
        raise NotImplementedError

    def group(self, at, taken):
        raise NotImplementedError

    def count(self):
        """How many entries share one mean (M in μ = (1/M) Σ x)."""
        raise NotImplementedError

    def affine_index(self, idx):
        raise NotImplementedError

    def standardized_entry(self, idx):
        """(x[idx] − μ[·]) / √(σ²[·] + eps), the statistics at idx's group."""
        at = self.stats_index(tuple(idx))
        return (entry(self.x, idx) - entry(self.mean, at)) / sp.sqrt(entry(self.variance, at) + self.eps)

    def definition(self, idx, avoid=()):
        if self.standardized is None:
            return self.standardized_entry(idx)
        y = entry(self.standardized, idx)
        at = self.affine_index(tuple(idx))
        if self.weight is not None:
            y = y * entry(self.weight, at)
        if self.bias is not None:
            y = y + entry(self.bias, at)
        return y


class Statistic(Layer):
    """The mean μ or the biased variance σ² = (1/M) Σ (x − μ)² of a normalisation, one entry per group
    (two passes, as PyTorch: the one-pass (1/M) Σ x² − μ² is the same number but its derivative loses
    digits in float64 when σ² is small, a relative 8e-9 against torch at N = 2)."""

    def __init__(self, name, norm, mean=None):
        self.norm, self.of_mean = norm, mean
        self.kind = f"{norm.kind} {'variance' if mean is not None else 'mean'}"
        super().__init__(name, [norm.x] + ([mean] if mean is not None else []), norm.stats_shape())

    def describe(self):
        return (f"the {'biased variance' if self.of_mean is not None else 'mean'} of {self.norm.x.name} "
                f"{self.norm.per}, for {self.norm.kind}")

    def definition(self, idx, avoid=()):
        x_entry, limits = self.norm.group(tuple(idx), taken_by(avoid, idx))
        body = x_entry if self.of_mean is None else (x_entry - entry(self.of_mean, idx)) ** 2
        return sp.Sum(body, *reversed(limits)) / self.norm.count()


class Standardized(Layer):
    """x̂ = (x − μ) / √(σ² + eps) of a normalisation with a weight or a bias."""

    def __init__(self, name, norm):
        self.norm = norm
        self.kind = f"{norm.kind} standardized input"
        super().__init__(name, [norm.x, norm.mean, norm.variance], norm.x.shape)

    def describe(self):
        return f"{self.norm.x.name} standardized, for {self.norm.kind}"

    def definition(self, idx, avoid=()):
        return self.norm.standardized_entry(idx)


def torch_affine(layer, get):
    return (get(layer.weight) if layer.weight is not None else None,
            get(layer.bias) if layer.bias is not None else None)
