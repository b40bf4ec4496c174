"""Pooling: ``avg_pool1d/2d``, ``max_pool1d/2d`` index formulas and ``AvgPool1d/2d``,
``MaxPool1d/2d`` stack entries (PyTorch's arguments and floor rounding)."""
import sympy as sp

from ..errors import ShapeError
from ..indices import indices_for
from ..shapes import check_hyperparameters, conv_output_size, pool_output_size
from ..tensors import flat_positions
from .base import Layer, axis_values, entry, taken_by
from .registry import LayerKind, Signature, TorchOp, register
from .stack import NetLayer, axes_text, grow_receptive_field, per_axis, window_axis_steps


class Pool(Layer):
    """``avg_pool1d/2d`` and ``max_pool1d/2d`` with PyTorch's ``padding``, ``ceil_mode`` and
    (average) ``count_include_pad``.

    Works on a single channel, on (channels, …) or on a batch (N, channels, …). Max pooling pads
    with −∞: an entry of a window outside the input is dropped from its max (written as a
    Piecewise that is −∞ there), so the kernel size must be a number. Average pooling pads with
    zeros and divides, as PyTorch, by the window clipped to the padded input
    (``count_include_pad=True``, its default; always the kernel size without ``ceil_mode``) or by
    the number of input entries in the window (``count_include_pad=False``).
    """

    def __init__(self, name, x, kernel_size, stride=None, padding=0, mode="avg", dims=1, ceil_mode=False,
                 count_include_pad=True):
        self.kind = f"{mode}_pool{dims}d"
        self.mode, self.dims = mode, dims
        self.kernel = axis_values(kernel_size, dims, "kernel_size")
        self.stride = axis_values(kernel_size if stride is None else stride, dims, "stride")
        self.padding = axis_values(padding, dims, "padding")
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        if x.rank not in (dims, dims + 1, dims + 2):
            raise ShapeError(f"{self.kind}: input {x.name} has rank {x.rank}, expected {dims}, {dims + 1} "
                             f"(channels, ...) or {dims + 2} (N, channels, ...)")
        if mode == "max" and not all(k.is_Integer for k in self.kernel):
            raise ShapeError(f"{self.kind}: the kernel size must be a number")
        lead = x.shape[: x.rank - dims]
        self.spatial = x.shape[x.rank - dims:]
        try:
            out = tuple(pool_output_size(n, k, s, p, 1, self.ceil_mode) for n, k, s, p in
                        zip(self.spatial, self.kernel, self.stride, self.padding))
        except ShapeError as exc:
            raise ShapeError(f"{self.kind}: {exc.message}") from None
        self.x = x
        super().__init__(name, [x], lead + out)

    def describe(self):
        text = f"{self.kind}, kernel {', '.join(map(str, self.kernel))}, stride {', '.join(map(str, self.stride))}"
        if any(p != 0 for p in self.padding):
            text += f", padding {', '.join(map(str, self.padding))}"
        if self.ceil_mode:
            text += ", ceil_mode"
        if self.mode == "avg" and not self.count_include_pad:
            text += ", count_include_pad=False"
        return text

    def _window_may_leave_input(self):
        return self.ceil_mode or any(p != 0 for p in self.padding)

    def divisor(self, pos):
        """PyTorch's divisor of the window at output position ``pos``."""
        if not self._window_may_leave_input() or (self.count_include_pad and not self.ceil_mode):
            return sp.Mul(*self.kernel)
        sizes = []
        for i, k, s, p, n in zip(pos, self.kernel, self.stride, self.padding, self.spatial):
            first = s * i - p
            if self.count_include_pad:
                sizes.append(sp.Min(first + k, n + p) - first)
            else:
                sizes.append(sp.Min(first + k, n) - sp.Max(first, 0))
        return sp.Mul(*sizes)

    def definition(self, idx, avoid=()):
        lead, pos = idx[: len(idx) - self.dims], idx[len(idx) - self.dims:]
        ks = indices_for(self.kernel, taken_by(avoid, idx), ("k", "l", "r", "u"))
        x_pos = tuple(s * p + k - pad for p, k, s, pad in zip(pos, ks, self.stride, self.padding))
        value = entry(self.x, tuple(lead) + x_pos)
        if self.mode == "avg":
            return sp.Sum(value, *[(k, 0, n - 1) for k, n in zip(ks, self.kernel)]) / self.divisor(pos)
        terms = []
        for off in _window(self.kernel):
            at = dict(zip(ks, off))
            term = value.xreplace(at)
            if self._window_may_leave_input():
                inside = sp.And(*[sp.And(q.xreplace(at) >= 0, q.xreplace(at) <= n - 1)
                                  for q, n in zip(x_pos, self.spatial)])
                term = sp.Piecewise((term, inside), (-sp.oo, True)) if inside is not sp.true else term
                if inside is sp.false:
                    continue
            terms.append(term)
        return sp.Max(*terms)


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
        y = fn(x, kernel, stride, padding, ceil_mode=layer.ceil_mode, count_include_pad=layer.count_include_pad)
    else:
        fn = F.max_pool1d if layer.dims == 1 else F.max_pool2d
        y = fn(x, kernel, stride, padding, ceil_mode=layer.ceil_mode)
    return y[0] if single else y


