"""Transposed convolutions: ``conv_transpose1d`` / ``conv_transpose2d``, PyTorch's
``F.conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
dilation=1)``.

Each input entry x[c, j] scatters w[c, o, k] · x[c, j] to the output position s·j + d·k − p:

    y[o, i] = b[o] + Σ_c Σ_j Σ_k w[c, o, k] · x[c, j] · δ(s·j + d·k − p, i),

the weight laid out (in_channels, out_channels/groups, *kernel) as PyTorch's, and the output length
(L − 1)·s − 2p + d·(K − 1) + output_padding + 1. With ``groups`` G, output channel o of group
g = ⌊o / (O/G)⌋ reads only the input channels of group g, with the weight w[g·C/G + c, o − g·O/G, k].
An optional leading batch axis N is carried through. Its matrix is Aᵀ for the convolution with the
same weight, stride, padding and dilation (``symderive/asks/conv_transpose_matrix.py`` proves it, for
groups=1).
"""
import sympy as sp

from ..contract import contract
from ..errors import ShapeError
from ..indices import fresh_index, indices_for
from ..shapes import check_hyperparameters
from .base import Layer, axis_values, entry, taken_by
from .conv import NetConv, _check_groups
from .registry import LayerKind, Signature, TorchOp, register
from .stack import axes_text, per_axis


