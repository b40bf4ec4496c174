"""Scalar losses as index formulas: ``cross_entropy`` (logits, soft targets), ``mse`` (mean),
``sum_of_squares``."""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index, indices_for
from ..tensors import numel
from .base import Layer, entry
from .registry import LayerKind, TorchOp, register


def _same_shape(kind, a, b):
    if a.rank != b.rank or any(sp.simplify(m - n) != 0 for m, n in zip(a.shape, b.shape)):
        raise ShapeError(f"{kind}: {a.name} has shape {a.shape} but {b.name} has shape {b.shape}")


class Loss(Layer):
    """Scalar losses: ``cross_entropy`` (logits, soft targets), ``mse`` (mean), ``sum_of_squares``."""

    def __init__(self, name, kind, prediction, target=None):
        self.kind, self.prediction, self.target = kind, prediction, target
        if target is not None:
            _same_shape(kind, prediction, target)
        elif kind != "sum_of_squares":
            raise ShapeError(f"{kind}: needs a target")
        if kind == "cross_entropy" and prediction.rank != 1:
            raise ShapeError("cross_entropy: logits must be a vector (one sample)")
        super().__init__(name, [t for t in (prediction, target) if t is not None], ())

    def definition(self, idx=(), avoid=()):
        ix = indices_for(self.prediction.shape, set(avoid))
        limits = [(i, 0, n - 1) for i, n in zip(ix, self.prediction.shape)]
        y = entry(self.prediction, ix)
        if self.kind == "cross_entropy":
            j = fresh_index(self.prediction.shape[0], set(avoid) | {ix[0].name}, ("j", "k", "l"))
            log_q = y - sp.log(sp.Sum(sp.exp(entry(self.prediction, (j,))),
                                      (j, 0, self.prediction.shape[0] - 1)))
            return -sp.Sum(entry(self.target, ix) * log_q, *limits)
        t = entry(self.target, ix) if self.target is not None else 0
        total = sp.Sum((y - t) ** 2, *limits)
        return total / numel(self.prediction.shape) if self.kind == "mse" else total


def _cross_entropy(layer, get, num):
    # Soft targets: F.cross_entropy with a probability target of the input's shape,
    # -sum_i p[i] log_softmax(z)[i] (targets need not sum to 1).
    import torch.nn.functional as F
    return F.cross_entropy(get(layer.prediction), get(layer.target))


def _mse(layer, get, num):
    import torch.nn.functional as F
    return F.mse_loss(get(layer.prediction), get(layer.target), reduction="mean")


def _sum_of_squares(layer, get, num):
    import torch
    y = get(layer.prediction)
    t = get(layer.target) if layer.target is not None else torch.zeros_like(y)
    return torch.nn.functional.mse_loss(y, t, reduction="sum")


register(
    LayerKind("cross_entropy", lambda n, z, p: Loss(n, "cross_entropy", z, p), ("input", "target"),
              torch=TorchOp("torch.nn.functional.cross_entropy (probability targets)", _cross_entropy)),
    LayerKind("mse", lambda n, y, t: Loss(n, "mse", y, t), ("input", "target"),
              torch=TorchOp("torch.nn.functional.mse_loss", _mse)),
    LayerKind("sum_of_squares", lambda n, y, t=None: Loss(n, "sum_of_squares", y, t), ("input", "target"),
              torch=TorchOp("torch.nn.functional.mse_loss(reduction='sum')", _sum_of_squares)),
)
