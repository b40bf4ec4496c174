"""Layer stacks declared under a question's ``network:`` key.

    network:
      input: [128, 128, 3]          # optional: the input's shape
      layout: HWC                   # how to read it: letters N C H W L (default by rank: C, CL, CHW, NCHW)
      layers:
        - conv: Conv2d(3, 10, kernel_size=3, stride=1, padding=0)
        - pool: MaxPool2d(2, stride=2)

Each layer is a call with PyTorch's class name and argument names. Calls are
read through a whitelist over Python's ``ast`` (never executed): numbers and
declared sizes (via ``expressions.Reader``), ``True``/``False`` for ``bias``,
names of declared tensors (``Linear(W1)``, for numeric networks), and layers
nested in ``Residual(...)``. Sizes may be symbols: counts and shapes are then
formulas.

A network answers structural questions: parameters per layer (with and without
biases), the shape after each layer, and the receptive field of one unit.
Numeric forward and backward passes (``numeric_network``) use the same syntax.
"""
import ast
from dataclasses import dataclass

import sympy as sp

from .declarations import check_name, locate
from .errors import ExpressionError, ShapeError, SymderiveError
from .expressions import MAX_DEPTH, Reader, parse, syntax_tree
from .shapes import check_hyperparameters, conv_output_size
from .yaml_positions import Located, LocatedDict, key_position, position

NETWORK_KEYS = {"input", "layout", "layers", "convention", "loss"}
CONVENTIONS = ("pytorch", "bias_node")
DEFAULT_LAYOUTS = {1: "C", 2: "CL", 3: "CHW", 4: "NCHW"}
#: Parameter-count modes: every weight layer with a bias, none, or as each layer declares.
BIAS_MODES = ("both", "with", "without", "declared")


def in_file(exc, text):
    """Translate an error's position inside the string ``text`` to the file, once."""
    if not getattr(exc, "in_file", False):
        exc = locate(exc, text)
        exc.in_file = True
    return exc


def located_error(message, where, error=ExpressionError):
    """An error at the position of a YAML value (or of the mapping key that holds it)."""
    return error(message, *position(where))


# --------------------------------------------------------------------------------------
# Shapes


@dataclass(frozen=True)
class FeatureShape:
    """A feature map: batch size (or None), channels, spatial sizes, and the letters to print it in.

    ``channels`` or ``spatial`` is None when unknown (no input shape was declared).
    """
    batch: object
    channels: object
    spatial: tuple
    layout: str

    @property
    def known(self):
        return self.channels is not None and self.spatial is not None

    def dims(self):
        spatial = dict(zip("HW" if len(self.spatial or ()) == 2 else "L", self.spatial or ()))
        values = {"N": self.batch, "C": self.channels, **spatial}
        return tuple(values[letter] for letter in self.layout)

    def latex(self):
        if not self.known:
            return r"\text{unknown}"
        return r" \times ".join(sp.latex(d) for d in self.dims())

    def text(self):
        return "×".join(str(d) for d in self.dims()) if self.known else "unknown"

    def flat(self, features):
        layout = "NC" if "N" in self.layout else "C"
        return FeatureShape(self.batch, features, (), layout)

    def with_(self, channels=None, spatial=None):
        return FeatureShape(self.batch, self.channels if channels is None else channels,
                            self.spatial if spatial is None else spatial, self.layout)


def read_layout(text, rank, where):
    if text is None:
        if rank not in DEFAULT_LAYOUTS:
            raise located_error(f"an input of rank {rank} needs a 'layout' such as NCHW", where)
        return DEFAULT_LAYOUTS[rank]
    layout = str(text).strip()
    letters = set(layout)
    spatial = letters - {"N", "C"}
    if (not layout or not letters <= set("NCHWL") or len(letters) != len(layout) or "C" not in letters
            or spatial not in (set(), {"L"}, {"H", "W"})):
        raise located_error(f"layout {layout!r}: use the letters N (batch), C (channels), H and W, or L "
                            f"(length), each once, with C, e.g. NHWC, CHW or NC", text)
    if len(layout) != rank:
        raise located_error(f"layout {layout} has {len(layout)} letters but the input has rank {rank}", text)
    return layout


