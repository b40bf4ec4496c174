"""Transposed convolutions: ``conv_transpose1d`` / ``conv_transpose2d``, PyTorch's
``F.conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
dilation=1)`` without groups.

Each input entry x[c, j] scatters w[c, o, k] · x[c, j] to the output position s·j + d·k − p:

    y[o, i] = b[o] + Σ_c Σ_j Σ_k w[c, o, k] · x[c, j] · δ(s·j + d·k − p, i),

the weight laid out (in_channels, out_channels, *kernel) as PyTorch's, and the output length
(L − 1)·s − 2p + d·(K − 1) + output_padding + 1. An optional leading batch axis N is carried
through. Its matrix is Aᵀ for the convolution with the same weight, stride, padding and dilation
(``symderive/transposed.py`` proves it).
"""
import sympy as sp

from ..contract import contract
from ..errors import ShapeError
from ..indices import fresh_index, indices_for
from ..shapes import check_hyperparameters
from .base import Layer, axis_values, entry, taken_by
from .registry import LayerKind, TorchOp, register


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

    def __init__(self, name, x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1, dims=1):
        self.kind = f"conv_transpose{dims}d"
        self.dims = dims
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
        if bias is not None and (bias.rank != 1 or sp.simplify(bias.shape[0] - weight.shape[1]) != 0):
            raise ShapeError(f"{self.kind}: bias {bias.name} must have shape ({weight.shape[1]},)")
        self.kernel = tuple(weight.shape[2:])
        spatial = x.shape[x.rank - dims:]
        out = tuple(conv_transpose_output_size(n, k, s, p, op, d) for n, k, s, p, op, d in
                    zip(spatial, self.kernel, self.stride, self.padding, self.output_padding, self.dilation))
        self.x, self.weight, self.bias = x, weight, bias
        lead = ((x.shape[0],) if self.batch else ()) + (weight.shape[1],)
        super().__init__(name, [t for t in (x, weight, bias) if t is not None], lead + out)

    def describe(self):
        parts = [self.kind]
        for label, values, default in (("stride", self.stride, 1), ("padding", self.padding, 0),
                                       ("output_padding", self.output_padding, 0),
                                       ("dilation", self.dilation, 1)):
            if any(v != default for v in values):
                parts.append(f"{label} {', '.join(map(str, values))}")
        return ", ".join(parts)

    def definition(self, idx, avoid=()):
        taken = taken_by(avoid, idx)
        lead = tuple(idx[:1]) if self.batch else ()
        o, pos = idx[len(lead)], idx[len(lead) + 1:]
        c = fresh_index(self.weight.shape[0], taken, ("c", "d", "e", "a"))
        taken.add(c.name)
        spatial_in = self.x.shape[self.x.rank - self.dims:]
        js = indices_for(spatial_in, taken, ("j", "m", "q", "t"))
        taken |= {j.name for j in js}
        ks = indices_for(self.kernel, taken, ("k", "l", "r", "u", "v"))
        deltas = sp.Mul(*[sp.KroneckerDelta(s * j + d * k - p, i) for i, j, k, s, d, p in
                          zip(pos, js, ks, self.stride, self.dilation, self.padding)])
        body = entry(self.weight, (c, o) + ks) * entry(self.x, lead + (c,) + js) * deltas
        limits = [(c, 0, self.weight.shape[0] - 1)] + [(j, 0, n - 1) for j, n in zip(js, spatial_in)] \
            + [(k, 0, n - 1) for k, n in zip(ks, self.kernel)]
        # The deltas absorbed here, into the kernel index (a guard on the input position j inside
        # its sum): later contractions then never meet a delta inside a sum inside a product.
        expr = contract(sp.Sum(body, *reversed(limits)))
        if self.bias is not None:
            expr = entry(self.bias, (o,)) + expr
        return expr


def conv_transpose1d(name, x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1):
    return ConvTranspose(name, x, weight, bias, stride, padding, output_padding, dilation, dims=1)


def conv_transpose2d(name, x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1):
    return ConvTranspose(name, x, weight, bias, stride, padding, output_padding, dilation, dims=2)


def _torch_conv_transpose(layer, get, num):
    import torch.nn.functional as F
    fn = F.conv_transpose1d if layer.dims == 1 else F.conv_transpose2d
    x, w = get(layer.x), get(layer.weight)
    b = get(layer.bias) if layer.bias is not None else None
    options = {name: tuple(num(v) for v in getattr(layer, name))
               for name in ("stride", "padding", "output_padding", "dilation")}
    return fn(x, w, b, **options) if layer.batch else fn(x.unsqueeze(0), w, b, **options)[0]


for _dims, _builder in ((1, conv_transpose1d), (2, conv_transpose2d)):
    register(LayerKind(
        f"conv_transpose{_dims}d", _builder, ("input", "weight", "bias"),
        ("stride", "padding", "output_padding", "dilation"),
        torch=TorchOp(f"torch.nn.functional.conv_transpose{_dims}d", _torch_conv_transpose)))
