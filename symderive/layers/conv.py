"""Convolutions: ``conv1d`` / ``conv2d`` index formulas and ``Conv1d`` / ``Conv2d`` stack entries.

PyTorch's cross-correlation, with its argument names (``stride``, ``padding``,
``dilation``) and weight layout (out_channels, in_channels, *kernel).
"""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index, indices_for
from ..shapes import check_hyperparameters, conv_output_size
from .base import Layer, axis_values, entry, taken_by
from .registry import LayerKind, Signature, TorchOp, register
from .stack import (Count, FeatureShape, NetLayer, axes_text, dot_latex, grow_receptive_field, per_axis,
                    window_axis_steps)


class Conv(Layer):
    """``conv1d`` / ``conv2d``: y[o, i…] = b[o] + Σ_c Σ_k w[o, c, k…] · x[c, s·i + d·k − p …].

    With a single-channel input (x of rank ``dims``) the weight is just the
    kernel (rank ``dims``) and the channel indices disappear.
    """

    def __init__(self, name, x, weight, bias=None, stride=1, padding=0, dilation=1, dims=1):
        self.kind = f"conv{dims}d"
        self.dims = dims
        self.stride = axis_values(stride, dims, "stride")
        self.padding = axis_values(padding, dims, "padding")
        self.dilation = axis_values(dilation, dims, "dilation")
        if x.rank == dims and weight.rank == dims:
            self.channels = False
            kernel, spatial, out_lead = weight.shape, x.shape, ()
        elif x.rank == dims + 1 and weight.rank == dims + 2:
            self.channels = True
            kernel, spatial, out_lead = weight.shape[2:], x.shape[1:], (weight.shape[0],)
            if sp.simplify(weight.shape[1] - x.shape[0]) != 0:
                raise ShapeError(
                    f"{self.kind}: weight {weight.name} expects {weight.shape[1]} input channels "
                    f"but {x.name} has {x.shape[0]}")
        else:
            raise ShapeError(
                f"{self.kind}: input {x.name} has rank {x.rank} and weight {weight.name} rank "
                f"{weight.rank}; expected ranks ({dims}, {dims}) for one channel or "
                f"({dims + 1}, {dims + 2}) for (channels, ...) and (out, in, kernel...)")
        if bias is not None:
            if not self.channels or bias.rank != 1 or sp.simplify(bias.shape[0] - weight.shape[0]) != 0:
                raise ShapeError(f"{self.kind}: bias {bias.name} must have shape ({weight.shape[0]},)"
                                 if self.channels else f"{self.kind}: a bias needs channel dimensions")
        self.kernel = tuple(kernel)
        out = tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                    zip(spatial, kernel, self.stride, self.padding, self.dilation))
        self.x, self.weight, self.bias = x, weight, bias
        super().__init__(name, [t for t in (x, weight, bias) if t is not None], out_lead + out)

    def describe(self):
        parts = [self.kind]
        for label, values, default in (("stride", self.stride, 1), ("padding", self.padding, 0),
                                       ("dilation", self.dilation, 1)):
            if any(v != default for v in values):
                parts.append(f"{label} {', '.join(map(str, values))}")
        return ", ".join(parts)

    def definition(self, idx, avoid=()):
        taken = taken_by(avoid, idx)
        if self.channels:
            o, pos = idx[0], idx[1:]
            c = fresh_index(self.x.shape[0], taken, ("c", "d", "e", "a", "b"))
            taken.add(c.name)
        else:
            pos = idx
        ks = indices_for(self.kernel, taken, ("k", "l", "r", "u", "v"))
        x_pos = tuple(s * p + d * k - pad for p, k, s, d, pad in
                      zip(pos, ks, self.stride, self.dilation, self.padding))
        if self.channels:
            body = entry(self.weight, (o, c) + ks) * entry(self.x, (c,) + x_pos)
            limits = [(c, 0, self.x.shape[0] - 1)]
        else:
            body = entry(self.weight, ks) * entry(self.x, x_pos)
            limits = []
        limits += [(k, 0, n - 1) for k, n in zip(ks, self.kernel)]
        expr = sp.Sum(body, *reversed(limits))
        if self.bias is not None:
            expr = entry(self.bias, (o,)) + expr
        return expr

def conv1d(name, x, weight, bias=None, stride=1, padding=0, dilation=1):
    return Conv(name, x, weight, bias, stride, padding, dilation, dims=1)


def conv2d(name, x, weight, bias=None, stride=1, padding=0, dilation=1):
    return Conv(name, x, weight, bias, stride, padding, dilation, dims=2)


def _torch_conv(layer, get, num):
    import torch.nn.functional as F
    fn = F.conv1d if layer.dims == 1 else F.conv2d
    x, w = get(layer.x), get(layer.weight)
    b = get(layer.bias) if layer.bias is not None else None
    options = dict(stride=tuple(num(v) for v in layer.stride), padding=tuple(num(v) for v in layer.padding),
                   dilation=tuple(num(v) for v in layer.dilation))
    if not layer.channels:       # one channel: x (L,) or (H, W), kernel (K,) or (KH, KW)
        return fn(x.unsqueeze(0), w[None, None], None, **options)[0]
    return fn(x, w, b, **options)


