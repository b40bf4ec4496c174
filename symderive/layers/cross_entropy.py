"""Cross entropy, PyTorch's ``cross_entropy(input, target, reduction='mean')``, from logits.

``input`` holds scores (C,) or a batch (N, C). As in PyTorch, the target's shape decides what it
is: class indices (N,) or a scalar (integer labels y_n, the way courses write them) give
ℓ_n = −z[n, y_n] + log Σ_j e^{z[n, j]}; probabilities of the input's shape (soft targets, e.g. a
one-hot layer) give ℓ_n = −Σ_c p[n, c] (z[n, c] − log Σ_j e^{z[n, j]}). ``'mean'`` divides the sum
over the batch by N, so ∂E/∂z[p, q] = (softmax(z)[p, q] − δ(q, y_p)) / N comes out of the formula.
"""
import sympy as sp

from ..indices import fresh_index
from .base import entry
from .losses import BATCH_LETTERS, REDUCTIONS, ReducedLoss, class_target
from .registry import LayerKind, TorchOp, register


class CrossEntropy(ReducedLoss):
    """Cross entropy of logits against class indices or probabilities.

    >>> from symderive.tensors import Tensor, size_symbol
    >>> N = size_symbol('N')
    >>> CrossEntropy('E', Tensor('z', (N, 3)), Tensor('y', (N,))).definition()
    Sum(log(Sum(exp(z[n, j]), (j, 0, 2))) - z[n, y[n]], (n, 0, N - 1))/N
    """

    kind = "cross_entropy"
    letters = BATCH_LETTERS

    def __init__(self, name, input, target, reduction="mean"):
        self.input, self.target = input, target
        self.classes = class_target(self.kind, input, target)
        super().__init__(name, [input, target], input.shape[:-1], reduction)

    def domains(self):
        return {self.target.name: ("labels", self.input.shape[-1])} if self.classes else {}

    def log_sum_exp(self, lead, avoid):
        j = fresh_index(self.input.shape[-1], set(avoid), ("j", "k", "l", "m"))
        return sp.log(sp.Sum(sp.exp(entry(self.input, lead + (j,))), (j, 0, self.input.shape[-1] - 1)))

    def term(self, idx, avoid):
        if self.classes:
            return -entry(self.input, idx + (entry(self.target, idx),)) + self.log_sum_exp(idx, avoid)
        c = fresh_index(self.input.shape[-1], set(avoid), ("c", "k", "l", "m"))
        lse = self.log_sum_exp(idx, set(avoid) | {c.name})
        return -sp.Sum(entry(self.target, idx + (c,)) * (entry(self.input, idx + (c,)) - lse),
                       (c, 0, self.input.shape[-1] - 1))


def _torch_cross_entropy(layer, get, num):
    import torch.nn.functional as F
    target = get(layer.target)
    return F.cross_entropy(get(layer.input), target.long() if layer.classes else target, reduction=layer.reduction)


register(LayerKind("cross_entropy", CrossEntropy, ("input", "target"), options=("reduction",),
                   choices={"reduction": REDUCTIONS},
                   torch=TorchOp("torch.nn.functional.cross_entropy", _torch_cross_entropy)))
