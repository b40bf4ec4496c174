"""Embedding lookup and one-hot vectors, by integer index.

``embedding(input, weight)`` is PyTorch's ``F.embedding``: ``input`` holds indices (any shape, a
scalar for one word), ``weight`` is (V, d), and y[…, k] = weight[input[…], k]; its derivative by
the weight is δ(input[…], p) δ(k, q), so ∂l/∂weight gathers the upstream rows of the words that
occur. ``one_hot(input, num_classes=C)`` is ``F.one_hot``: y[…, c] = δ(input[…], c), for example
the target of a soft cross entropy (which then derives to softmax − one-hot)."""
import sympy as sp

from ..errors import ShapeError
from .base import Layer, entry
from .registry import LayerKind, TorchOp, register


class Embedding(Layer):
    """y[…, k] = weight[input[…], k].

    >>> from symderive.tensors import Tensor
    >>> Embedding('e', Tensor('w', (2,)), Tensor('U', (5, 3))).definition((1, 2))
    U[w[1], 2]
    """

    kind = "embedding"

    def __init__(self, name, input, weight):
        if weight.rank != 2:
            raise ShapeError(f"embedding: the weight {weight.name} must be a matrix (num_embeddings, embedding_dim)")
        self.input, self.weight = input, weight
        super().__init__(name, [input, weight], input.shape + (weight.shape[1],))

    def domains(self):
        return {self.input.name: ("labels", self.weight.shape[0])}

    def definition(self, idx, avoid=()):
        return entry(self.weight, (entry(self.input, idx[:-1]), idx[-1]))


class OneHot(Layer):
    """y[…, c] = δ(input[…], c).

    >>> from symderive.tensors import Tensor
    >>> OneHot('Y', Tensor('y', (2,)), num_classes=3).definition((0, 1))
    KroneckerDelta(1, y[0])
    """

    kind = "one_hot"

    def __init__(self, name, input, num_classes=None):
        if num_classes is None:
            raise ShapeError("one_hot: give num_classes (the number of classes)")
        self.input, self.num_classes = input, sp.sympify(num_classes)
        super().__init__(name, [input], input.shape + (self.num_classes,))

    def domains(self):
        return {self.input.name: ("labels", self.num_classes)}

    def definition(self, idx, avoid=()):
        return sp.KroneckerDelta(idx[-1], entry(self.input, idx[:-1]))


def _torch_embedding(layer, get, num):
    import torch.nn.functional as F
    return F.embedding(get(layer.input).long(), get(layer.weight))


def _torch_one_hot(layer, get, num):
    import torch
    import torch.nn.functional as F
    return F.one_hot(get(layer.input).long(), num(layer.num_classes)).to(torch.float64)


register(
    LayerKind("embedding", Embedding, ("input", "weight"),
              torch=TorchOp("torch.nn.functional.embedding", _torch_embedding)),
    LayerKind("one_hot", OneHot, options=("num_classes",),
              torch=TorchOp("torch.nn.functional.one_hot", _torch_one_hot)),
)
