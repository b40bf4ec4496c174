"""Batch normalisation in ``network:`` stacks: ``BatchNorm1d`` / ``BatchNorm2d`` (a scale and a
shift per channel; no index formula)."""
import sympy as sp

from .registry import LayerKind, Signature, register
from .stack import Count, NetLayer


class NetBatchNorm(NetLayer):
    def __init__(self, name, call, text, node, dims, num_features, affine=True, eps=None, momentum=None):
        super().__init__(name, call, text, node)
        self.dims, self.kind = dims, f"BatchNorm{dims if dims == 2 else 1}d"
        self.num_features, self.affine = num_features, affine

    def count(self, mode):
        if not self.affine:
            return Count(sp.Integer(0), "0")
        return Count(2 * self.num_features, rf"2 \cdot {sp.latex(self.num_features)}")

    def count_note(self):
        if not self.affine:
            return "affine=False: no $\\gamma$, $\\beta$; the running mean and variance are not parameters"
        return (f"a scale $\\gamma$ and a shift $\\beta$ per channel ({self.num_features} each); the running "
                f"mean and variance are buffers updated by averaging, not parameters learned by gradient "
                f"descent")

    def output(self, shape):
        if shape.channels is not None and sp.simplify(shape.channels - self.num_features) != 0:
            raise self.error(f"normalises {self.num_features} channels but its input has {shape.channels}")
        if shape.spatial is not None and self.dims == 2 and len(shape.spatial) != 2:
            raise self.error(f"needs an input with height and width; its input is {shape.text()}")
        return shape.with_(channels=self.num_features)

    def describe(self):
        return f"{self.kind}, {self.num_features} channels"


def _torch_module(layer, num, bias):
    import torch
    cls = torch.nn.BatchNorm2d if layer.dims == 2 else torch.nn.BatchNorm1d
    return cls(num(layer.num_features), affine=layer.affine, dtype=torch.float64)


def _signature(dims):
    def build(name, call, text, node, **kw):
        return NetBatchNorm(name, call, text, node, dims, **kw)
    return Signature(build, ("num_features",), 1, {"affine": True, "eps": None, "momentum": None})


for _dims in (1, 2):
    register(LayerKind(f"batch_norm{_dims}d", module=f"BatchNorm{_dims}d", signature=_signature(_dims),
                       torch_module=_torch_module, torch_module_name=f"torch.nn.BatchNorm{_dims}d", prefix="bn"))
