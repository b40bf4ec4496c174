"""Hardtanh, PyTorch's ``hardtanh(x, min_val=-1.0, max_val=1.0)``: x clipped to [min_val, max_val].

Written min_val + ReLU(x − min_val) − ReLU(x − max_val), so its derivative is
H(x − min_val) − H(x − max_val): 1 strictly inside, 0 outside, 0 at the ends as in PyTorch.
"""
import sympy as sp

from ..errors import ShapeError
from ..functions import relu
from .activations import EntryFunction, stack_entry
from .registry import LayerKind, TorchOp, register


class Hardtanh(EntryFunction):
    """y = min_val + ReLU(x − min_val) − ReLU(x − max_val).

    >>> from symderive.tensors import Tensor
    >>> Hardtanh('y', Tensor('x', (2,))).definition((0,))
    -relu(x[0] - 1) + relu(x[0] + 1) - 1
    """

    kind = "hardtanh"
    OPTIONS = {"min_val": sp.Integer(-1), "max_val": sp.Integer(1)}

    def __init__(self, name, x, **options):
        super().__init__(name, x, **options)
        if not (self.max_val - self.min_val).is_positive:
            raise ShapeError(f"hardtanh: min_val {self.min_val} must be below max_val {self.max_val}")

    def function(self, x):
        return self.min_val + relu(x - self.min_val) - relu(x - self.max_val)


def _torch_hardtanh(layer, get, num):
    import torch.nn.functional as F
    return F.hardtanh(get(layer.x), float(layer.min_val), float(layer.max_val))


register(LayerKind("hardtanh", Hardtanh, options=("min_val", "max_val"), numbers=("min_val", "max_val"),
                   torch=TorchOp("torch.nn.functional.hardtanh", _torch_hardtanh),
                   **stack_entry("Hardtanh", arguments=("min_val", "max_val"))))
