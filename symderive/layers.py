"""The layer library: each layer expands to a SymPy index expression.

Argument names follow PyTorch (``stride``, ``padding``, ``dilation``,
weight shape (out_channels, in_channels, *kernel)). Convolution is PyTorch's
cross-correlation. All indices are 0-based internally.

A layer's ``definition`` is written in terms of its inputs' entries (an input
that is itself a layer appears as its own symbol, e.g. ``y[i]``); ``element``
substitutes the inputs' definitions all the way down to the declared tensors,
which is what derivatives need.
"""
import sympy as sp

from .errors import ShapeError
from .functions import relu, sigmoid
from .indices import fresh_index, indices_for, names_in
from .shapes import conv_output_size
from .tensors import Tensor, numel


class Layer(Tensor):
    """A tensor defined by an index expression over other tensors."""

    is_layer = True
    kind = "layer"

    def __init__(self, name, inputs, shape):
        super().__init__(name, shape)
        self.inputs = list(inputs)

    # Subclasses implement: the entry at ``idx`` in terms of the inputs' entries.
    def definition(self, idx, avoid=()):
        raise NotImplementedError

    def element(self, idx, expand=True, avoid=()):
        idx = tuple(idx)
        avoid = set(avoid) | set().union(*[names_in(sp.sympify(i)) for i in idx]) if idx else set(avoid)
        avoid |= self.reserved_names()       # a summation index must not look like a size or a tensor
        expr = self.definition(idx, avoid)
        return expand_layers(expr, self.layer_inputs(), avoid) if expand else expr

    def size_names(self):
        """Names of the size symbols in the shapes of this layer and everything it depends on."""
        nodes = [self] + list(self.layer_inputs().values()) + list(self.leaves().values())
        return {s.name for node in nodes for n in node.shape for s in sp.sympify(n).free_symbols}

    def reserved_names(self):
        """Names no index of this layer's formulas may take: its sizes and every tensor and layer
        it depends on (an index p beside a layer p would read as one thing)."""
        nodes = [self] + list(self.layer_inputs().values()) + list(self.leaves().values())
        return self.size_names() | {node.name for node in nodes}

    def free_indices(self, avoid=()):
        return super().free_indices(set(avoid) | self.reserved_names())

    def layer_inputs(self):
        """Every layer this one depends on, by name (transitively)."""
        found = {}
        for node in self.inputs:
            if node.is_layer:
                found[node.name] = node
                found.update(node.layer_inputs())
        return found

    def leaves(self):
        found = {}
        for node in self.inputs:
            found.update(node.leaves())
        return found

    def describe(self):
        """A short human description for sheets, e.g. 'conv1d, stride 2'."""
        return self.kind


def taken_by(avoid, idx):
    """Names a definition's summation indices must avoid: ``avoid`` and every name in ``idx``
    (an index may be an expression such as 2*j + k).

    >>> from symderive.indices import make_index
    >>> sorted(taken_by({"n"}, (2 * make_index("j", 3) + 1,)))
    ['j', 'n']
    """
    return set(avoid).union(*[names_in(sp.sympify(i)) for i in idx])


def entry(node, idx):
    """The entry of ``node`` at ``idx`` as a symbol: x[i] for a tensor, y[i] (opaque) for a layer.

    Definitions refer to their inputs this way; ``expand_layers`` substitutes a layer's own
    definition only when asked, so a derivative can be taken by an intermediate layer.
    """
    return node.base[tuple(idx)] if node.shape else node.base


def expand_layers(expr, layers, avoid=()):
    """Replace every entry of a layer in ``layers`` by that layer's definition, recursively."""
    if not layers:
        return expr
    by_label = {layer.base if not layer.shape else layer.base.label: layer for layer in layers.values()}
    avoid = set(avoid) | names_in(expr)

    def is_layer_entry(e):
        if isinstance(e, sp.Indexed):
            return e.base.label in by_label
        # A bare symbol is a scalar layer; the label inside an entry q[i] is not.
        return isinstance(e, sp.Symbol) and e in by_label and not by_label[e].shape

    def substitute(e):
        if isinstance(e, sp.Indexed):
            layer, idx = by_label[e.base.label], e.indices
        else:
            layer, idx = by_label[e], ()
        # Expand only the layers we were given (a derivative by C must stop at C).
        return expand_layers(layer.element(idx, expand=False, avoid=avoid), layers, avoid)

    return expr.replace(is_layer_entry, substitute)