def read_size(value, scope, what, where):
    """A positive integer size: a number, a declared size name or an expression in them."""
    at = value if isinstance(value, str) else where
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise located_error(f"{what}: {value!r} is not a size (a whole number or a size name)", at)
    try:
        size = parse(value, scope)
    except SymderiveError as exc:
        raise (locate(exc, value) if isinstance(value, str)
               else exc.located(line=position(where)[0], column=position(where)[1])) from None
    if not size.is_integer or (size.is_number and size < 1):
        raise located_error(f"{what}: {size} is not a positive whole number", at, ShapeError)
    return size


def input_shape(spec, scope, where):
    """The FeatureShape of ``input: [..]`` read with ``layout`` (``where``: the network mapping)."""
    at = _at(key_position(where, "input"))
    if not isinstance(spec, list) or not spec:
        raise located_error("'input' is a list of sizes, e.g. [128, 128, 3] (or a tensor name for a "
                            "numeric network)", at)
    sizes = [read_size(v, scope, "input", at) for v in spec]
    layout = read_layout(where.get("layout"), len(sizes), key_position_value(where, "layout"))
    values = dict(zip(layout, sizes))
    spatial = tuple(values[k] for k in ("H", "W") if k in values) or tuple(values[k] for k in "L" if k in values)
    return FeatureShape(values.get("N"), values["C"], spatial, layout)


def key_position_value(mapping, key):
    """The value under ``key`` when it carries a position, else a stand-in located at the key."""
    value = mapping.get(key)
    return value if isinstance(value, (Located, LocatedDict)) else _at(key_position(mapping, key))


def _at(pos):
    marker = Located("")
    marker.line, marker.column = pos
    return marker


# --------------------------------------------------------------------------------------
# Layers


@dataclass
class Count:
    """A parameter count: the value and how it is computed (LaTeX)."""
    value: object
    latex: str


def _dot(*factors):
    return r" \cdot ".join(sp.latex(f) for f in factors)


class NetLayer:
    """One entry of a layer stack. Subclasses set ``kind`` and implement what they support."""

    dims = None          # spatial dimensions it works on (1 or 2), None for any
    has_weights = False

    def __init__(self, name, call, text, node):
        self.name, self.call, self.text, self.node = name, call, text, node

    def error(self, message, cls=ShapeError):
        """An error located at this layer's call in the problem file."""
        exc = cls(f"layer '{self.name}' ({self.call}): {message}", line=getattr(self.node, "lineno", None),
                  column=getattr(self.node, "col_offset", 0) + 1)
        return in_file(exc, self.text)

    # Parameter count ---------------------------------------------------------------------
    def count(self, mode):
        """Count of parameters with ``mode`` 'with', 'without' or 'declared'."""
        return Count(sp.Integer(0), "0")

    def count_note(self):
        return "no parameters"

    # Shapes ------------------------------------------------------------------------------
    def output(self, shape):
        return shape

    def axis_steps(self, shape):
        """(latex, why) lines showing how the output size along each axis is computed."""
        return []

    # Receptive field --------------------------------------------------------------------
    def receptive(self, r, j):
        """(r, j) after this layer, per spatial axis: r_out = r_in + d(k−1)·j_in, j_out = j_in·s."""
        return r, j

    def multiply_adds(self, shape_in, shape_out):
        return sp.Integer(0)

    def flatten(self):
        return [self]

    def describe(self):
        return self.call


