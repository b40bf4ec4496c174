"""Fully connected layers: the ``linear`` (alias ``affine``) index formula and the ``Linear``
stack entry, ``Linear(in_features, out_features)`` or with declared weights ``Linear(W, B)``."""
import sympy as sp

from ..errors import ExpressionError, ShapeError
from ..indices import fresh_index
from .base import Layer, entry, taken_by
from ..latex import matrix, tex_name
from .registry import LayerKind, NumericRule, Signature, TorchOp, register
from .stack import Count, NetLayer, dot_latex


class Linear(Layer):
    """y[i] = Σ_j W[i, j] x[j] + b[i], with PyTorch's weight layout (out, in); with a batch
    axis (x of shape N × in, as ``F.linear``) y[n, i] = Σ_j W[i, j] x[n, j] + b[i], i.e. Y = X Wᵀ + b."""

    kind = "linear"

    def __init__(self, name, x, weight, bias=None):
        if x.rank not in (1, 2) or weight.rank != 2:
            raise ShapeError(f"linear: expected a vector input (in,) or a batch (N, in) and a matrix weight, "
                             f"got ranks {x.rank} and {weight.rank}")
        if sp.simplify(weight.shape[1] - x.shape[-1]) != 0:
            raise ShapeError(f"linear: weight {weight.name} has {weight.shape[1]} columns but "
                             f"{x.name} has {x.shape[-1]} {'features per sample' if x.rank == 2 else 'entries'}")
        if bias is not None and (bias.rank != 1 or sp.simplify(bias.shape[0] - weight.shape[0]) != 0):
            raise ShapeError(f"linear: bias {bias.name} must have shape ({weight.shape[0]},)")
        self.x, self.weight, self.bias = x, weight, bias
        self.batch = x.rank == 2
        super().__init__(name, [t for t in (x, weight, bias) if t is not None], x.shape[:-1] + (weight.shape[0],))

    def describe(self):
        return "linear, batched" if self.batch else "linear"

    def definition(self, idx, avoid=()):
        lead, i = tuple(idx[:-1]), idx[-1]
        j = fresh_index(self.x.shape[-1], taken_by(avoid, idx), ("j", "k", "l", "m"))
        expr = sp.Sum(entry(self.weight, (i, j)) * entry(self.x, lead + (j,)),
                      (j, 0, self.x.shape[-1] - 1))
        return expr + entry(self.bias, (i,)) if self.bias is not None else expr


def _torch_linear(layer, get, num):
    import torch.nn.functional as F
    return F.linear(get(layer.x), get(layer.weight), get(layer.bias) if layer.bias is not None else None)


# ---------------------------------------------------------------------------------------------
# In network: stacks


class NetLinear(NetLayer):
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

    def value_tensors(self):
        return tuple(t for t in (self.weight, self.bias_tensor) if t is not None)

    def flat_size(self, size):
        return self.out_features

    def count(self, mode):
        with_bias = self.bias if mode == "declared" else mode == "with"
        if with_bias:
            return Count((self.in_features + 1) * self.out_features,
                         rf"({sp.latex(self.in_features)} + 1) \cdot {sp.latex(self.out_features)}")
        return Count(self.in_features * self.out_features, dot_latex(self.in_features, self.out_features))

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


def _read(reader, node, name, call, depth):
    """Linear(in, out, bias=True) or, with declared weights, Linear(W) / Linear(W, B)."""
    weight = reader.tensor(node.args[0]) if node.args else None
    if weight is None:
        kw_weight = [k for k in node.keywords if k.arg == "weight"]
        if kw_weight:
            weight = reader.tensor(kw_weight[0].value)
            if weight is None:
                reader.fail(kw_weight[0].value, "Linear(): weight must name a declared tensor")
    if weight is None:
        options = reader.bind(node, "Linear", SIGNATURE)
        if "in_features" not in options or "out_features" not in options:
            reader.fail(node, "Linear() needs in_features and out_features, or a weight tensor: Linear(W)")
        return NetLinear(name, call, reader.text, node, **options)
    args = list(node.args[1:]) + [k.value for k in node.keywords if k.arg == "bias"]
    unknown = [k for k in node.keywords if k.arg not in ("weight", "bias")]
    if unknown:
        reader.fail(unknown[0].value, f"Linear(W, B) takes a weight and a bias tensor; no '{unknown[0].arg}'")
    if len(args) > 1:
        reader.fail(node, "Linear() takes one weight and at most one bias tensor")
    bias = reader.tensor(args[0]) if args else None
    if args and bias is None:
        reader.fail(args[0], "Linear(W, B): B must name a declared tensor")
    if weight.rank != 2:
        reader.fail(node.args[0] if node.args else node, f"Linear(): weight '{weight.name}' must be a matrix, "
                                                       f"not of shape {'×'.join(map(str, weight.shape)) or 'scalar'}")
    if reader.convention == "bias_node":
        if bias is not None:
            reader.fail(args[0], "with convention bias_node the biases are the first row of W; "
                                 "Linear(W) takes no bias tensor")
        rows, out = weight.shape
        if rows.is_number and rows < 2:
            reader.fail(node, f"with bias nodes, W '{weight.name}' has a bias row and one row per input: "
                              f"at least 2 rows")
        return NetLinear(name, call, reader.text, node, rows - 1, out, True, weight, None, "bias_node")
    out, inputs = weight.shape
    if bias is not None and (bias.rank != 1 or sp.simplify(bias.shape[0] - out) != 0) and \
            not (bias.rank == 2 and bias.shape[1] == 1 and sp.simplify(bias.shape[0] - out) == 0):
        reader.fail(args[0], f"Linear(W, B): B must have {out} entries (one per output unit)", ShapeError)
    return NetLinear(name, call, reader.text, node, inputs, out, bias is not None, weight, bias, "pytorch")