def _per_axis(value, dims, what):
    """PyTorch accepts an int or a tuple per spatial axis."""
    if isinstance(value, (tuple, list)):
        if len(value) != dims:
            raise ShapeError(f"{what} needs {dims} value(s), got {len(value)}")
        return tuple(sp.sympify(v) for v in value)
    return (sp.sympify(value),) * dims


class Conv(Layer):
    """``conv1d`` / ``conv2d``: y[o, i…] = b[o] + Σ_c Σ_k w[o, c, k…] · x[c, s·i + d·k − p …].

    With a single-channel input (x of rank ``dims``) the weight is just the
    kernel (rank ``dims``) and the channel indices disappear.
    """

    def __init__(self, name, x, weight, bias=None, stride=1, padding=0, dilation=1, dims=1):
        self.kind = f"conv{dims}d"
        self.dims = dims
        self.stride = _per_axis(stride, dims, "stride")
        self.padding = _per_axis(padding, dims, "padding")
        self.dilation = _per_axis(dilation, dims, "dilation")
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


class Pool(Layer):
    """``avg_pool1d/2d`` (count_include_pad, as PyTorch) and ``max_pool1d/2d``.

    Works on (channels, …) or on a single channel; the kernel size is a number
    for max pooling (the max is written out over the window).
    """

    def __init__(self, name, x, kernel_size, stride=None, padding=0, mode="avg", dims=1):
        self.kind = f"{mode}_pool{dims}d"
        self.mode, self.dims = mode, dims
        self.kernel = _per_axis(kernel_size, dims, "kernel_size")
        self.stride = _per_axis(kernel_size if stride is None else stride, dims, "stride")
        self.padding = _per_axis(padding, dims, "padding")
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
    from .tensors import flat_positions
    return flat_positions(kernel)


class Elementwise(Layer):
    """y[i…] = f(x[i…]) for f in sigmoid, tanh, relu."""

    FUNCTIONS = {"sigmoid": sigmoid, "tanh": sp.tanh, "relu": relu}

    def __init__(self, name, x, function):
        self.kind, self.function, self.x = function, self.FUNCTIONS[function], x
        super().__init__(name, [x], x.shape)

    def definition(self, idx, avoid=()):
        return self.function(entry(self.x, idx))


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


class Linear(Layer):
    """y[i] = Σ_j W[i, j] x[j] + b[i], with PyTorch's weight layout (out, in)."""

    kind = "linear"

    def __init__(self, name, x, weight, bias=None):
        if x.rank != 1 or weight.rank != 2:
            raise ShapeError(f"linear: expected a vector input and a matrix weight, got ranks "
                             f"{x.rank} and {weight.rank}")
        if sp.simplify(weight.shape[1] - x.shape[0]) != 0:
            raise ShapeError(f"linear: weight {weight.name} has {weight.shape[1]} columns but "
                             f"{x.name} has {x.shape[0]} entries")
        if bias is not None and (bias.rank != 1 or sp.simplify(bias.shape[0] - weight.shape[0]) != 0):
            raise ShapeError(f"linear: bias {bias.name} must have shape ({weight.shape[0]},)")
        self.x, self.weight, self.bias = x, weight, bias
        super().__init__(name, [t for t in (x, weight, bias) if t is not None], (weight.shape[0],))

    def definition(self, idx, avoid=()):
        (i,) = idx
        j = fresh_index(self.x.shape[0], taken_by(avoid, idx), ("j", "k", "l", "m"))
        expr = sp.Sum(entry(self.weight, (i, j)) * entry(self.x, (j,)),
                      (j, 0, self.x.shape[0] - 1))
        return expr + entry(self.bias, (i,)) if self.bias is not None else expr


