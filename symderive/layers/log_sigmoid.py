"""LogSigmoid, PyTorch's ``logsigmoid(x)`` (called ``log_sigmoid`` here, as courses write it):
log σ(x) = −softplus(−x). Its derivative comes out as 1 − σ(x)."""
import sympy as sp

from ..functions import sigmoid
from .activations import EntryFunction, stack_entry
from .registry import LayerKind, TorchOp, register


class LogSigmoid(EntryFunction):
    """y = log σ(x).

    >>> from symderive.tensors import Tensor
    >>> LogSigmoid('y', Tensor('x', (2,))).definition((1,))
    log(sigmoid(x[1]))
    """

    kind = "log_sigmoid"

    def function(self, x):
        return sp.log(sigmoid(x))


def _torch_logsigmoid(layer, get, num):
    import torch.nn.functional as F
    return F.logsigmoid(get(layer.x))


register(LayerKind("log_sigmoid", LogSigmoid, torch=TorchOp("torch.nn.functional.logsigmoid", _torch_logsigmoid),
                   **stack_entry("LogSigmoid")))
