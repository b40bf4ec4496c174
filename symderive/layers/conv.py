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
    """``conv1d`` / ``conv2d``:
    y[n, o, i…] = b[o] + Σ_c Σ_k w[o, c, k…] · x[n, g(o)·C/G + c, s·i + d·k − p …].

    As PyTorch: the input is (channels, …) or batched (N, channels, …), the weight
    (out_channels, in_channels/groups, *kernel); with ``groups`` G the output channel o sees only
    the input channels of its group g(o) = ⌊o / (O/G)⌋ (G = in_channels: depthwise). With a
    single-channel input (x of rank ``dims``) the weight is just the kernel (rank ``dims``) and
    the channel indices disappear.
    """

    def __init__(self, name, x, weight, bias=None, stride=1, padding=0, dilation=1, dims=1, groups=1):
        self.kind = f"conv{dims}d"
        self.dims = dims
        self.stride = axis_values(stride, dims, "stride")
        self.padding = axis_values(padding, dims, "padding")
        self.dilation = axis_values(dilation, dims, "dilation")
        self.groups = sp.sympify(groups)
        self.batch = x.rank == dims + 2
        if x.rank == dims and weight.rank == dims:
            self.channels = False
            kernel, spatial, out_lead = weight.shape, x.shape, ()
        elif x.rank in (dims + 1, dims + 2) and weight.rank == dims + 2:
            self.channels = True
            lead = x.shape[:1] if self.batch else ()
            in_channels = x.shape[x.rank - dims - 1]
            kernel, spatial, out_lead = weight.shape[2:], x.shape[x.rank - dims:], lead + (weight.shape[0],)
            _check_groups(self.kind, self.groups, in_channels, weight.shape[0])
            if sp.simplify(weight.shape[1] * self.groups - in_channels) != 0:
                if self.groups == 1:
                    raise ShapeError(f"{self.kind}: weight {weight.name} expects {weight.shape[1]} input channels "
                                     f"but {x.name} has {in_channels}")
                raise ShapeError(f"{self.kind}: weight {weight.name} expects {weight.shape[1]} input channels per "
                                 f"group but {x.name} has {in_channels} / groups {self.groups} = "
                                 f"{sp.simplify(in_channels / self.groups)}")
        else:
            raise ShapeError(
                f"{self.kind}: input {x.name} has rank {x.rank} and weight {weight.name} rank "
                f"{weight.rank}; expected ranks ({dims}, {dims}) for one channel, "
                f"({dims + 1}, {dims + 2}) for (channels, ...) and (out, in, kernel...), or "
                f"({dims + 2}, {dims + 2}) with a batch axis (N, channels, ...)")
        if self.groups != 1 and not self.channels:
            raise ShapeError(f"{self.kind}: groups needs channel dimensions")
        if bias is not None:
            if not self.channels or bias.rank != 1 or sp.simplify(bias.shape[0] - weight.shape[0]) != 0:
                raise ShapeError(f"{self.kind}: bias {bias.name} must have shape ({weight.shape[0]},)"
                                 if self.channels else f"{self.kind}: a bias needs channel dimensions")
        self.kernel = tuple(kernel)
        out = tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                    zip(spatial, kernel, self.stride, self.padding, self.dilation))
        self.x, self.weight, self.bias = x, weight, bias
        super().__init__(name, [t for t in (x, weight, bias) if t is not None], out_lead + out)

    @property
    def in_channels(self):
        return self.x.shape[self.x.rank - self.dims - 1] if self.channels else sp.Integer(1)

    def group_of(self, o):
        """The group of output channel o: ⌊o / (out_channels / groups)⌋ (0 without groups)."""
        return sp.floor(o * self.groups / self.weight.shape[0]) if self.groups != 1 else sp.Integer(0)

    def describe(self):
        parts = [self.kind]
        for label, values, default in (("stride", self.stride, 1), ("padding", self.padding, 0),
                                       ("dilation", self.dilation, 1)):
            if any(v != default for v in values):
                parts.append(f"{label} {', '.join(map(str, values))}")
        if self.groups != 1:
            parts.append(f"groups {self.groups}")
        if self.batch:
            parts.append("batched")
        return ", ".join(parts)

    def definition(self, idx, avoid=()):
        taken = taken_by(avoid, idx)
        if self.channels:
            lead = tuple(idx[:1]) if self.batch else ()
            o, pos = idx[len(lead)], idx[len(lead) + 1:]
            c = fresh_index(self.weight.shape[1], taken, ("c", "d", "e", "a", "b"))
            taken.add(c.name)
        else:
            pos = idx
        ks = indices_for(self.kernel, taken, ("k", "l", "r", "u", "v"))
        x_pos = tuple(s * p + d * k - pad for p, k, s, d, pad in
                      zip(pos, ks, self.stride, self.dilation, self.padding))
        if self.channels:
            channel = c + self.group_of(o) * self.weight.shape[1] if self.groups != 1 else c
            body = entry(self.weight, (o, c) + ks) * entry(self.x, lead + (channel,) + x_pos)
            limits = [(c, 0, self.weight.shape[1] - 1)]
        else:
            body = entry(self.weight, ks) * entry(self.x, x_pos)
            limits = []
        limits += [(k, 0, n - 1) for k, n in zip(ks, self.kernel)]
        expr = sp.Sum(body, *reversed(limits))
        if self.bias is not None:
            expr = entry(self.bias, (o,)) + expr
        return expr