class Conv(NetLayer):
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
                         rf"({_dot(self.in_channels, *self.kernel)} + 1) \cdot {sp.latex(self.out_channels)}")
        return Count(weights * self.out_channels, _dot(self.in_channels, *self.kernel, self.out_channels))

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
            spatial = tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                            zip(shape.spatial, self.kernel, self.stride, self.padding, self.dilation))
        except ShapeError as exc:
            raise self.error(exc.message) from None
        return FeatureShape(shape.batch, self.out_channels, spatial, shape.layout)

    def axis_steps(self, shape):
        return _axis_steps(shape, self.kernel, self.stride, self.padding, self.dilation) + [
            (rf"C_{{\text{{out}}}} = {sp.latex(self.out_channels)}", "one output channel per filter")]

    def receptive(self, r, j):
        return _grow(r, j, self.kernel, self.stride, self.dilation)

    def multiply_adds(self, shape_in, shape_out):
        if shape_out is None or not shape_out.known:
            return None
        return sp.Mul(self.out_channels, *shape_out.spatial) * sp.Mul(self.in_channels, *self.kernel)

    def describe(self):
        kernel = "×".join(map(str, self.kernel))
        extra = [f"{label} {_axes(v)}" for label, v, default in
                 (("stride", self.stride, 1), ("padding", self.padding, 0), ("dilation", self.dilation, 1))
                 if any(x != default for x in v)]
        return ", ".join([f"{self.kind} {kernel}, {self.in_channels} → {self.out_channels}"] + extra)


class Pool(NetLayer):
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
        return _axis_steps(shape, self.kernel, self.stride, self.padding, self.dilation) + [
            (rf"C_{{\text{{out}}}} = C_{{\text{{in}}}} = {sp.latex(shape.channels)}",
             "pooling works on each channel separately")]

    def receptive(self, r, j):
        return _grow(r, j, self.kernel, self.stride, self.dilation)

    def describe(self):
        kernel = "×".join(map(str, self.kernel))
        return f"{self.kind} {kernel}, stride {_axes(self.stride)}" + (
            f", padding {_axes(self.padding)}" if any(p != 0 for p in self.padding) else "")


class Linear(NetLayer):
    """``Linear(in_features, out_features, bias=True)``, or with declared weights ``Linear(W)``,
    ``Linear(W, B)`` (PyTorch: W is out×in) or, with ``convention: bias_node``, ``Linear(W)`` where W
    is (1 + in)×out with the biases in its first row."""
    kind = "Linear"
    has_weights = True
    flat_input = True

    def __init__(self, name, call, text, node, in_features, out_features, bias=True, weight=None,
                 bias_tensor=None, convention="pytorch"):
        super().__init__(name, call, text, node)
        self.in_features, self.out_features, self.bias = in_features, out_features, bias
        self.weight, self.bias_tensor, self.convention = weight, bias_tensor, convention

    def count(self, mode):
        with_bias = self.bias if mode == "declared" else mode == "with"
        if with_bias:
            return Count((self.in_features + 1) * self.out_features,
                         rf"({sp.latex(self.in_features)} + 1) \cdot {sp.latex(self.out_features)}")
        return Count(self.in_features * self.out_features, _dot(self.in_features, self.out_features))

    def count_note(self):
        return (f"a {self.out_features}×{self.in_features} weight matrix (out × in), plus one bias per "
                f"output unit")

    def output(self, shape):
        if shape.spatial:
            raise self.error(f"needs a flat input but gets {shape.text()} ({shape.layout}); add Flatten() "
                             f"before it")
        if shape.spatial == () and shape.channels is not None and \
                sp.simplify(shape.channels - self.in_features) != 0:
            if self.convention == "bias_node":
                raise self.error(f"with bias nodes {self.weight.name} has {self.in_features + 1} rows: a bias row "
                                 f"and one per input, {self.in_features}; but its input has {shape.channels} "
                                 f"entries (give the input without its leading 1)")
            raise self.error(f"expects {self.in_features} input features but its input has {shape.channels}")
        return shape.flat(self.out_features)

    def axis_steps(self, shape):
        return [(rf"n_{{\text{{out}}}} = {sp.latex(self.out_features)}", "one output per unit")]

    def receptive(self, r, j):
        raise self.error("a fully connected layer sees the whole input: its receptive field is not a window",
                         ExpressionError)

    def multiply_adds(self, shape_in, shape_out):
        batchless = self.in_features * self.out_features
        return batchless

    def describe(self):
        return f"Linear, {self.in_features} → {self.out_features}"


