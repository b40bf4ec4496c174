"""Matrix products by PyTorch's names: ``matmul(input, other)`` for vectors and matrices, and the
rank-checked ``dot`` (vector · vector), ``mv`` (matrix · vector) and ``mm`` (matrix · matrix).
A vector in front multiplies from the left, so scores uᵀv for every column u of U (d × V) are
``matmul(v, U)`` with no element formula to write: s[w] = Σ_k v[k] U[k, w]."""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index
from .base import Layer, entry, taken_by
from .registry import LayerKind, TorchOp, register

#: PyTorch's rank rules of the rank-checked names: (input rank, other rank).
RANKS = {"dot": (1, 1), "mv": (2, 1), "mm": (2, 2)}


class MatMul(Layer):
    """input · other, contracting the last axis of input with the first of other (a vector's only).

    >>> from symderive.tensors import Tensor
    >>> MatMul('s', Tensor('v', (3,)), Tensor('U', (3, 5))).definition((4,))
    Sum(U[j, 4]*v[j], (j, 0, 2))
    """

    def __init__(self, name, input, other, kind="matmul"):
        self.kind = kind
        if input.rank not in (1, 2) or other.rank not in (1, 2):
            raise ShapeError(f"{kind}: vectors and matrices only, got ranks {input.rank} and {other.rank}")
        if kind in RANKS and (input.rank, other.rank) != RANKS[kind]:
            raise ShapeError(f"{kind}: expects ranks {RANKS[kind]}, got {input.rank} and {other.rank}")
        if sp.simplify(input.shape[-1] - other.shape[0]) != 0:
            raise ShapeError(f"{kind}: {input.name} has {input.shape[-1]} columns but {other.name} has "
                             f"{other.shape[0]} rows")
        self.input, self.other = input, other
        super().__init__(name, [input, other], input.shape[:-1] + other.shape[1:])

    def definition(self, idx, avoid=()):
        n = self.input.shape[-1]
        j = fresh_index(n, taken_by(avoid, idx), ("j", "k", "l", "m"))
        rows, cols = tuple(idx[:self.input.rank - 1]), tuple(idx[self.input.rank - 1:])
        return sp.Sum(entry(self.input, rows + (j,)) * entry(self.other, (j,) + cols), (j, 0, n - 1))


def _torch_op(name):
    def compute(layer, get, num):
        import torch
        return getattr(torch, name)(get(layer.input), get(layer.other))
    return compute


register(*(LayerKind(name, lambda n, a, b, kind=name: MatMul(n, a, b, kind), ("input", "other"),
                     torch=TorchOp(f"torch.{name}", _torch_op(name)))
           for name in ("matmul", "dot", "mv", "mm")))
