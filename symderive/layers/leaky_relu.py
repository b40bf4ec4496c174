"""Leaky ReLU, PyTorch's ``leaky_relu``: y = x where x > 0, else negative_slope · x (default 0.01).

An index formula ``leaky_relu(x, negative_slope=0.2)`` and a stack entry ``LeakyReLU(0.2)``.
It is written as a composition, ReLU(x) − negative_slope · ReLU(−x), so the engine's derivative
(H(x) + negative_slope · H(−x)), its evaluators and the numeric passes need no rule of its own.
"""
import sympy as sp

from ..functions import relu
from .activations import stack_entry
from .base import Layer, entry
from .registry import LayerKind, TorchOp, register

#: PyTorch's default, exact.
DEFAULT_SLOPE = sp.Rational(1, 100)


class LeakyReLU(Layer):
    """y[i…] = ReLU(x[i…]) − negative_slope · ReLU(−x[i…]).

    >>> from symderive.tensors import Tensor
    >>> LeakyReLU('y', Tensor('x', (3,)), negative_slope=sp.Rational(1, 5)).definition((1,))
    -relu(-x[1])/5 + relu(x[1])
    """

    kind = "leaky_relu"

    def __init__(self, name, x, negative_slope=DEFAULT_SLOPE):
        self.x, self.negative_slope = x, sp.sympify(negative_slope)
        super().__init__(name, [x], x.shape)

    def describe(self):
        return f"leaky_relu, negative slope {self.negative_slope}"

    def definition(self, idx, avoid=()):
        x = entry(self.x, idx)
        return relu(x) - self.negative_slope * relu(-x)


def _torch_leaky_relu(layer, get, num):
    import torch.nn.functional as F
    return F.leaky_relu(get(layer.x), float(layer.negative_slope))


register(LayerKind("leaky_relu", LeakyReLU, options=("negative_slope",), numbers=("negative_slope",),
                   torch=TorchOp("torch.nn.functional.leaky_relu", _torch_leaky_relu),
                   **stack_entry("LeakyReLU", arguments=("negative_slope",))))