def _same_shape(kind, a, b):
    if a.rank != b.rank or any(sp.simplify(m - n) != 0 for m, n in zip(a.shape, b.shape)):
        raise ShapeError(f"{kind}: {a.name} has shape {a.shape} but {b.name} has shape {b.shape}")


class Loss(Layer):
    """Scalar losses: ``cross_entropy`` (logits, soft targets), ``mse`` (mean), ``sum_of_squares``."""

    def __init__(self, name, kind, prediction, target=None):
        self.kind, self.prediction, self.target = kind, prediction, target
        if target is not None:
            _same_shape(kind, prediction, target)
        elif kind != "sum_of_squares":
            raise ShapeError(f"{kind}: needs a target")
        if kind == "cross_entropy" and prediction.rank != 1:
            raise ShapeError("cross_entropy: logits must be a vector (one sample)")
        super().__init__(name, [t for t in (prediction, target) if t is not None], ())

    def definition(self, idx=(), avoid=()):
        ix = indices_for(self.prediction.shape, set(avoid))
        limits = [(i, 0, n - 1) for i, n in zip(ix, self.prediction.shape)]
        y = entry(self.prediction, ix)
        if self.kind == "cross_entropy":
            j = fresh_index(self.prediction.shape[0], set(avoid) | {ix[0].name}, ("j", "k", "l"))
            log_q = y - sp.log(sp.Sum(sp.exp(entry(self.prediction, (j,))),
                                      (j, 0, self.prediction.shape[0] - 1)))
            return -sp.Sum(entry(self.target, ix) * log_q, *limits)
        t = entry(self.target, ix) if self.target is not None else 0
        total = sp.Sum((y - t) ** 2, *limits)
        return total / numel(self.prediction.shape) if self.kind == "mse" else total


def conv1d(name, x, weight, bias=None, stride=1, padding=0, dilation=1):
    return Conv(name, x, weight, bias, stride, padding, dilation, dims=1)


def conv2d(name, x, weight, bias=None, stride=1, padding=0, dilation=1):
    return Conv(name, x, weight, bias, stride, padding, dilation, dims=2)


#: Layer constructors a problem file may call: name -> (builder, positional tensor args, keywords).
LAYERS = {
    "conv1d": (conv1d, ("input", "weight", "bias"), ("stride", "padding", "dilation")),
    "conv2d": (conv2d, ("input", "weight", "bias"), ("stride", "padding", "dilation")),
    "avg_pool1d": (lambda n, x, **kw: Pool(n, x, mode="avg", dims=1, **kw), ("input",),
                   ("kernel_size", "stride", "padding")),
    "avg_pool2d": (lambda n, x, **kw: Pool(n, x, mode="avg", dims=2, **kw), ("input",),
                   ("kernel_size", "stride", "padding")),
    "max_pool1d": (lambda n, x, **kw: Pool(n, x, mode="max", dims=1, **kw), ("input",),
                   ("kernel_size", "stride", "padding")),
    "max_pool2d": (lambda n, x, **kw: Pool(n, x, mode="max", dims=2, **kw), ("input",),
                   ("kernel_size", "stride", "padding")),
    "linear": (lambda n, x, w, b=None: Linear(n, x, w, b), ("input", "weight", "bias"), ()),
    "affine": (lambda n, x, w, b=None: Linear(n, x, w, b), ("input", "weight", "bias"), ()),
    "sigmoid": (lambda n, x: Elementwise(n, x, "sigmoid"), ("input",), ()),
    "tanh": (lambda n, x: Elementwise(n, x, "tanh"), ("input",), ()),
    "relu": (lambda n, x: Elementwise(n, x, "relu"), ("input",), ()),
    "softmax": (lambda n, z: Softmax(n, z), ("input",), ()),
    "cross_entropy": (lambda n, z, p: Loss(n, "cross_entropy", z, p), ("input", "target"), ()),
    "mse": (lambda n, y, t: Loss(n, "mse", y, t), ("input", "target"), ()),
    "sum_of_squares": (lambda n, y, t=None: Loss(n, "sum_of_squares", y, t), ("input", "target"), ()),
}
