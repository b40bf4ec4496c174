"""Softmax along the last axis: the ``softmax`` index formula and the ``Softmax()`` stack entry
(over the features, ``dim=1`` of a batch)."""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index
from .activations import stack_entry
from ..latex import tex_name
from .base import Layer, entry, taken_by
from .registry import LayerKind, NumericRule, TorchOp, register


class Softmax(Layer):
    """q[…, i] = exp(z[…, i]) / Σ_j exp(z[…, j]) along the last axis."""

    kind = "softmax"

    def __init__(self, name, z):
        if z.rank < 1:
            raise ShapeError(f"softmax: {z.name} must have at least one dimension")
        self.z = z
        super().__init__(name, [z], z.shape)

    def definition(self, idx, avoid=()):
        j = fresh_index(self.z.shape[-1], taken_by(avoid, idx), ("j", "k", "l", "m"))
        lead = tuple(idx[:-1])
        return sp.exp(entry(self.z, idx)) / sp.Sum(
            sp.exp(entry(self.z, lead + (j,))), (j, 0, self.z.shape[-1] - 1))


def _torch_softmax(layer, get, num):
    import torch
    return torch.softmax(get(layer.z), dim=-1)


def _numeric_forward(net, layer, name_in, x):
    in_tex = tex_name(name_in)
    exps = x.applyfunc(sp.exp)
    total = sum(exps)
    value = (exps / total).applyfunc(net.tidy)
    latex = rf"\operatorname{{softmax}}({in_tex})"
    return value, latex, (f"{layer.name}: softmax, ${tex_name(layer.name)}_i = e^{{{in_tex}_i}} / "
                          f"\\sum_j e^{{{in_tex}_j}}$")


def _numeric_backward(net, layer, step):
    y = step.y
    jac = (sp.diag(*y) - y * y.T)
    below = (jac * step.grad).applyfunc(net.tidy)
    step.record(rf"{step.target} = \left(\operatorname{{diag}}({tex_name(layer.name)}) - {tex_name(layer.name)}"
                rf"\,{tex_name(layer.name)}^{{T}}\right) {step.d_out} = {net.shown(below)}",
                f"the softmax Jacobian is diag({layer.name}) − {layer.name} {layer.name}ᵀ")
    return below


register(LayerKind("softmax", lambda n, z: Softmax(n, z), torch=TorchOp("torch.softmax", _torch_softmax),
                   **stack_entry("Softmax", numeric=NumericRule(_numeric_forward, _numeric_backward), dim=1)))
