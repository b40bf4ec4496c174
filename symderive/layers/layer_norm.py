"""Layer normalisation, PyTorch's ``F.layer_norm(input, normalized_shape, weight=None, bias=None,
eps=1e-05)``: each entry is normalised with the mean and biased variance over the last
len(normalized_shape) axes, which must be ``normalized_shape``; weight and bias have that shape.

    y[n, i] = γ[i] · (x[n, i] − μ_n) / √(σ²_n + eps) + β[i],  μ_n = (1/D) Σ_i x[n, i].
"""
import sympy as sp

from ..errors import ShapeError
from .normalization import DEFAULT_EPS, Normalize, summed, torch_affine
from .registry import LayerKind, TorchOp, register


class LayerNorm(Normalize):
    """``layer_norm`` over the trailing ``normalized_shape`` axes.

    >>> from symderive.tensors import Tensor
    >>> LayerNorm('y', Tensor('x', (3, 2)), normalized_shape=2).count()
    2
    """

    kind = "layer_norm"
    per = "over the normalized axes"

    def __init__(self, name, x, weight=None, bias=None, normalized_shape=None, eps=DEFAULT_EPS):
        if normalized_shape is None:
            raise ShapeError("layer_norm needs normalized_shape, the trailing axes to normalise over")
        shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
        trailing = tuple(x.shape[x.rank - len(shape):]) if len(shape) <= x.rank else None
        if not shape or trailing is None or any(sp.simplify(sp.sympify(m) - n) != 0 for m, n in zip(shape, trailing)):
            raise ShapeError(f"layer_norm: normalized_shape ({', '.join(map(str, shape))}) must be the last axes "
                             f"of {x.name}, whose shape is ({', '.join(map(str, x.shape))})")
        self.normalized_shape = tuple(sp.sympify(n) for n in shape)
        super().__init__(name, x, weight, bias, eps, self.normalized_shape)

    def describe(self):
        return f"layer_norm over ({', '.join(map(str, self.normalized_shape))}), eps {self.eps}"

    def count(self):
        return sp.Mul(*self.normalized_shape)

    def stats_shape(self):
        return tuple(self.x.shape[:self.x.rank - len(self.normalized_shape)])

    def stats_index(self, idx):
        return tuple(idx[:len(idx) - len(self.normalized_shape)])

    def group(self, at, taken):
        fresh = summed(self.normalized_shape, taken)
        return self.x.base[tuple(at) + fresh], [(i, 0, n - 1) for i, n in zip(fresh, self.normalized_shape)]

    def affine_index(self, idx):
        return tuple(idx[len(idx) - len(self.normalized_shape):])


def _torch_layer_norm(layer, get, num):
    import torch.nn.functional as F
    weight, bias = torch_affine(layer, get)
    return F.layer_norm(get(layer.x), [num(n) for n in layer.normalized_shape], weight, bias, eps=float(layer.eps))


register(LayerKind("layer_norm", LayerNorm, ("input", "weight", "bias"), options=("normalized_shape", "eps"),
                   numbers=("eps",), torch=TorchOp("torch.nn.functional.layer_norm", _torch_layer_norm)))
