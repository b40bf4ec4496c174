"""Softplus, PyTorch's ``softplus(x, beta=1.0, threshold=20.0)``: log(1 + e^(βx)) / β.

PyTorch returns x itself where βx > threshold, a guard against overflow; the index formula is
the softplus everywhere, which differs from that by log(1 + e^(−threshold))/β (below 3·10⁻⁹ at
the default) and has the same derivative there up to e^(−threshold). Its derivative is σ(βx),
written e^(βx)/(1 + e^(βx)).
"""
import sympy as sp

from ..errors import ShapeError
from .activations import EntryFunction, stack_entry
from .registry import LayerKind, TorchOp, register


class Softplus(EntryFunction):
    """y = log(1 + exp(beta · x)) / beta.

    >>> from symderive.tensors import Tensor
    >>> Softplus('y', Tensor('x', (2,)), beta=2).definition((1,))
    log(exp(2*x[1]) + 1)/2
    """

    kind = "softplus"
    OPTIONS = {"beta": sp.Integer(1), "threshold": sp.Integer(20)}

    def __init__(self, name, x, **options):
        super().__init__(name, x, **options)
        if not self.beta.is_positive:
            raise ShapeError(f"softplus: beta must be positive, got {self.beta}")

    def function(self, x):
        return sp.log(1 + sp.exp(self.beta * x)) / self.beta


def _torch_softplus(layer, get, num):
    import torch.nn.functional as F
    return F.softplus(get(layer.x), float(layer.beta), float(layer.threshold))


register(LayerKind("softplus", Softplus, options=("beta", "threshold"), numbers=("beta", "threshold"),
                   torch=TorchOp("torch.nn.functional.softplus", _torch_softplus),
                   **stack_entry("Softplus", arguments=("beta", "threshold"))))