def _check_groups(kind, groups, in_channels, out_channels):
    """PyTorch's rules: groups a positive integer dividing in_channels and out_channels."""
    if groups.is_number and (not groups.is_integer or groups < 1):
        raise ShapeError(f"{kind}: groups must be a positive integer, got {groups}")
    for what, n in (("in_channels", in_channels), ("out_channels", out_channels)):
        quotient = sp.simplify(n / groups)
        if quotient.is_integer is False or (quotient.is_number and not quotient.is_integer):
            raise ShapeError(f"{kind}: groups {groups} must divide {what} {n}")


def conv1d(name, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return Conv(name, x, weight, bias, stride, padding, dilation, dims=1, groups=groups)


def conv2d(name, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return Conv(name, x, weight, bias, stride, padding, dilation, dims=2, groups=groups)


def _torch_conv(layer, get, num):
    import torch.nn.functional as F
    fn = F.conv1d if layer.dims == 1 else F.conv2d
    x, w = get(layer.x), get(layer.weight)
    b = get(layer.bias) if layer.bias is not None else None
    options = dict(stride=tuple(num(v) for v in layer.stride), padding=tuple(num(v) for v in layer.padding),
                   dilation=tuple(num(v) for v in layer.dilation), groups=num(layer.groups))
    if not layer.channels:       # one channel: x (L,) or (H, W), kernel (K,) or (KH, KW)
        return fn(x.unsqueeze(0), w[None, None], None, **options)[0]
    return fn(x, w, b, **options)


# ---------------------------------------------------------------------------------------------
# In network: stacks


class NetConv(NetLayer):
    has_weights = True

    def __init__(self, name, call, text, node, dims, in_channels, out_channels, kernel_size, stride=1,
                 padding=0, dilation=1, bias=True, groups=1):
        super().__init__(name, call, text, node)
        self.dims, self.kind = dims, f"Conv{dims}d"
        self.in_channels, self.out_channels, self.bias = in_channels, out_channels, bias
        self.groups = sp.sympify(groups)
        try:
            _check_groups(self.kind, self.groups, in_channels, out_channels)
        except ShapeError as exc:
            raise self.error(exc.message) from None
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
        weights = sp.Mul(self.in_channels / self.groups, *self.kernel)
        if with_bias:
            return Count((weights + 1) * self.out_channels,
                         rf"({dot_latex(self._per_filter(), *self.kernel)} + 1) \cdot {sp.latex(self.out_channels)}")
        return Count(weights * self.out_channels, dot_latex(self._per_filter(), *self.kernel, self.out_channels))

    def _per_filter(self):
        """Input channels each filter sees: in_channels / groups."""
        return sp.sympify(self.in_channels) / self.groups

    def count_note(self):
        kernel = "×".join(map(str, self.kernel))
        if self.groups != 1:
            return (f"{self.out_channels} filters of {self.in_channels / self.groups}×{kernel} weights each "
                    f"(in channels / groups {self.groups} × kernel), plus one bias per filter")
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
        return sp.Mul(self.out_channels, *shape_out.spatial) * sp.Mul(self.in_channels / self.groups, *self.kernel)

    def describe(self):
        kernel = "×".join(map(str, self.kernel))
        extra = [f"{label} {axes_text(v)}" for label, v, default in
                 (("stride", self.stride, 1), ("padding", self.padding, 0), ("dilation", self.dilation, 1))
                 if any(x != default for x in v)] + ([f"groups {self.groups}"] if self.groups != 1 else [])
        return ", ".join([f"{self.kind} {kernel}, {self.in_channels} → {self.out_channels}"] + extra)


def _torch_module(layer, num, bias):
    import torch
    cls = torch.nn.Conv1d if layer.dims == 1 else torch.nn.Conv2d
    return cls(num(layer.in_channels), num(layer.out_channels), tuple(num(k) for k in layer.kernel),
               stride=tuple(num(v) for v in layer.stride), padding=tuple(num(v) for v in layer.padding),
               dilation=tuple(num(v) for v in layer.dilation), groups=num(layer.groups),
               bias=layer.bias if bias is None else bias,
               dtype=torch.float64)


def _signature(dims):
    def build(name, call, text, node, **kw):
        return NetConv(name, call, text, node, dims, **kw)
    return Signature(build, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                             "groups"), 3, {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True})


for _dims, _builder in ((1, conv1d), (2, conv2d)):
    register(LayerKind(
        f"conv{_dims}d", _builder, ("input", "weight", "bias"), ("stride", "padding", "dilation", "groups"),
        torch=TorchOp(f"torch.nn.functional.conv{_dims}d", _torch_conv),
        module=f"Conv{_dims}d", signature=_signature(_dims), torch_module=_torch_module,
        torch_module_name=f"torch.nn.Conv{_dims}d", prefix="conv"))