def conv_transpose_output_size(n, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """PyTorch's output length of a transposed convolution along one axis.

    >>> conv_transpose_output_size(3, 3, stride=2, padding=1, output_padding=1)
    6
    >>> L, K, S = sp.symbols('L K S', integer=True, positive=True)
    >>> conv_transpose_output_size(L, K, S)
    K + S*(L - 1)
    """
    n, kernel, stride, padding, output_padding, dilation = map(
        sp.sympify, (n, kernel, stride, padding, output_padding, dilation))
    check_hyperparameters(kernel, stride, padding, dilation)
    if output_padding.is_number:
        if not output_padding.is_integer or output_padding < 0:
            raise ShapeError(f"output_padding must be a non-negative integer, got {output_padding}")
        if stride.is_number and dilation.is_number and output_padding >= stride and output_padding >= dilation:
            raise ShapeError(f"output_padding {output_padding} must be smaller than the stride {stride} "
                             f"or the dilation {dilation} (as PyTorch requires)")
    size = (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if size.is_number and size < 1:
        raise ShapeError(f"the output length (L−1)·s − 2p + d·(K−1) + output_padding + 1 = {size} "
                         f"is not positive (L {n}, kernel {kernel}, stride {stride}, padding {padding})")
    return size


class ConvTranspose(Layer):
    """``conv_transpose1d`` / ``conv_transpose2d`` on (C, L…) or (N, C, L…), weight (C, O, K…).

    >>> from symderive.tensors import Tensor
    >>> ConvTranspose('y', Tensor('x', (1, 3)), Tensor('w', (1, 1, 2)), stride=2).shape
    (1, 6)
    """

    def __init__(self, name, x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1, dims=1,
                 groups=1):
        self.kind = f"conv_transpose{dims}d"
        self.dims = dims
        self.groups = sp.sympify(groups)
        self.stride = axis_values(stride, dims, "stride")
        self.padding = axis_values(padding, dims, "padding")
        self.output_padding = axis_values(output_padding, dims, "output_padding")
        self.dilation = axis_values(dilation, dims, "dilation")
        if weight.rank != dims + 2 or x.rank not in (dims + 1, dims + 2):
            raise ShapeError(
                f"{self.kind}: input {x.name} has rank {x.rank} and weight {weight.name} rank {weight.rank}; "
                f"expected input (C_in, …) or (N, C_in, …) with {dims} spatial ax{'i' if dims == 1 else 'e'}s "
                f"and weight (C_in, C_out, kernel…) of rank {dims + 2}")
        self.batch = x.rank == dims + 2
        channels = x.shape[1] if self.batch else x.shape[0]
        if sp.simplify(weight.shape[0] - channels) != 0:
            raise ShapeError(f"{self.kind}: weight {weight.name} expects {weight.shape[0]} input channels "
                             f"(its first axis) but {x.name} has {channels}")
        _check_groups(self.kind, self.groups, channels, weight.shape[1] * self.groups)
        out_channels = weight.shape[1] * self.groups
        if bias is not None and (bias.rank != 1 or sp.simplify(bias.shape[0] - out_channels) != 0):
            raise ShapeError(f"{self.kind}: bias {bias.name} must have shape ({out_channels},)")
        self.kernel = tuple(weight.shape[2:])
        spatial = x.shape[x.rank - dims:]
        out = tuple(conv_transpose_output_size(n, k, s, p, op, d) for n, k, s, p, op, d in
                    zip(spatial, self.kernel, self.stride, self.padding, self.output_padding, self.dilation))
        self.x, self.weight, self.bias = x, weight, bias
        lead = ((x.shape[0],) if self.batch else ()) + (out_channels,)
        super().__init__(name, [t for t in (x, weight, bias) if t is not None], lead + out)

    def describe(self):
        parts = [self.kind]
        for label, values, default in (("stride", self.stride, 1), ("padding", self.padding, 0),
                                       ("output_padding", self.output_padding, 0),
                                       ("dilation", self.dilation, 1)):
            if any(v != default for v in values):
                parts.append(f"{label} {', '.join(map(str, values))}")
        if self.groups != 1:
            parts.append(f"groups {self.groups}")
        return ", ".join(parts)

    def definition(self, idx, avoid=()):
        taken = taken_by(avoid, idx)
        lead = tuple(idx[:1]) if self.batch else ()
        o, pos = idx[len(lead)], idx[len(lead) + 1:]
        per_group = self.weight.shape[0] / self.groups          # input channels each group reads
        c = fresh_index(per_group, taken, ("c", "d", "e", "a"))
        taken.add(c.name)
        spatial_in = self.x.shape[self.x.rank - self.dims:]
        js = indices_for(spatial_in, taken, ("j", "m", "q", "t"))
        taken |= {j.name for j in js}
        ks = indices_for(self.kernel, taken, ("k", "l", "r", "u", "v"))
        deltas = sp.Mul(*[sp.KroneckerDelta(s * j + d * k - p, i) for i, j, k, s, d, p in
                          zip(pos, js, ks, self.stride, self.dilation, self.padding)])
        if self.groups != 1:
            group = sp.floor(o / self.weight.shape[1])         # output channel o's group g = ⌊o / (O/G)⌋
            channel, local = c + group * per_group, o - group * self.weight.shape[1]
        else:
            channel, local = c, o
        body = entry(self.weight, (channel, local) + ks) * entry(self.x, lead + (channel,) + js) * deltas
        limits = [(c, 0, per_group - 1)] + [(j, 0, n - 1) for j, n in zip(js, spatial_in)] \
            + [(k, 0, n - 1) for k, n in zip(ks, self.kernel)]
        # The deltas absorbed here, into the kernel index (a guard on the input position j inside
        # its sum): later contractions then never meet a delta inside a sum inside a product.
        expr = contract(sp.Sum(body, *reversed(limits)))
        if self.bias is not None:
            expr = entry(self.bias, (o,)) + expr
        return expr


def conv_transpose1d(name, x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return ConvTranspose(name, x, weight, bias, stride, padding, output_padding, dilation, dims=1, groups=groups)


def conv_transpose2d(name, x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return ConvTranspose(name, x, weight, bias, stride, padding, output_padding, dilation, dims=2, groups=groups)


def _torch_conv_transpose(layer, get, num):
    import torch.nn.functional as F
    fn = F.conv_transpose1d if layer.dims == 1 else F.conv_transpose2d
    x, w = get(layer.x), get(layer.weight)
    b = get(layer.bias) if layer.bias is not None else None
    options = {name: tuple(num(v) for v in getattr(layer, name))
               for name in ("stride", "padding", "output_padding", "dilation")}
    options["groups"] = num(layer.groups)
    return fn(x, w, b, **options) if layer.batch else fn(x.unsqueeze(0), w, b, **options)[0]


# ---------------------------------------------------------------------------------------------
# In network: stacks


class NetConvTranspose(NetConv):
    """``ConvTranspose1d`` / ``ConvTranspose2d(in_channels, out_channels, kernel_size, stride=1,
    padding=0, output_padding=0, dilation=1, bias=True)``: the weights of a convolution from
    out_channels to in_channels, so the same count; the output size of the transposed one."""

    def __init__(self, name, call, text, node, dims, in_channels, out_channels, kernel_size, stride=1,
                 padding=0, output_padding=0, dilation=1, bias=True):
        super().__init__(name, call, text, node, dims, in_channels, out_channels, kernel_size, stride,
                         padding, dilation, bias)
        self.kind = f"ConvTranspose{dims}d"
        self.output_padding = per_axis(self, output_padding, dims, "output_padding")
        try:
            self._sizes((sp.Integer(1),) * dims)
        except ShapeError as exc:
            raise self.error(exc.message) from None

    def _sizes(self, spatial):
        return tuple(conv_transpose_output_size(n, k, s, p, op, d) for n, k, s, p, op, d in
                     zip(spatial, self.kernel, self.stride, self.padding, self.output_padding, self.dilation))

    def count_note(self):
        kernel = "×".join(map(str, self.kernel))
        return (f"{self.in_channels}×{self.out_channels}×{kernel} weights (in channels × out channels × kernel, "
                f"PyTorch's layout), plus one bias per output channel")

    def axis_steps(self, shape):
        if shape.spatial is None:
            return []
        names = ["length"] if self.dims == 1 else ["height", "width"]
        steps = [(r"n' = (n - 1)\,S - 2P + D\,(K - 1) + A + 1", "output size along each spatial axis "
                  "(PyTorch's transposed convolution, A = output_padding)")]
        for name, n, out, k, s, p, op, d in zip(names, shape.spatial, self._sizes(shape.spatial), self.kernel,
                                                self.stride, self.padding, self.output_padding, self.dilation):
            steps.append((rf"n'_{{\text{{{name}}}}} = ({sp.latex(n)} - 1) \cdot {sp.latex(s)} - 2 \cdot {sp.latex(p)}"
                          rf" + {sp.latex(d)} \cdot ({sp.latex(k)} - 1) + {sp.latex(op)} + 1 = {sp.latex(out)}",
                          f"{name}: n = {n}, K = {k}, S = {s}, P = {p}, D = {d}, A = {op}"))
        return steps + [(rf"C_{{\text{{out}}}} = {sp.latex(self.out_channels)}", "out_channels")]

    def receptive(self, r, j):
        raise self.error("the receptive field is defined here for convolutions and pooling, not for a "
                         "transposed convolution")

    def multiply_adds(self, shape_in, shape_out):
        if shape_in is None or not shape_in.known:
            return None
        return sp.Mul(self.in_channels, *shape_in.spatial) * sp.Mul(self.out_channels, *self.kernel)

    def describe(self):
        return super().describe().replace(f"Conv{self.dims}d", self.kind, 1) + (
            f", output_padding {axes_text(self.output_padding)}" if any(v != 0 for v in self.output_padding) else "")


def _torch_module(layer, num, bias):
    import torch
    cls = torch.nn.ConvTranspose1d if layer.dims == 1 else torch.nn.ConvTranspose2d
    return cls(num(layer.in_channels), num(layer.out_channels), tuple(num(k) for k in layer.kernel),
               stride=tuple(num(v) for v in layer.stride), padding=tuple(num(v) for v in layer.padding),
               output_padding=tuple(num(v) for v in layer.output_padding),
               dilation=tuple(num(v) for v in layer.dilation), bias=layer.bias if bias is None else bias,
               dtype=torch.float64)


def _signature(dims):
    def build(name, call, text, node, **kw):
        return NetConvTranspose(name, call, text, node, dims, **kw)
    # PyTorch's order; groups (next) is not supported, so bias and dilation are keywords here
    return Signature(build, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding"), 3,
                     {"stride": 1, "padding": 0, "output_padding": 0, "dilation": 1, "bias": True})


for _dims, _builder in ((1, conv_transpose1d), (2, conv_transpose2d)):
    register(LayerKind(
        f"conv_transpose{_dims}d", _builder, ("input", "weight", "bias"),
        ("stride", "padding", "output_padding", "groups", "dilation"),
        torch=TorchOp(f"torch.nn.functional.conv_transpose{_dims}d", _torch_conv_transpose),
        module=f"ConvTranspose{_dims}d", signature=_signature(_dims), torch_module=_torch_module,
        torch_module_name=f"torch.nn.ConvTranspose{_dims}d", prefix="deconv"))
