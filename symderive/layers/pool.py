"""Pooling: ``avg_pool1d/2d``, ``max_pool1d/2d`` index formulas and ``AvgPool1d/2d``,
``MaxPool1d/2d`` stack entries (PyTorch's arguments and floor rounding)."""
import sympy as sp

from ..errors import ShapeError
from ..indices import indices_for
from ..shapes import check_hyperparameters, conv_output_size
from ..tensors import flat_positions
from .base import Layer, axis_values, entry, taken_by
from .registry import LayerKind, Signature, TorchOp, register
from .stack import NetLayer, axes_text, grow_receptive_field, per_axis, window_axis_steps


class Pool(Layer):
    """``avg_pool1d/2d`` (count_include_pad, as PyTorch) and ``max_pool1d/2d``.

    Works on (channels, …) or on a single channel; the kernel size is a number
    for max pooling (the max is written out over the window).
    """

    def __init__(self, name, x, kernel_size, stride=None, padding=0, mode="avg", dims=1):
        self.kind = f"{mode}_pool{dims}d"
        self.mode, self.dims = mode, dims
        self.kernel = axis_values(kernel_size, dims, "kernel_size")
        self.stride = axis_values(kernel_size if stride is None else stride, dims, "stride")
        self.padding = axis_values(padding, dims, "padding")
        if x.rank not in (dims, dims + 1):
            raise ShapeError(f"{self.kind}: input {x.name} has rank {x.rank}, expected {dims} or {dims + 1}")
        if mode == "max":
            if not all(k.is_Integer for k in self.kernel):
                raise ShapeError(f"{self.kind}: the kernel size must be a number")
            if any(p != 0 for p in self.padding):
                raise ShapeError(f"{self.kind}: padding is not supported for max pooling")
        lead = x.shape[: x.rank - dims]
        out = tuple(conv_output_size(n, k, s, p) for n, k, s, p in
                    zip(x.shape[x.rank - dims:], self.kernel, self.stride, self.padding))
        self.x = x
        super().__init__(name, [x], lead + out)

    def describe(self):
        return f"{self.kind}, kernel {', '.join(map(str, self.kernel))}, stride {', '.join(map(str, self.stride))}"

    def definition(self, idx, avoid=()):
        lead, pos = idx[: len(idx) - self.dims], idx[len(idx) - self.dims:]
        ks = indices_for(self.kernel, taken_by(avoid, idx), ("k", "l", "r", "u"))
        x_pos = tuple(s * p + k - pad for p, k, s, pad in zip(pos, ks, self.stride, self.padding))
        value = entry(self.x, tuple(lead) + x_pos)
        if self.mode == "avg":
            return sp.Sum(value, *[(k, 0, n - 1) for k, n in zip(ks, self.kernel)]) / sp.Mul(*self.kernel)
        offsets = _window(self.kernel)
        return sp.Max(*[value.xreplace(dict(zip(ks, off))) for off in offsets])


def _window(kernel):
    return flat_positions(kernel)


def _torch_pool(layer, get, num):
    import torch.nn.functional as F
    x = get(layer.x)
    single = x.dim() == layer.dims           # no channel axis: add one for torch
    if single:
        x = x.unsqueeze(0)
    kernel, stride = tuple(num(v) for v in layer.kernel), tuple(num(v) for v in layer.stride)
    padding = tuple(num(v) for v in layer.padding)
    if layer.mode == "avg":
        fn = F.avg_pool1d if layer.dims == 1 else F.avg_pool2d
        y = fn(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True)
    else:
        fn = F.max_pool1d if layer.dims == 1 else F.max_pool2d
        y = fn(x, kernel, stride, padding)
    return y[0] if single else y


# ---------------------------------------------------------------------------------------------
# In network: stacks


class NetPool(NetLayer):
    def __init__(self, name, call, text, node, dims, mode, kernel_size, stride=None, padding=0):
        super().__init__(name, call, text, node)
        self.dims, self.mode = dims, mode
        self.kind = f"{mode.capitalize()}Pool{dims}d"
        self.kernel = per_axis(self, kernel_size, dims, "kernel_size")
        self.stride = per_axis(self, kernel_size if stride is None else stride, dims, "stride")
        self.padding = per_axis(self, padding, dims, "padding")
        self.dilation = (sp.Integer(1),) * dims
        for k, s, p in zip(self.kernel, self.stride, self.padding):
            try:
                check_hyperparameters(k, s, p, 1)
            except ShapeError as exc:
                raise self.error(exc.message) from None

    def count_note(self):
        return "pooling has no parameters (a fixed max or mean over each window)"

    def output(self, shape):
        if shape.spatial is None:
            return shape
        if len(shape.spatial) != self.dims:
            raise self.error(f"needs an input with {self.dims} spatial ax{'i' if self.dims == 1 else 'e'}s; "
                             f"its input is {shape.text()} ({shape.layout})")
        try:
            spatial = tuple(conv_output_size(n, k, s, p) for n, k, s, p in
                            zip(shape.spatial, self.kernel, self.stride, self.padding))
        except ShapeError as exc:
            raise self.error(exc.message) from None
        return shape.with_(spatial=spatial)

    def axis_steps(self, shape):
        return window_axis_steps(shape, self.kernel, self.stride, self.padding, self.dilation) + [
            (rf"C_{{\text{{out}}}} = C_{{\text{{in}}}} = {sp.latex(shape.channels)}",
             "pooling works on each channel separately")]

    def receptive(self, r, j):
        return grow_receptive_field(r, j, self.kernel, self.stride, self.dilation)

    def describe(self):
        kernel = "×".join(map(str, self.kernel))
        return f"{self.kind} {kernel}, stride {axes_text(self.stride)}" + (
            f", padding {axes_text(self.padding)}" if any(p != 0 for p in self.padding) else "")


def _torch_module(layer, num, bias):
    import torch
    nn = torch.nn
    cls = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d,
           ("avg", 2): nn.AvgPool2d}[(layer.mode, layer.dims)]
    return cls(tuple(num(k) for k in layer.kernel), stride=tuple(num(v) for v in layer.stride),
               padding=tuple(num(v) for v in layer.padding))


def _builder(mode, dims):
    return lambda n, x, **kw: Pool(n, x, mode=mode, dims=dims, **kw)


def _signature(dims, mode):
    def build(name, call, text, node, **kw):
        return NetPool(name, call, text, node, dims, mode, **kw)
    return Signature(build, ("kernel_size", "stride", "padding"), 1, {"stride": None, "padding": 0})


for _mode in ("avg", "max"):
    for _dims in (1, 2):
        _module = f"{_mode.capitalize()}Pool{_dims}d"
        register(LayerKind(
            f"{_mode}_pool{_dims}d", _builder(_mode, _dims), ("input",), ("kernel_size", "stride", "padding"),
            torch=TorchOp(f"torch.nn.functional.{_mode}_pool{_dims}d", _torch_pool),
            module=_module, signature=_signature(_dims, _mode), torch_module=_torch_module,
            torch_module_name=f"torch.nn.{_module}", prefix="pool"))
