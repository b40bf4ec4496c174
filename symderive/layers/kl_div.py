"""KL divergence, PyTorch's ``kl_div(input, target, reduction='mean')``: ``input`` holds
log-probabilities (a ``log_softmax`` layer), ``target`` probabilities, and each entry is
t (log t − input) (``log_target=True`` is not supported). PyTorch's
'mean' divides by every entry; 'batchmean' by the first axis (the batch), which is the KL
divergence per sample."""
import sympy as sp

from .base import entry
from .losses import REDUCTIONS, ReducedLoss, same_shape
from .registry import LayerKind, TorchOp, register

KL_REDUCTIONS = REDUCTIONS + ("batchmean",)


class KLDiv(ReducedLoss):
    """t (log t − input) entry by entry, reduced.

    >>> from symderive.tensors import Tensor
    >>> KLDiv('D', Tensor('a', (2,)), Tensor('t', (2,)), reduction='sum').definition()
    Sum((log(t[i]) - a[i])*t[i], (i, 0, 1))
    """

    kind = "kl_div"

    def __init__(self, name, input, target, reduction="mean"):
        same_shape(self.kind, input, target)
        self.input, self.target = input, target
        super().__init__(name, [input, target], input.shape, reduction, KL_REDUCTIONS)

    def divisor(self):
        if self.reduction == "batchmean":
            return self.items[0] if self.items else sp.Integer(1)
        return super().divisor()

    def domains(self):
        return {self.target.name: ("probabilities",)}

    def term(self, idx, avoid):
        t = entry(self.target, idx)
        return t * (sp.log(t) - entry(self.input, idx))


def _torch_kl_div(layer, get, num):
    import torch.nn.functional as F
    return F.kl_div(get(layer.input), get(layer.target), reduction=layer.reduction)


register(LayerKind("kl_div", KLDiv, ("input", "target"), options=("reduction",), choices={"reduction": KL_REDUCTIONS},
                   torch=TorchOp("torch.nn.functional.kl_div", _torch_kl_div)))