class AdaptiveAvgPool(Layer):
    """``adaptive_avg_pool1d/2d``: output entry i averages the input from ⌊i·L/out⌋ to
    ⌈(i + 1)·L/out⌉ − 1 along each axis (PyTorch's start and end indices)."""

    def __init__(self, name, x, output_size, dims=2):
        self.kind = f"adaptive_avg_pool{dims}d"
        self.dims = dims
        self.output_size = axis_values(output_size, dims, "output_size")
        if x.rank not in (dims + 1, dims + 2):
            raise ShapeError(f"{self.kind}: input {x.name} has rank {x.rank}, expected {dims + 1} "
                             f"(channels, ...) or {dims + 2} (N, channels, ...)")
        for n in self.output_size:
            if n.is_number and (not n.is_integer or n < 1):
                raise ShapeError(f"{self.kind}: output_size must be positive integers, got {n}")
        self.spatial = x.shape[x.rank - dims:]
        self.x = x
        super().__init__(name, [x], x.shape[: x.rank - dims] + self.output_size)

    def describe(self):
        return f"{self.kind}, output size {', '.join(map(str, self.output_size))}"

    def bounds(self, pos):
        """(start, end) per axis: the window is start … end − 1."""
        return [(sp.floor(i * n / m), sp.ceiling((i + 1) * n / m))
                for i, n, m in zip(pos, self.spatial, self.output_size)]

    def definition(self, idx, avoid=()):
        lead, pos = idx[: len(idx) - self.dims], idx[len(idx) - self.dims:]
        bounds = self.bounds(pos)
        ks = indices_for(self.spatial, taken_by(avoid, idx), ("k", "l", "r", "u"))
        value = entry(self.x, tuple(lead) + tuple(ks))
        total = sp.Sum(value, *[(k, a, b - 1) for k, (a, b) in reversed(list(zip(ks, bounds)))])
        return total / sp.Mul(*[b - a for a, b in bounds])


def _torch_adaptive(layer, get, num):
    import torch.nn.functional as F
    fn = F.adaptive_avg_pool1d if layer.dims == 1 else F.adaptive_avg_pool2d
    return fn(get(layer.x), tuple(num(v) for v in layer.output_size))


# ---------------------------------------------------------------------------------------------
# In network: stacks


def _needs_spatial_axes(layer, shape):
    if len(shape.spatial) != layer.dims:
        raise layer.error(f"needs an input with {layer.dims} spatial ax{'i' if layer.dims == 1 else 'e'}s; "
                          f"its input is {shape.text()} ({shape.layout})")