class BatchNorm(NetLayer):
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


class Activation(NetLayer):
    """ReLU, Tanh, Sigmoid, Identity, Softmax: applied entry by entry (softmax over the features)."""

    def __init__(self, name, call, text, node, kind):
        super().__init__(name, call, text, node)
        self.kind = kind

    def count_note(self):
        return "an activation has no parameters"

    def axis_steps(self, shape):
        return [("", "applied entry by entry: the shape does not change")]


class Flatten(NetLayer):
    kind = "Flatten"

    def count_note(self):
        return "reshaping has no parameters"

    def output(self, shape):
        if shape.spatial is None or shape.channels is None:
            return shape.flat(None)
        return shape.flat(sp.Mul(shape.channels, *shape.spatial))

    def axis_steps(self, shape):
        if not shape.known:
            return []
        return [(rf"{_dot(shape.channels, *shape.spatial)} = {sp.latex(sp.Mul(shape.channels, *shape.spatial))}",
                 "channels × spatial positions become one feature axis")]

    def receptive(self, r, j):
        raise self.error("after flattening every feature is a function of the whole input", ExpressionError)


class Residual(NetLayer):
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


def _axes(values):
    """'2' when every axis has the same value, else '2, 1'."""
    return str(values[0]) if len(set(values)) == 1 else ", ".join(map(str, values))


def per_axis(layer, value, dims, what):
    values = value if isinstance(value, tuple) else (value,) * dims
    if len(values) != dims:
        raise layer.error(f"{what} needs {dims} value(s), got {len(values)}", ExpressionError)
    return tuple(sp.sympify(v) for v in values)


FORMULA = r"n_{\text{out}} = \left\lfloor \frac{n + 2P - D(K-1) - 1}{S} \right\rfloor + 1"


def _axis_steps(shape, kernel, stride, padding, dilation):
    if shape.spatial is None:
        return []
    names = ["length"] if len(shape.spatial) == 1 else ["height", "width"]
    steps = [(FORMULA, "output size along each spatial axis (PyTorch, floor)")]
    for name, n, k, s, p, d in zip(names, shape.spatial, kernel, stride, padding, dilation):
        out = conv_output_size(n, k, s, p, d)
        filled = (rf"\left\lfloor \frac{{{sp.latex(n)} + 2 \cdot {sp.latex(p)} - {sp.latex(d)}"
                  rf"\,({sp.latex(k)} - 1) - 1}}{{{sp.latex(s)}}} \right\rfloor + 1")
        steps.append((rf"n_{{\text{{{name}}}}} = {filled} = {sp.latex(out)}",
                      f"{name}: n = {n}, K = {k}, S = {s}, P = {p}, D = {d}"))
    return steps


def _grow(r, j, kernel, stride, dilation):
    r = tuple(ri + d * (k - 1) * ji for ri, ji, k, d in zip(r, j, kernel, dilation))
    j = tuple(ji * s for ji, s in zip(j, stride))
    return r, j


# --------------------------------------------------------------------------------------
# Reading layer calls


@dataclass
class Signature:
    build: object
    positional: tuple          # names in order; the first ``required`` of them are required
    required: int
    defaults: dict
    variadic: bool = False     # Residual(layer, layer, ...)


def _conv(dims):
    def build(name, call, text, node, **kw):
        return Conv(name, call, text, node, dims, **kw)
    return Signature(build, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"),
                     3, {"stride": 1, "padding": 0, "dilation": 1, "bias": True})


def _pool(dims, mode):
    def build(name, call, text, node, **kw):
        return Pool(name, call, text, node, dims, mode, **kw)
    return Signature(build, ("kernel_size", "stride", "padding"), 1, {"stride": None, "padding": 0})


