"""Dropout with its mask given, PyTorch's ``dropout(input, p=0.5)`` in training mode, for the
mask m (0 or 1 per entry) that PyTorch would draw: y = x · m / (1 − p) (inverted dropout, as
PyTorch scales). With the mask a declared tensor the layer is exact, and so is its derivative
m / (1 − p). ``--verify`` computes it with torch from the same mask (``F.dropout`` draws its own)."""
import sympy as sp

from ..errors import ShapeError
from .base import Layer, entry
from .losses import same_shape
from .registry import LayerKind, TorchOp, register


class Dropout(Layer):
    """y[i…] = x[i…] · mask[i…] / (1 − p).

    >>> from symderive.tensors import Tensor
    >>> Dropout('y', Tensor('x', (3,)), Tensor('m', (3,)), p=sp.Rational(1, 4)).definition((2,))
    4*m[2]*x[2]/3
    """

    kind = "dropout"

    def __init__(self, name, x, mask, p=sp.Rational(1, 2)):
        self.x, self.mask, self.p = x, mask, sp.sympify(p)
        if not (0 <= self.p < 1):
            raise ShapeError(f"dropout: p is a probability below 1, got {self.p}")
        same_shape(self.kind, x, mask)
        super().__init__(name, [x, mask], x.shape)

    def describe(self):
        return f"dropout, p {self.p}, mask {self.mask.name}"

    def domains(self):
        return {self.mask.name: ("mask",)}

    def definition(self, idx, avoid=()):
        return entry(self.x, idx) * entry(self.mask, idx) / (1 - self.p)


def _torch_dropout(layer, get, num):
    # PyTorch's own scaling, x * mask / (1 - p), with the given mask (F.dropout draws one at random)
    return get(layer.x) * get(layer.mask) / (1 - float(layer.p))


register(LayerKind("dropout", Dropout, ("input", "mask"), options=("p",), numbers=("p",),
                   torch=TorchOp("x * mask / (1 - p), torch.nn.functional.dropout's scaling", _torch_dropout)))