# ---------------------------------------------------------------------------------------------
# In network: stacks


class NetConv(NetLayer):
    has_weights = True

    def __init__(self, name, call, text, node, dims, in_channels, out_channels, kernel_size, stride=1,
                 padding=0, dilation=1, bias=True):
        super().__init__(name, call, text, node)
        self.dims, self.kind = dims, f"Conv{dims}d"
        self.in_channels, self.out_channels, self.bias = in_channels, out_channels, bias
        self.kernel = per_axis(self, kernel_size, dims, "kernel_size")
        self.stride = per_axis(self, stride, dims, "stride")
        self.padding = per_axis(self, padding, dims, "padding")
        self.dilation = per_axis(self, dilation, dims, "dilation")
        for k, s, p, d in zip(self.kernel, self.stride, self.padding, self.dilation):
            try:
                check_hyperparameters(k, s, p, d)
            except ShapeError as exc:
                raise self.error(exc.message) from None

    def count(self, mode):
        with_bias = self.bias if mode == "declared" else mode == "with"
        weights = sp.Mul(self.in_channels, *self.kernel)
        if with_bias:
            return Count((weights + 1) * self.out_channels,
                         rf"({dot_latex(self.in_channels, *self.kernel)} + 1) \cdot {sp.latex(self.out_channels)}")
        return Count(weights * self.out_channels, dot_latex(self.in_channels, *self.kernel, self.out_channels))

    def count_note(self):
        kernel = "×".join(map(str, self.kernel))
        return (f"{self.out_channels} filters of {self.in_channels}×{kernel} weights each "
                f"(in channels × kernel), plus one bias per filter")

    def output(self, shape):
        if shape.channels is not None and sp.simplify(shape.channels - self.in_channels) != 0:
            raise self.error(f"expects {self.in_channels} input channels but its input has {shape.channels}")
        if shape.spatial is None:
            return shape.with_(channels=self.out_channels)
        if len(shape.spatial) != self.dims:
            raise self.error(f"needs an input with {self.dims} spatial ax{'i' if self.dims == 1 else 'e'}s; "
                             f"its input is {shape.text()} ({shape.layout})")
        try:
            spatial = self._sizes(shape.spatial)
        except ShapeError as exc:
            raise self.error(exc.message) from None
        return FeatureShape(shape.batch, self.out_channels, spatial, shape.layout)

    def _sizes(self, spatial):
        """The output size along each spatial axis (a transposed convolution has its own)."""
        return tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                     zip(spatial, self.kernel, self.stride, self.padding, self.dilation))

    def axis_steps(self, shape):
        return window_axis_steps(shape, self.kernel, self.stride, self.padding, self.dilation) + [
            (rf"C_{{\text{{out}}}} = {sp.latex(self.out_channels)}", "one output channel per filter")]

    def receptive(self, r, j):
        return grow_receptive_field(r, j, self.kernel, self.stride, self.dilation)

    def multiply_adds(self, shape_in, shape_out):
        if shape_out is None or not shape_out.known:
            return None
        return sp.Mul(self.out_channels, *shape_out.spatial) * sp.Mul(self.in_channels, *self.kernel)

    def describe(self):
        kernel = "×".join(map(str, self.kernel))
        extra = [f"{label} {axes_text(v)}" for label, v, default in
                 (("stride", self.stride, 1), ("padding", self.padding, 0), ("dilation", self.dilation, 1))
                 if any(x != default for x in v)]
        return ", ".join([f"{self.kind} {kernel}, {self.in_channels} → {self.out_channels}"] + extra)


def _torch_module(layer, num, bias):
    import torch
    cls = torch.nn.Conv1d if layer.dims == 1 else torch.nn.Conv2d
    return cls(num(layer.in_channels), num(layer.out_channels), tuple(num(k) for k in layer.kernel),
               stride=tuple(num(v) for v in layer.stride), padding=tuple(num(v) for v in layer.padding),
               dilation=tuple(num(v) for v in layer.dilation), bias=layer.bias if bias is None else bias,
               dtype=torch.float64)


def _signature(dims):
    def build(name, call, text, node, **kw):
        return NetConv(name, call, text, node, dims, **kw)
    return Signature(build, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"),
                     3, {"stride": 1, "padding": 0, "dilation": 1, "bias": True})


for _dims, _builder in ((1, conv1d), (2, conv2d)):
    register(LayerKind(
        f"conv{_dims}d", _builder, ("input", "weight", "bias"), ("stride", "padding", "dilation"),
        torch=TorchOp(f"torch.nn.functional.conv{_dims}d", _torch_conv),
        module=f"Conv{_dims}d", signature=_signature(_dims), torch_module=_torch_module,
        torch_module_name=f"torch.nn.Conv{_dims}d", prefix="conv"))
