"""GELU, PyTorch's ``gelu(x, approximate='none')``: x · Φ(x) = x (1 + erf(x/√2)) / 2, or with
``approximate='tanh'`` x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2, PyTorch's constants exactly.

Both are compositions of functions the engine knows (erf, tanh), so derivatives, evaluators and
numeric passes come from the formula.
"""
import sympy as sp

from .activations import EntryFunction, stack_entry
from .registry import LayerKind, TorchOp, register

#: The cubic coefficient of the tanh approximation, as PyTorch writes it (kKappa).
KAPPA = sp.Rational(44715, 1000000)
APPROXIMATE = ("none", "tanh")


class GELU(EntryFunction):
    """y = x Φ(x), or its tanh approximation.

    >>> from symderive.tensors import Tensor
    >>> GELU('y', Tensor('x', (2,))).definition((0,))
    (erf(sqrt(2)*x[0]/2) + 1)*x[0]/2
    """

    kind = "gelu"
    OPTIONS = {"approximate": "none"}

    def __init__(self, name, x, **options):
        super().__init__(name, x, **options)
        if self.approximate not in APPROXIMATE:
            raise TypeError(f"approximate is 'none' or 'tanh', not {self.approximate!r}")

    def function(self, x):
        if self.approximate == "tanh":
            return x * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + KAPPA * x ** 3))) / 2
        return x * (1 + sp.erf(x / sp.sqrt(2))) / 2


def _torch_gelu(layer, get, num):
    import torch.nn.functional as F
    return F.gelu(get(layer.x), approximate=layer.approximate)


register(LayerKind("gelu", GELU, options=("approximate",), choices={"approximate": APPROXIMATE},
                   torch=TorchOp("torch.nn.functional.gelu", _torch_gelu),
                   **stack_entry("GELU", arguments=("approximate",), choices={"approximate": APPROXIMATE})))