def _batchnorm(dims):
    def build(name, call, text, node, **kw):
        return BatchNorm(name, call, text, node, dims, **kw)
    return Signature(build, ("num_features",), 1, {"affine": True, "eps": None, "momentum": None})


def _activation(kind):
    return Signature(lambda name, call, text, node: Activation(name, call, text, node, kind), (), 0, {})


def _residual_block(name, call, text, node, channels, kernel_size=3, bias=True):
    if not (sp.sympify(kernel_size).is_number and sp.sympify(kernel_size) % 2 == 1):
        raise ExpressionError("ResidualBlock: kernel_size must be an odd number (padding (k − 1)/2 keeps "
                              "the size)", node.lineno, node.col_offset + 1)
    pad = (sp.sympify(kernel_size) - 1) / 2
    convs = [Conv(f"{name}.conv{i}", call, text, node, 2, channels, channels, kernel_size, 1, pad, 1, bias)
             for i in (1, 2)]
    return Residual(name, call, text, node, convs,
                    label=f"residual block: two {kernel_size}×{kernel_size} convolutions {channels} → "
                          f"{channels}, identity skip")


def _bottleneck_block(name, call, text, node, channels, width, kernel_size=3, bias=True):
    if not (sp.sympify(kernel_size).is_number and sp.sympify(kernel_size) % 2 == 1):
        raise ExpressionError("BottleneckBlock: kernel_size must be an odd number", node.lineno,
                              node.col_offset + 1)
    pad = (sp.sympify(kernel_size) - 1) / 2
    convs = [Conv(f"{name}.conv1", call, text, node, 2, channels, width, 1, 1, 0, 1, bias),
             Conv(f"{name}.conv2", call, text, node, 2, width, width, kernel_size, 1, pad, 1, bias),
             Conv(f"{name}.conv3", call, text, node, 2, width, channels, 1, 1, 0, 1, bias)]
    return Residual(name, call, text, node, convs,
                    label=f"bottleneck block: 1×1 {channels} → {width}, {kernel_size}×{kernel_size} "
                          f"{width} → {width}, 1×1 {width} → {channels}, identity skip")


SIGNATURES = {
    "Conv1d": _conv(1), "Conv2d": _conv(2),
    "Linear": Signature(None, ("in_features", "out_features"), 0, {"bias": True}),
    "BatchNorm1d": _batchnorm(1), "BatchNorm2d": _batchnorm(2),
    "MaxPool1d": _pool(1, "max"), "MaxPool2d": _pool(2, "max"),
    "AvgPool1d": _pool(1, "avg"), "AvgPool2d": _pool(2, "avg"),
    "ReLU": _activation("ReLU"), "Tanh": _activation("Tanh"), "Sigmoid": _activation("Sigmoid"),
    "Identity": _activation("Identity"), "Softmax": _activation("Softmax"),
    "Flatten": Signature(lambda name, call, text, node: Flatten(name, call, text, node), (), 0, {}),
    "Residual": Signature(None, (), 0, {}, variadic=True),
    "ResidualBlock": Signature(_residual_block, ("channels", "kernel_size"), 1,
                               {"kernel_size": 3, "bias": True}),
    "BottleneckBlock": Signature(_bottleneck_block, ("channels", "width", "kernel_size"), 2,
                                 {"kernel_size": 3, "bias": True}),
}
#: Arguments that are sizes (positive), hyper-parameters (stride ≥ 1, padding ≥ 0) or flags.
FLAGS = {"bias", "affine"}
PER_AXIS = {"kernel_size", "stride", "padding", "dilation"}
IGNORED = {"eps", "momentum"}
PREFIX = {"Conv": "conv", "Linear": "fc", "BatchNorm": "bn", "MaxPool": "pool", "AvgPool": "pool",
          "Residual": "block", "ResidualBlock": "block", "BottleneckBlock": "block", "Flatten": "flatten"}


