"""Binary cross entropy, PyTorch's ``binary_cross_entropy(input, target, reduction='mean')`` on
probabilities and ``binary_cross_entropy_with_logits(input, target, reduction='mean')`` on logits:
ℓ = −(t log p + (1 − t) log(1 − p)) entry by entry, with p = σ(x) for logits (whose derivative
then comes out as σ(x) − t). 'mean' is over every entry, as in PyTorch. (PyTorch clamps
log p at −100; the formula does not. ``weight`` and ``pos_weight`` are not supported.)"""
import sympy as sp

from ..functions import sigmoid
from .base import entry
from .losses import REDUCTIONS, ReducedLoss, same_shape
from .registry import LayerKind, TorchOp, register


class BinaryCrossEntropy(ReducedLoss):
    """−(t log p + (1 − t) log(1 − p)), p the input or σ(input) with ``logits``.

    >>> from symderive.tensors import Tensor
    >>> BinaryCrossEntropy('E', Tensor('x', (2,)), Tensor('t', (2,)), logits=True, reduction='none').definition((0,))
    -(1 - t[0])*log(1 - sigmoid(x[0])) - log(sigmoid(x[0]))*t[0]
    """

    def __init__(self, name, input, target, reduction="mean", logits=False):
        self.kind = "binary_cross_entropy_with_logits" if logits else "binary_cross_entropy"
        self.input, self.target, self.logits = input, target, logits
        same_shape(self.kind, input, target)
        super().__init__(name, [input, target], input.shape, reduction)

    def domains(self):
        found = {self.target.name: ("probabilities",)}
        if not self.logits:
            found[self.input.name] = ("probabilities",)
        return found

    def term(self, idx, avoid):
        x, t = entry(self.input, idx), entry(self.target, idx)
        p = sigmoid(x) if self.logits else x
        return -t * sp.log(p) - (1 - t) * sp.log(1 - p)


def _torch_bce(layer, get, num):
    import torch.nn.functional as F
    compute = F.binary_cross_entropy_with_logits if layer.logits else F.binary_cross_entropy
    return compute(get(layer.input), get(layer.target), reduction=layer.reduction)


register(
    LayerKind("binary_cross_entropy", BinaryCrossEntropy, ("input", "target"), options=("reduction",),
              choices={"reduction": REDUCTIONS},
              torch=TorchOp("torch.nn.functional.binary_cross_entropy", _torch_bce)),
    LayerKind("binary_cross_entropy_with_logits",
              lambda n, x, t, reduction="mean": BinaryCrossEntropy(n, x, t, reduction, logits=True),
              ("input", "target"), options=("reduction",), choices={"reduction": REDUCTIONS},
              torch=TorchOp("torch.nn.functional.binary_cross_entropy_with_logits", _torch_bce)),
)
