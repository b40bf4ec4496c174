"""``Flatten()`` in ``network:`` stacks: channels × positions become one feature axis."""
import sympy as sp

from ..errors import ExpressionError
from ..latex import tex_name
from .registry import LayerKind, NumericRule, Signature, register
from .stack import NetLayer, dot_latex


class NetFlatten(NetLayer):
    kind = "Flatten"

    def count_note(self):
        return "reshaping has no parameters"

    def output(self, shape):
        if shape.spatial is None or shape.channels is None:
            return shape.flat(None)
        return shape.flat(sp.Mul(shape.channels, *shape.spatial))

    def axis_steps(self, shape):
        if not shape.known:
            return []
        return [(rf"{dot_latex(shape.channels, *shape.spatial)} = {sp.latex(sp.Mul(shape.channels, *shape.spatial))}",
                 "channels × spatial positions become one feature axis")]

    def receptive(self, r, j):
        raise self.error("after flattening every feature is a function of the whole input", ExpressionError)


def _torch_module(layer, num, bias):
    import torch
    return torch.nn.Flatten()


def _numeric_forward(net, layer, name_in, x):
    """Numeric passes hold every value as one vector, row-major (an embedding's rows one after the
    other): it is already flat."""
    return x, rf"\operatorname{{flatten}}({tex_name(name_in)})", f"{layer.name}: already one vector, row-major"


def _numeric_backward(net, layer, step):
    step.record(rf"{step.target} = {step.d_out}", "flattening moves no number: the gradient passes unchanged")
    return step.grad


def _numeric_torch(layer, x, tensors):
    return x.reshape(-1)


register(LayerKind("flatten", module="Flatten",
                   signature=Signature(lambda name, call, text, node: NetFlatten(name, call, text, node), (), 0, {}),
                   torch_module=_torch_module, torch_module_name="torch.nn.Flatten", prefix="flatten",
                   numeric=NumericRule(_numeric_forward, _numeric_backward, _numeric_torch)))