def auto_name(kind, counts):
    """conv1, conv2, fc1, pool1, relu1, block1...: a name for a layer written without one."""
    prefix = next((p for k, p in PREFIX.items() if kind.startswith(k)), kind.lower() or "layer")
    counts[prefix] = counts.get(prefix, 0) + 1
    return f"{prefix}{counts[prefix]}"


def _kind_of(node):
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else "layer"


class CallReader:
    """Reads one layer call (and the calls nested in it) from a located string."""

    def __init__(self, text, scope, convention="pytorch"):
        self.text, self.scope, self.convention = text, scope, convention
        self.reader = Reader(str(text).strip(), scope, None)

    def fail(self, node, message, error=ExpressionError):
        raise error(message, line=getattr(node, "lineno", None), column=getattr(node, "col_offset", -1) + 1)

    def read(self, name):
        return self.layer(syntax_tree(str(self.text).strip(), "layer").body, name, 0)

    def layer(self, node, name, depth):
        if depth > MAX_DEPTH:
            self.fail(node, f"layer is nested deeper than {MAX_DEPTH} levels")
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            self.fail(node, f"a layer is a call such as Conv2d(3, 10, kernel_size=3); one of: "
                            f"{', '.join(SIGNATURES)}")
        kind = node.func.id
        if kind not in SIGNATURES:
            self.fail(node.func, f"unknown layer '{kind}' (one of: {', '.join(SIGNATURES)})")
        call = ast.get_source_segment(str(self.text).strip(), node) or kind
        call = call if len(call) <= 80 else call[:77] + "..."
        if kind == "Residual":
            if node.keywords or not node.args:
                self.fail(node, "Residual(layer, layer, ...) takes the block's layers and no keywords")
            counts = {}
            inner = [self.layer(arg, f"{name}.{auto_name(_kind_of(arg), counts)}", depth + 1)
                     for arg in node.args]
            return Residual(name, call, self.text, node, inner)
        if kind == "Linear":
            return self.linear(node, name, call)
        signature = SIGNATURES[kind]
        return signature.build(name, call, self.text, node, **self.bind(node, kind, signature))

    def bind(self, node, kind, signature):
        """Match arguments to names as Python would; values checked by what they name."""
        names = signature.positional
        if len(node.args) > len(names):
            self.fail(node.args[len(names)] if len(node.args) > len(names) else node,
                      f"{kind}() takes at most {len(names)} positional argument(s)"
                      + (f": {', '.join(names)}" if names else ""))
        given = dict(zip(names, node.args))
        allowed = set(names) | set(signature.defaults)
        for kw in node.keywords:
            if kw.arg is None or kw.arg not in allowed:
                self.fail(kw.value if kw.arg is None else kw.value,
                          f"{kind}() has no argument '{kw.arg}' (arguments: {', '.join(sorted(allowed)) or 'none'})")
            if kw.arg in given:
                self.fail(kw.value, f"{kind}(): '{kw.arg}' is given twice")
            given[kw.arg] = kw.value
        missing = [n for n in names[:signature.required] if n not in given]
        if missing:
            self.fail(node, f"{kind}() needs {', '.join(missing)}")
        options = {}
        for arg, value_node in given.items():
            if arg in IGNORED:
                continue
            options[arg] = self.flag(value_node, kind, arg) if arg in FLAGS else \
                self.hyper(value_node, kind, arg)
        return options

    def flag(self, node, kind, arg):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, bool)):
            self.fail(node, f"{kind}(): {arg} is True or False")
        return node.value

    def hyper(self, node, kind, arg):
        value = self.number(node)
        if value is None:            # stride=None: the default
            return None
        if isinstance(value, tuple) and arg not in PER_AXIS:
            self.fail(node, f"{kind}(): {arg} is one number, not a tuple")
        least = 0 if arg == "padding" else 1
        for v in value if isinstance(value, tuple) else (value,):
            if not v.is_integer or (v.is_number and v < least):
                self.fail(node, f"{kind}(): {arg} must be a{' non-negative' if least == 0 else ' positive'} "
                                f"whole number or a declared size, got {v}", ShapeError)
        return value

    def number(self, node):
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            self.fail(node, f"{node.value} is not a number")
        if isinstance(node, ast.Name) and node.id not in self.scope.sizes and self.scope.tensor(node.id):
            self.fail(node, f"'{node.id}' is a tensor; a size is expected here")
        return self.reader.read(node, 1)

    def tensor(self, node):
        if isinstance(node, ast.Name) and node.id not in self.scope.sizes:
            found = self.scope.tensor(node.id)
            if found is not None:
                return found
        return None

    def linear(self, node, name, call):
        """Linear(in, out, bias=True) or, with declared weights, Linear(W) / Linear(W, B)."""
        weight = self.tensor(node.args[0]) if node.args else None
        if weight is None:
            kw_weight = [k for k in node.keywords if k.arg == "weight"]
            if kw_weight:
                weight = self.tensor(kw_weight[0].value)
                if weight is None:
                    self.fail(kw_weight[0].value, "Linear(): weight must name a declared tensor")
        if weight is None:
            options = self.bind(node, "Linear", SIGNATURES["Linear"])
            if "in_features" not in options or "out_features" not in options:
                self.fail(node, "Linear() needs in_features and out_features, or a weight tensor: Linear(W)")
            return Linear(name, call, self.text, node, **options)
        args = list(node.args[1:]) + [k.value for k in node.keywords if k.arg == "bias"]
        unknown = [k for k in node.keywords if k.arg not in ("weight", "bias")]
        if unknown:
            self.fail(unknown[0].value, f"Linear(W, B) takes a weight and a bias tensor; no '{unknown[0].arg}'")
        if len(args) > 1:
            self.fail(node, "Linear() takes one weight and at most one bias tensor")
        bias = self.tensor(args[0]) if args else None
        if args and bias is None:
            self.fail(args[0], "Linear(W, B): B must name a declared tensor")
        if weight.rank != 2:
            self.fail(node.args[0] if node.args else node, f"Linear(): weight '{weight.name}' must be a matrix, "
                                                         f"not of shape {'×'.join(map(str, weight.shape)) or 'scalar'}")
        if self.convention == "bias_node":
            if bias is not None:
                self.fail(args[0], "with convention bias_node the biases are the first row of W; "
                                   "Linear(W) takes no bias tensor")
            rows, out = weight.shape
            if rows.is_number and rows < 2:
                self.fail(node, f"with bias nodes, W '{weight.name}' has a bias row and one row per input: "
                                f"at least 2 rows")
            return Linear(name, call, self.text, node, rows - 1, out, True, weight, None, "bias_node")
        out, inputs = weight.shape
        if bias is not None and (bias.rank != 1 or sp.simplify(bias.shape[0] - out) != 0) and \
                not (bias.rank == 2 and bias.shape[1] == 1 and sp.simplify(bias.shape[0] - out) == 0):
            self.fail(args[0], f"Linear(W, B): B must have {out} entries (one per output unit)", ShapeError)
        return Linear(name, call, self.text, node, inputs, out, bias is not None, weight, bias, "pytorch")


