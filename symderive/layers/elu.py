"""ELU, PyTorch's ``elu(x, alpha=1.0)``: x where x > 0, else alpha · (eˣ − 1).

Written as ReLU(x) + alpha · (e^(−ReLU(−x)) − 1), so the engine's derivative,
H(x) + alpha · e^(−ReLU(−x)) · H(−x), its evaluators and the numeric passes need no rule of
their own. At exactly x = 0 that derivative is 0 where PyTorch's is alpha (a measure-zero point).
"""
import sympy as sp

from ..functions import relu
from .activations import EntryFunction, stack_entry
from .registry import LayerKind, TorchOp, register


class ELU(EntryFunction):
    """y = ReLU(x) + alpha · (exp(−ReLU(−x)) − 1).

    >>> from symderive.tensors import Tensor
    >>> ELU('y', Tensor('x', (3,)), alpha=2).definition((0,))
    relu(x[0]) - 2 + 2*exp(-relu(-x[0]))
    """

    kind = "elu"
    OPTIONS = {"alpha": sp.Integer(1)}

    def function(self, x):
        return relu(x) + self.alpha * (sp.exp(-relu(-x)) - 1)


def _torch_elu(layer, get, num):
    import torch.nn.functional as F
    return F.elu(get(layer.x), float(layer.alpha))


register(LayerKind("elu", ELU, options=("alpha",), numbers=("alpha",),
                   torch=TorchOp("torch.nn.functional.elu", _torch_elu),
                   **stack_entry("ELU", arguments=("alpha",))))
