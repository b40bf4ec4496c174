"""Huber loss, PyTorch's ``huber_loss(input, target, reduction='mean', delta=1.0)``, and
``smooth_l1_loss(input, target, reduction='mean', beta=1.0)`` = huber_loss with delta = beta,
divided by beta. With d = input − target entry by entry, Huber is d²/2 where |d| < delta, else
delta (|d| − delta/2); written ½ d² − ½ ReLU(|d| − delta)², the same function without cases, so
its derivative d − ReLU(|d| − delta) · sign(d) (d clipped to ±delta) contracts like any other."""
import sympy as sp

from ..errors import ShapeError
from ..functions import relu
from .base import entry
from .losses import REDUCTIONS, ReducedLoss, same_shape
from .registry import LayerKind, TorchOp, register


class HuberLoss(ReducedLoss):
    """½ d² − ½ ReLU(|d| − delta)², divided by delta for smooth L1.

    >>> from symderive.tensors import Tensor
    >>> HuberLoss('E', Tensor('x', (2,)), Tensor('t', (2,)), delta=2, reduction='none').definition((0,))
    (-t[0] + x[0])**2/2 - relu(Abs(t[0] - x[0]) - 2)**2/2
    """

    def __init__(self, name, input, target, reduction="mean", delta=1, smooth_l1=False):
        self.kind = "smooth_l1_loss" if smooth_l1 else "huber_loss"
        self.input, self.target, self.delta, self.smooth_l1 = input, target, sp.sympify(delta), smooth_l1
        if not self.delta.is_positive:
            raise ShapeError(f"{self.kind}: {'beta' if smooth_l1 else 'delta'} must be positive, got {self.delta}")
        same_shape(self.kind, input, target)
        super().__init__(name, [input, target], input.shape, reduction)

    def term(self, idx, avoid):
        d = entry(self.input, idx) - entry(self.target, idx)
        huber = d ** 2 / 2 - relu(sp.Abs(d) - self.delta) ** 2 / 2
        return huber / self.delta if self.smooth_l1 else huber


def _torch_huber(layer, get, num):
    import torch.nn.functional as F
    if layer.smooth_l1:
        return F.smooth_l1_loss(get(layer.input), get(layer.target), reduction=layer.reduction, beta=float(layer.delta))
    return F.huber_loss(get(layer.input), get(layer.target), reduction=layer.reduction, delta=float(layer.delta))


register(
    LayerKind("huber_loss", HuberLoss, ("input", "target"), options=("reduction", "delta"), numbers=("delta",),
              choices={"reduction": REDUCTIONS}, torch=TorchOp("torch.nn.functional.huber_loss", _torch_huber)),
    LayerKind("smooth_l1_loss",
              lambda n, x, t, reduction="mean", beta=1: HuberLoss(n, x, t, reduction, beta, smooth_l1=True),
              ("input", "target"), options=("reduction", "beta"), numbers=("beta",),
              choices={"reduction": REDUCTIONS}, torch=TorchOp("torch.nn.functional.smooth_l1_loss", _torch_huber)),
)