class NetPool(NetLayer):
    def __init__(self, name, call, text, node, dims, mode, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(name, call, text, node)
        self.dims, self.mode = dims, mode
        self.kind = f"{mode.capitalize()}Pool{dims}d"
        self.kernel = per_axis(self, kernel_size, dims, "kernel_size")
        self.stride = per_axis(self, kernel_size if stride is None else stride, dims, "stride")
        self.padding = per_axis(self, padding, dims, "padding")
        self.dilation = (sp.Integer(1),) * dims
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
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
        _needs_spatial_axes(self, shape)
        try:
            spatial = tuple(pool_output_size(n, k, s, p, 1, self.ceil_mode) for n, k, s, p in
                            zip(shape.spatial, self.kernel, self.stride, self.padding))
        except ShapeError as exc:
            raise self.error(exc.message) from None
        return shape.with_(spatial=spatial)

    def axis_steps(self, shape):
        steps = window_axis_steps(shape, self.kernel, self.stride, self.padding, self.dilation)
        if self.ceil_mode:
            steps = [(rf"\text{{ceil\_mode: }} {sp.latex(n)} = {sp.latex(out)}",
                      "with ceil_mode the division rounds up; a last window that would start in the right "
                      "padding is dropped (PyTorch)")
                     for n, out in zip(shape.spatial, self.output(shape).spatial)]
        return steps + [
            (rf"C_{{\text{{out}}}} = C_{{\text{{in}}}} = {sp.latex(shape.channels)}",
             "pooling works on each channel separately")]

    def receptive(self, r, j):
        return grow_receptive_field(r, j, self.kernel, self.stride, self.dilation)

    def describe(self):
        kernel = "×".join(map(str, self.kernel))
        return f"{self.kind} {kernel}, stride {axes_text(self.stride)}" + (
            f", padding {axes_text(self.padding)}" if any(p != 0 for p in self.padding) else "") + (
            ", ceil_mode" if self.ceil_mode else "") + (
            ", count_include_pad=False" if not self.count_include_pad else "")


class NetAdaptiveAvgPool(NetLayer):
    """``AdaptiveAvgPool1d/2d(output_size)``: the output has the given spatial size whatever the input's."""

    def __init__(self, name, call, text, node, dims, output_size):
        super().__init__(name, call, text, node)
        self.dims, self.kind = dims, f"AdaptiveAvgPool{dims}d"
        self.output_size = per_axis(self, output_size, dims, "output_size")

    def count_note(self):
        return "adaptive pooling has no parameters (a mean over each of its windows)"

    def output(self, shape):
        if shape.spatial is None:
            return shape
        _needs_spatial_axes(self, shape)
        return shape.with_(spatial=tuple(self.output_size))

    def axis_steps(self, shape):
        return [(rf"{sp.latex(out)}",
                 "output entry i averages input entries ⌊i·n/out⌋ … ⌈(i + 1)·n/out⌉ − 1")
                for out in self.output_size]

    def receptive(self, r, j):
        raise self.error("adaptive pooling's windows depend on the input size: its receptive field is not "
                         "one window")

    def describe(self):
        return f"{self.kind}, output {axes_text(self.output_size)}"


def _torch_module(layer, num, bias):
    import torch
    nn = torch.nn
    if layer.mode == "max":
        cls = nn.MaxPool1d if layer.dims == 1 else nn.MaxPool2d
        extra = {}
    else:
        cls = nn.AvgPool1d if layer.dims == 1 else nn.AvgPool2d
        extra = {"count_include_pad": layer.count_include_pad}
    return cls(tuple(num(k) for k in layer.kernel), stride=tuple(num(v) for v in layer.stride),
               padding=tuple(num(v) for v in layer.padding), ceil_mode=layer.ceil_mode, **extra)


def _adaptive_module(layer, num, bias):
    import torch
    cls = torch.nn.AdaptiveAvgPool1d if layer.dims == 1 else torch.nn.AdaptiveAvgPool2d
    return cls(tuple(num(v) for v in layer.output_size))


def _builder(mode, dims):
    return lambda n, x, **kw: Pool(n, x, mode=mode, dims=dims, **kw)


def _signature(dims, mode):
    def build(name, call, text, node, **kw):
        return NetPool(name, call, text, node, dims, mode, **kw)
    if mode == "avg":        # PyTorch's order: AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad)
        return Signature(build, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"), 1,
                         {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True})
    return Signature(build, ("kernel_size", "stride", "padding"), 1,     # ceil_mode by keyword (after dilation)
                     {"stride": None, "padding": 0, "ceil_mode": False})


def _adaptive_signature(dims):
    def build(name, call, text, node, **kw):
        return NetAdaptiveAvgPool(name, call, text, node, dims, **kw)
    return Signature(build, ("output_size",), 1, {})


for _mode in ("avg", "max"):
    for _dims in (1, 2):
        _module = f"{_mode.capitalize()}Pool{_dims}d"
        register(LayerKind(
            f"{_mode}_pool{_dims}d", _builder(_mode, _dims), ("input",),
            ("kernel_size", "stride", "padding", "ceil_mode") + (("count_include_pad",) if _mode == "avg" else ()),
            flags=("ceil_mode", "count_include_pad"),
            torch=TorchOp(f"torch.nn.functional.{_mode}_pool{_dims}d", _torch_pool),
            module=_module, signature=_signature(_dims, _mode), torch_module=_torch_module,
            torch_module_name=f"torch.nn.{_module}", prefix="pool"))

for _dims in (1, 2):
    register(LayerKind(
        f"adaptive_avg_pool{_dims}d", (lambda d: lambda n, x, **kw: AdaptiveAvgPool(n, x, dims=d, **kw))(_dims),
        ("input",), ("output_size",),
        torch=TorchOp(f"torch.nn.functional.adaptive_avg_pool{_dims}d", _torch_adaptive),
        module=f"AdaptiveAvgPool{_dims}d", signature=_adaptive_signature(_dims), torch_module=_adaptive_module,
        torch_module_name=f"torch.nn.AdaptiveAvgPool{_dims}d", prefix="pool"))