def _torch_module(layer, num, bias):
    import torch
    return torch.nn.Linear(num(layer.in_features), num(layer.out_features),
                           bias=layer.bias if bias is None else bias, dtype=torch.float64)


def linear_with_weights(x, W, B=None, bias_node=False):
    """A numeric network's Linear layer with given weights: W x + B (PyTorch's layout), or with
    ``bias_node`` (W is (1 + in) × out, biases in its first row) Wᵀ [1; x]."""
    import torch.nn.functional as F
    if bias_node:
        return F.linear(x, W[1:].T, W[0])
    return F.linear(x, W, B)


# ---------------------------------------------------------------------------------------------
# Exact numeric passes with declared weights (numeric_network)


def _numeric_forward(net, layer, name_in, x):
    in_tex = tex_name(name_in)
    W = net.weights[layer.weight.name]
    w_tex = tex_name(layer.weight.name)
    if net.bias_node:
        if W.rows != x.rows + 1:
            raise layer.error(f"with bias nodes, {layer.weight.name} needs 1 + {x.rows} rows (the bias "
                              f"row first, then one per input) but has {W.rows}")
        value = (W.T * net.with_one(x)).applyfunc(net.tidy)
        latex = rf"{w_tex}^{{T}} {in_tex} = {matrix(W.T)} {matrix(net.with_one(x))}"
        return value, latex, f"{layer.name} = {layer.weight.name}ᵀ {name_in}, {name_in} with the bias node 1 first"
    if W.cols != x.rows:
        raise layer.error(f"{layer.weight.name} has {W.cols} columns but its input has {x.rows} entries")
    value = W * x
    latex = rf"{w_tex} {in_tex}"
    numbers = rf"{matrix(W)} {matrix(x)}"
    if layer.bias_tensor is not None:
        B = net.weights[layer.bias_tensor.name]
        value = value + B
        latex += f" + {tex_name(layer.bias_tensor.name)}"
        numbers += f" + {matrix(B)}"
    value = value.applyfunc(net.tidy)
    return value, f"{latex} = {numbers}", f"{layer.name}: a linear layer (PyTorch: weight out × in)"


def _numeric_backward(net, layer, step):
    loss, name_in, x_in, grad = tex_name(net.loss_name), step.name_in, step.x_in, step.grad
    d_out, d_in, steps = step.d_out, step.d_in, step.result.backward_steps
    W = net.weights[layer.weight.name]
    label = net.delta_label(layer)
    w_tex = tex_name(layer.weight.name)
    d_w = rf"\frac{{\partial {loss}}}{{\partial {w_tex}}}"
    if net.bias_node:
        x1 = net.with_one(x_in)
        dW = (x1 * grad.T).applyfunc(net.tidy)
        steps.append((rf"{d_w} = {tex_name(name_in)} \left({label}\right)^{{T}} = {net.shown(dW)}",
                      f"∂{net.loss_name}/∂{layer.weight.name} = {name_in} (δ)ᵀ, {name_in} with its 1"))
    else:
        dW = (grad * x_in.T).applyfunc(net.tidy)
        steps.append((rf"{d_w} = {d_out}\, {tex_name(name_in)}^{{T}} = {net.shown(dW)}",
                      f"∂{net.loss_name}/∂{layer.weight.name} = (∂{net.loss_name}/∂{layer.name}) {name_in}ᵀ"))
    step.result.param_grads[layer.weight.name] = dW
    if layer.bias_tensor is not None:
        b_tex = tex_name(layer.bias_tensor.name)
        step.result.param_grads[layer.bias_tensor.name] = grad
        steps.append((rf"\frac{{\partial {loss}}}{{\partial {b_tex}}} = {d_out} = "
                      f"{net.shown(grad)}", f"the bias adds to {layer.name} directly"))
    if step.first:
        return None
    if net.bias_node:
        full = (W * grad).applyfunc(net.tidy)
        below = full[1:, :]
        steps.append((rf"{d_in} = \left[{w_tex}\, {label}\right]_{{\text{{without row 1}}}} = "
                      rf"{matrix(W)} {matrix(grad)} \to {net.shown(below)}",
                      "back through the weights; the bias node's row is dropped (the constant 1 has "
                      "no input behind it)"))
        return below
    below = (W.T * grad).applyfunc(net.tidy)
    steps.append((rf"{d_in} = {w_tex}^{{T}} {d_out} = {net.shown(below)}",
                  "back through the weights"))
    return below


SIGNATURE = Signature(None, ("in_features", "out_features"), 0, {"bias": True}, read=_read)
_TORCH = TorchOp("torch.nn.functional.linear", _torch_linear)
register(LayerKind("linear", lambda n, x, w, b=None: Linear(n, x, w, b), ("input", "weight", "bias"),
                   torch=_TORCH, module="Linear", signature=SIGNATURE, torch_module=_torch_module,
                   torch_module_name="torch.nn.Linear", prefix="fc",
                   numeric=NumericRule(_numeric_forward, _numeric_backward)))
register(LayerKind("affine", lambda n, x, w, b=None: Linear(n, x, w, b), ("input", "weight", "bias"),
                   torch=_TORCH, library=False))
