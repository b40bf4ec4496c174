"""Log-softmax, PyTorch's ``log_softmax(z, dim=-1)``: z[…, i, …] − log Σ_j exp(z[…, j, …]) along
``dim``; its derivative δ(i, j) − softmax(z)[j] comes from the formula. Also ``LogSoftmax()`` in
``network:`` stacks (over the features, ``dim=1`` of a batch, as ``Softmax()``)."""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index
from .activations import stack_entry
from .base import Layer, entry, taken_by
from .registry import LayerKind, TorchOp, register


class LogSoftmax(Layer):
    """y[…, i, …] = z[…, i, …] − log Σ_j exp(z[…, j, …]), i the axis ``dim``.

    >>> from symderive.tensors import Tensor
    >>> LogSoftmax('y', Tensor('z', (2, 3)), dim=0).definition((1, 2))
    -log(Sum(exp(z[j, 2]), (j, 0, 1))) + z[1, 2]
    """

    kind = "log_softmax"

    def __init__(self, name, z, dim=-1):
        if z.rank < 1:
            raise ShapeError(f"log_softmax: {z.name} must have at least one dimension")
        dim = int(dim)
        if not -z.rank <= dim < z.rank:
            raise ShapeError(f"log_softmax: dim {dim} is not an axis of {z.name} (rank {z.rank})")
        self.z, self.dim = z, dim % z.rank
        super().__init__(name, [z], z.shape)

    def describe(self):
        return f"log_softmax over axis {self.dim}"

    def definition(self, idx, avoid=()):
        n = self.z.shape[self.dim]
        j = fresh_index(n, taken_by(avoid, idx), ("j", "k", "l", "m"))
        others = tuple(idx[:self.dim]) + (j,) + tuple(idx[self.dim + 1:])
        return entry(self.z, idx) - sp.log(sp.Sum(sp.exp(entry(self.z, others)), (j, 0, n - 1)))


def _torch_log_softmax(layer, get, num):
    import torch
    return torch.log_softmax(get(layer.z), dim=layer.dim)


register(LayerKind("log_softmax", LogSoftmax, options=("dim",),
                   torch=TorchOp("torch.log_softmax", _torch_log_softmax),
                   **stack_entry("LogSoftmax", dim=1)))