# --------------------------------------------------------------------------------------
# The network


@dataclass
class Row:
    """One layer with the shapes around it."""
    layer: NetLayer
    shape_in: FeatureShape
    shape_out: FeatureShape


class Network:
    def __init__(self, layers, shape=None, convention="pytorch", spec=None, input_tensor=None):
        self.layers, self.shape, self.convention = layers, shape, convention
        self.spec, self.input_tensor = spec, input_tensor

    def rows(self):
        """Each top-level layer with its input and output shape (channels checked even without input)."""
        shape = self.shape or FeatureShape(None, None, None, "C")
        out = []
        for layer in self.layers:
            after = layer.output(shape)
            out.append(Row(layer, shape, after))
            shape = after
        return out

    def find(self, name, where):
        for row in self.rows():
            if row.layer.name == name:
                return row
        raise located_error(f"no layer '{name}' in the network (layers: "
                            f"{', '.join(layer.name for layer in self.layers)})", where)


def question_network(ctx, key="network", numeric=False, spec=None):
    """The network under a question's ``key`` (or the given ``spec``, e.g. one of ``networks``)."""
    spec = ctx.require(key) if spec is None else spec
    return read_network(spec, ctx.decls.scope(), _at(key_position(ctx.question.spec, key)), numeric=numeric)


