"""The multiclass SVM (hinge) loss, PyTorch's ``multi_margin_loss(input, target, p=1, margin=1,
reduction='mean')``: ℓ_n = Σ_{j ≠ y_n} max(0, margin − x[n, y_n] + x[n, j]) / C, with C classes.

The sum over j ≠ y_n is written as CS231n does, the sum over every j less its term j = y_n, which
is ReLU(margin): Σ_j ReLU(margin − x[n, y_n] + x[n, j]) − ReLU(margin). The derivative (a step H
of each margin, the y_n column collecting minus their sum) then contracts like any other sum.
Note PyTorch's 1/C, which CS231n's L_i leaves out. Only p = 1 and no ``weight``.
"""
import sympy as sp

from ..errors import ShapeError
from ..functions import relu
from ..indices import fresh_index
from .base import entry
from .losses import BATCH_LETTERS, REDUCTIONS, ReducedLoss, class_target
from .registry import LayerKind, TorchOp, register


class MultiMarginLoss(ReducedLoss):
    """(1/C) (Σ_j ReLU(margin − x[n, y_n] + x[n, j]) − ReLU(margin)), reduced.

    >>> from symderive.tensors import Tensor
    >>> MultiMarginLoss('L', Tensor('s', (3,)), Tensor('y', ())).definition()
    Sum(relu(s[j] - s[y] + 1), (j, 0, 2))/3 - 1/3
    """

    kind = "multi_margin_loss"
    letters = BATCH_LETTERS

    def __init__(self, name, input, target, p=1, margin=1, reduction="mean"):
        if sp.sympify(p) != 1:
            raise ShapeError("multi_margin_loss: only p=1 (the hinge) is supported")
        if not class_target(self.kind, input, target):
            raise ShapeError(f"multi_margin_loss: the target holds class indices, of shape {input.shape[:-1]}")
        self.input, self.target, self.margin = input, target, sp.sympify(margin)
        super().__init__(name, [input, target], input.shape[:-1], reduction)

    def domains(self):
        return {self.target.name: ("labels", self.input.shape[-1])}

    def term(self, idx, avoid):
        classes = self.input.shape[-1]
        j = fresh_index(classes, set(avoid), ("j", "k", "l", "m"))
        y = entry(self.target, idx)
        margin = self.margin - entry(self.input, idx + (y,)) + entry(self.input, idx + (j,))
        return (sp.Sum(relu(margin), (j, 0, classes - 1)) - relu(self.margin)) / classes


def _torch_multi_margin(layer, get, num):
    import torch.nn.functional as F
    return F.multi_margin_loss(get(layer.input), get(layer.target).long(), margin=float(layer.margin),
                               reduction=layer.reduction)


register(LayerKind("multi_margin_loss", MultiMarginLoss, ("input", "target"), options=("p", "margin", "reduction"),
                   numbers=("margin",), choices={"reduction": REDUCTIONS},
                   torch=TorchOp("torch.nn.functional.multi_margin_loss", _torch_multi_margin)))
