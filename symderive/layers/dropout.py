"""Dropout with its mask given, PyTorch's ``dropout(input, p=0.5)`` in training mode, for the
mask m (0 or 1 per entry) that PyTorch would draw: y = x · m / (1 − p) (inverted dropout, as
PyTorch scales). With the mask a declared tensor the layer is exact, and so is its derivative
m / (1 − p). ``--verify`` computes it with torch from the same mask (``F.dropout`` draws its own)."""
import sympy as sp

from ..errors import ShapeError
from ..latex import tex_name
from .base import Layer, entry
from .losses import same_shape
from .registry import LayerKind, NumericRule, Signature, TorchOp, register
from .stack import NetLayer


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


# ---------------------------------------------------------------------------------------------
# In network: stacks: Dropout(p=0.5), and for numeric passes Dropout(p=0.5, mask=M)


class NetDropout(NetLayer):
    """``Dropout(p=0.5)``: no parameters, the shape kept; ``mask=M`` (a declared tensor of 0s and 1s
    with a value, shaped like the layer's input) fixes the mask for an exact numeric pass."""
    kind = "Dropout"

    def __init__(self, name, call, text, node, p=sp.Rational(1, 2), mask=None):
        super().__init__(name, call, text, node)
        self.p, self.mask = sp.sympify(p), mask
        if not (0 <= self.p < 1):
            raise self.error(f"p is a probability below 1, got {self.p}")

    def count_note(self):
        return "dropout has no parameters"

    def axis_steps(self, shape):
        return [("", "dropout zeroes entries and scales the others: the shape does not change")]

    def value_tensors(self):
        return (self.mask,) if self.mask is not None else ()


def _read(reader, node, name, call, depth):
    """Dropout(p=0.5) or Dropout(0.5, mask=M) / Dropout(p=0.5, mask=M)."""
    p, mask = sp.Rational(1, 2), None
    if len(node.args) > 1:
        reader.fail(node.args[1], "Dropout() takes p and, by keyword, mask=M")
    if node.args:
        p = reader.real(node.args[0], "Dropout", "p")
    for keyword in node.keywords:
        if keyword.arg == "p" and not node.args:
            p = reader.real(keyword.value, "Dropout", "p")
        elif keyword.arg == "mask":
            mask = reader.tensor(keyword.value)
            if mask is None:
                reader.fail(keyword.value, "Dropout(mask=M): M must name a declared tensor of 0s and 1s")
        elif keyword.arg != "inplace":
            reader.fail(keyword.value, f"Dropout() has no argument '{keyword.arg}' (arguments: p, mask)")
    return NetDropout(name, call, reader.text, node, p, mask)


def _torch_module(layer, num, bias):
    import torch
    return torch.nn.Dropout(float(layer.p))


def _numeric_forward(net, layer, name_in, x):
    if layer.mask is None:
        raise layer.error("a numeric pass needs the mask PyTorch drew: Dropout(p=0.5, mask=M), M a declared tensor "
                          "of 0s and 1s with a value")
    mask = net.weights[layer.mask.name]
    if mask.shape != x.shape:
        raise layer.error(f"the mask {layer.mask.name} has {mask.rows} entries but the input has {x.rows}")
    if any(v not in (0, 1) for v in mask):
        raise layer.error(f"the mask {layer.mask.name} holds 0s and 1s only")
    scale = 1 / (1 - layer.p)
    value = x.multiply_elementwise(mask).applyfunc(lambda v: net.tidy(v * scale))
    return (value, rf"rac{{1}}{{1 - {sp.latex(layer.p)}}}\, {tex_name(name_in)} \odot {tex_name(layer.mask.name)}"
                   rf" = {sp.latex(scale)}\, {net.shown(x)} \odot {net.shown(mask)}",
            f"{layer.name}: dropout with the given mask, scaled by 1/(1 − p) as PyTorch does in training")


def _numeric_backward(net, layer, step):
    scale = 1 / (1 - layer.p)
    mask = net.weights[layer.mask.name]
    below = step.grad.multiply_elementwise(mask).applyfunc(lambda v: net.tidy(v * scale))
    step.record(rf"{step.target} = {sp.latex(scale)}\, {tex_name(layer.mask.name)} \odot {step.d_out} = "
                rf"{net.shown(below)}", "dropout passes the gradient where the mask is 1, scaled by 1/(1 − p)")
    return below


def _numeric_torch(layer, x, tensors):
    return x * tensors[layer.mask.name].reshape(x.shape) / (1 - float(layer.p))


register(LayerKind("dropout", Dropout, ("input", "mask"), options=("p",), numbers=("p",),
                   torch=TorchOp("x * mask / (1 - p), torch.nn.functional.dropout's scaling", _torch_dropout),
                   module="Dropout", signature=Signature(None, ("p",), 0, {"mask": None}, read=_read),
                   torch_module=_torch_module, torch_module_name="torch.nn.Dropout",
                   numeric=NumericRule(_numeric_forward, _numeric_backward, _numeric_torch)))