def read_network(spec, scope, where, *, numeric=False):
    """A ``network:`` value: a list of layers, or a mapping with input, layout, layers (and, for numeric
    networks, convention and loss). ``where`` locates errors about the key itself."""
    if isinstance(spec, list):
        spec_map, layers_spec = LocatedDict(), spec
        spec_map.line, spec_map.column = position(where)
    elif isinstance(spec, dict):
        unknown = [k for k in spec if k not in NETWORK_KEYS]
        if unknown:
            raise located_error(f"network: unknown key '{unknown[0]}' (allowed: "
                                f"{', '.join(sorted(NETWORK_KEYS))})", unknown[0])
        spec_map, layers_spec = spec, spec.get("layers")
        if not isinstance(layers_spec, list) or not layers_spec:
            raise located_error("network: 'layers' is a non-empty list of layers, e.g. "
                                "[conv: 'Conv2d(3, 10, kernel_size=3)']", key_position_value(spec, "layers"))
    else:
        raise located_error("'network' is a list of layers, or a mapping with input, layout and layers",
                            spec if isinstance(spec, str) else where)
    convention = spec_map.get("convention", "pytorch")
    if convention not in CONVENTIONS:
        raise located_error(f"network: convention is one of {', '.join(CONVENTIONS)}",
                            key_position_value(spec_map, "convention"))
    if not numeric:
        for key in ("convention", "loss"):
            if key in spec_map:
                raise located_error(f"network: '{key}' is only for numeric forward and backward passes",
                                    _at(key_position(spec_map, key)))
    shape, input_tensor = None, None
    if "input" in spec_map:
        value = spec_map["input"]
        if isinstance(value, str):
            input_tensor = scope.tensor(value.strip())
            if input_tensor is None:
                raise located_error(f"network: input '{value}' is not a declared tensor", value)
            if input_tensor.rank != 1:
                raise located_error(f"network: input '{value}' must be a vector", value, ShapeError)
            shape = FeatureShape(None, input_tensor.shape[0], (), "C")
        else:
            shape = input_shape(value, scope, spec_map)
    elif "layout" in spec_map:
        raise located_error("network: 'layout' describes the 'input' shape; give the input too",
                            _at(key_position(spec_map, "layout")))
    layers, names, counts = [], set(), {}
    for item in layers_spec:
        if isinstance(item, dict):
            if len(item) != 1:
                raise located_error("a layer is one 'name: Call(...)' or just 'Call(...)'", item)
            (name, text), = item.items()
            check_name(name, "layer")
        elif isinstance(item, str):
            name, text = None, item
        else:
            raise located_error("a layer is 'name: Call(...)' or 'Call(...)'", where if not isinstance(
                item, (Located, LocatedDict)) else item)
        if not isinstance(text, str):
            raise located_error(f"layer '{name}' must be a call such as Conv2d(3, 10, 3)", name)
        if name is None:
            name = auto_name(str(text).strip().split("(")[0].strip(), counts)
        if name in names:
            raise located_error(f"duplicate layer name '{name}'", name if isinstance(name, Located) else text)
        names.add(str(name))
        try:
            layers.append(CallReader(text, scope, convention).read(str(name)))
        except SymderiveError as exc:
            raise in_file(exc, text) from None
    network = Network(layers, shape, convention, spec_map, input_tensor)
    network.rows()          # shape and channel checks happen while reading, with the layer's position
    return network
