"""A stop-gradient, PyTorch's ``detach(x)`` (``x.detach()``): y = x in value, with no gradient
flowing back through it. Its entries are ``functions.detach`` of the input's, whose derivative is 0,
so a DQN's target network, the target of a semi-gradient TD update or SimSiam's sg(z) is
differentiated as the course teaches: the detached branch is a constant. Written sg(x) on a sheet."""
from ..functions import detach
from .activations import EntryFunction
from .registry import LayerKind, TorchOp, register


class Detach(EntryFunction):
    """y = sg(x): x's value, derivative 0.

    >>> from symderive.tensors import Tensor
    >>> Detach('y', Tensor('x', (2,))).definition((1,))
    detach(x[1])
    """

    kind = "detach"

    def function(self, x):
        return detach(x)


def _torch_detach(layer, get, num):
    return get(layer.x).detach()


register(LayerKind("detach", Detach, torch=TorchOp("torch.Tensor.detach", _torch_detach)))
