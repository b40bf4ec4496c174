"""Negative log-likelihood, PyTorch's ``nll_loss(input, target, reduction='mean')``: ``input``
holds log-probabilities (C,) or (N, C) (a ``log_softmax`` layer), ``target`` class indices () or
(N,); ℓ_n = −input[n, y_n]. With ``log_softmax`` in front it is ``cross_entropy``."""
from .base import entry
from .losses import BATCH_LETTERS, REDUCTIONS, ReducedLoss, class_target
from .registry import LayerKind, TorchOp, register
from ..errors import ShapeError


class NLLLoss(ReducedLoss):
    """−input[n, y_n], reduced.

    >>> from symderive.tensors import Tensor
    >>> NLLLoss('E', Tensor('a', (2, 3)), Tensor('y', (2,)), reduction='sum').definition()
    Sum(-a[n, y[n]], (n, 0, 1))
    """

    kind = "nll_loss"
    letters = BATCH_LETTERS

    def __init__(self, name, input, target, reduction="mean"):
        self.input, self.target = input, target
        if not class_target(self.kind, input, target):
            raise ShapeError(f"nll_loss: the target must hold class indices, of shape {input.shape[:-1]} "
                             "(for probabilities use cross_entropy)")
        super().__init__(name, [input, target], input.shape[:-1], reduction)

    def domains(self):
        return {self.target.name: ("labels", self.input.shape[-1])}

    def term(self, idx, avoid):
        return -entry(self.input, idx + (entry(self.target, idx),))


def _torch_nll_loss(layer, get, num):
    import torch.nn.functional as F
    return F.nll_loss(get(layer.input), get(layer.target).long(), reduction=layer.reduction)


register(LayerKind("nll_loss", NLLLoss, ("input", "target"), options=("reduction",),
                   choices={"reduction": REDUCTIONS},
                   torch=TorchOp("torch.nn.functional.nll_loss", _torch_nll_loss)))
