"""Residual blocks in ``network:`` stacks: ``Residual(layer, ...)`` (y = F(x) + x, identity skip)
and the shorthands ``ResidualBlock(channels)`` and ``BottleneckBlock(channels, width)``."""
import ast

import sympy as sp

from ..errors import ExpressionError
from .conv import NetConv
from .registry import LayerKind, Signature, register, torch_module
from .stack import Count, NetLayer, auto_name


class NetResidual(NetLayer):
    """``Residual(layer, ...)``: y = F(x) + x with an identity skip (no parameters)."""
    kind = "Residual"

    def __init__(self, name, call, text, node, layers, label=None):
        super().__init__(name, call, text, node)
        self.layers, self.label = layers, label

    @property
    def has_weights(self):
        return any(layer.has_weights for layer in self.layers)

    def count(self, mode):
        counts = [layer.count(mode) for layer in self.layers]
        return Count(sp.Add(*[c.value for c in counts]),
                     " + ".join(sp.latex(c.value) for c in counts if c.value != 0) or "0")

    def count_note(self):
        return "the sum over its layers; the identity skip adds no parameters"

    def output(self, shape):
        out = shape
        for layer in self.layers:
            out = layer.output(out)
        if shape.known and out.known:
            same = len(out.spatial) == len(shape.spatial) and all(
                sp.simplify(a - b) == 0 for a, b in zip(out.dims(), shape.dims()))
        else:
            same = None in (shape.channels, out.channels) or sp.simplify(out.channels - shape.channels) == 0
        if not same:
            raise self.error(f"the identity skip adds the input ({shape.text() if shape.known else shape.channels}"
                             f" channels) to the block's output ({out.text() if out.known else out.channels}"
                             f" channels): they must have the same shape")
        return shape if shape.known else out

    def receptive(self, r, j):
        for layer in self.layers:
            r, j = layer.receptive(r, j)
        return r, j

    def multiply_adds(self, shape_in, shape_out):
        total, shape = sp.Integer(0), shape_in
        for layer in self.layers:
            out = layer.output(shape)
            macs = layer.multiply_adds(shape, out)
            if macs is None:
                return None
            total += macs
            shape = out
        return total

    def flatten(self):
        return [self] + [inner for layer in self.layers for inner in layer.flatten()]

    def describe(self):
        return self.label or f"residual block ({len(self.layers)} layers, identity skip)"


def _residual_block(name, call, text, node, channels, kernel_size=3, bias=True):
    if not (sp.sympify(kernel_size).is_number and sp.sympify(kernel_size) % 2 == 1):
        raise ExpressionError("ResidualBlock: kernel_size must be an odd number (padding (k − 1)/2 keeps "
                              "the size)", node.lineno, node.col_offset + 1)
    pad = (sp.sympify(kernel_size) - 1) / 2
    convs = [NetConv(f"{name}.conv{i}", call, text, node, 2, channels, channels, kernel_size, 1, pad, 1, bias)
             for i in (1, 2)]
    return NetResidual(name, call, text, node, convs,
                    label=f"residual block: two {kernel_size}×{kernel_size} convolutions {channels} → "
                          f"{channels}, identity skip")


def _bottleneck_block(name, call, text, node, channels, width, kernel_size=3, bias=True):
    if not (sp.sympify(kernel_size).is_number and sp.sympify(kernel_size) % 2 == 1):
        raise ExpressionError("BottleneckBlock: kernel_size must be an odd number", node.lineno,
                              node.col_offset + 1)
    pad = (sp.sympify(kernel_size) - 1) / 2
    convs = [NetConv(f"{name}.conv1", call, text, node, 2, channels, width, 1, 1, 0, 1, bias),
             NetConv(f"{name}.conv2", call, text, node, 2, width, width, kernel_size, 1, pad, 1, bias),
             NetConv(f"{name}.conv3", call, text, node, 2, width, channels, 1, 1, 0, 1, bias)]
    return NetResidual(name, call, text, node, convs,
                    label=f"bottleneck block: 1×1 {channels} → {width}, {kernel_size}×{kernel_size} "
                          f"{width} → {width}, 1×1 {width} → {channels}, identity skip")


def _read(reader, node, name, call, depth):
    """Residual(layer, layer, ...): the block's layers, each read as a stack entry of its own."""
    if node.keywords or not node.args:
        reader.fail(node, "Residual(layer, layer, ...) takes the block's layers and no keywords")
    counts = {}
    inner = [reader.layer(arg, f"{name}.{auto_name(_kind_of(arg), counts)}", depth + 1)
             for arg in node.args]
    return NetResidual(name, call, reader.text, node, inner)


def _kind_of(node):
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else "layer"


def _torch_module(layer, num, bias):
    import torch

    class Residual(torch.nn.Module):
        """y = F(x) + x: the block's layers, and an identity skip."""
        def __init__(self, inner):
            super().__init__()
            self.inner = torch.nn.Sequential(*inner)

        def forward(self, x):
            return self.inner(x) + x

    return Residual([torch_module(inner, num, bias) for inner in layer.layers])


_SKIP = dict(torch_module=_torch_module, torch_module_name="an identity skip around torch.nn.Sequential",
             prefix="block")
register(
    LayerKind("residual", module="Residual", signature=Signature(None, (), 0, {}, read=_read), **_SKIP),
    LayerKind("residual_block", module="ResidualBlock", **_SKIP, signature=Signature(
        _residual_block, ("channels", "kernel_size"), 1, {"kernel_size": 3, "bias": True})),
    LayerKind("bottleneck_block", module="BottleneckBlock", **_SKIP, signature=Signature(
        _bottleneck_block, ("channels", "width", "kernel_size"), 2, {"kernel_size": 3, "bias": True})),
)
