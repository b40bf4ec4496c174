"""SiLU (swish), PyTorch's ``silu(x)``: x · σ(x); its derivative σ(x) + x σ(x)(1 − σ(x))."""
from ..functions import sigmoid
from .activations import EntryFunction, stack_entry
from .registry import LayerKind, TorchOp, register


class SiLU(EntryFunction):
    """y = x σ(x).

    >>> from symderive.tensors import Tensor
    >>> SiLU('y', Tensor('x', (2,))).definition((1,))
    sigmoid(x[1])*x[1]
    """

    kind = "silu"

    def function(self, x):
        return x * sigmoid(x)


def _torch_silu(layer, get, num):
    import torch.nn.functional as F
    return F.silu(get(layer.x))


register(LayerKind("silu", SiLU, torch=TorchOp("torch.nn.functional.silu", _torch_silu), **stack_entry("SiLU")))
