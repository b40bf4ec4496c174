"""Exact forward and backward passes through declared layers of any kind, with declared values.

A question names the layer(s) it wants (``of:``); every tensor those layers are built from
carries a ``value``. The pass never knows a kind by name: each layer is its ``definition``, the
index formula of one entry in terms of its inputs' entries, so a kind registered under
``symderive/layers/`` (convolution, pooling, dropout with its mask, embedding, losses with class
labels, ...) is computed and differentiated as soon as it exists. The graph need not be a stack:
``q: x + y`` and ``f: q * z`` (CS231n's f = (x + y) z), a residual ``r: relu(s) + x``.

Forward: each entry of each layer, inputs first, exactly. Backward: reverse-mode, one layer at a
time, ∂E/∂in[p] += Σ_o ∂E/∂out[o] · ∂out[o]/∂in[p], where ∂out[o]/∂in[p] is the derivative of the
layer's own entry formula (never the whole network written out) at the input's values. Class
labels and dropout masks (a kind's ``domains()``) are data: they are put in before anything is
differentiated and get no gradient. The seed is 1 for a scalar ``of``, else the declared
``upstream`` tensor (∂L/∂of, as in CS231n's backward passes given dout).
"""
from dataclasses import dataclass, field

import sympy as sp

from .derivative import evaluated
from .errors import ExpressionError, ShapeError
from .numeric_network import approx_latex, declared_at, tensor_array, tidy
from .latex import matrix, tex_name
from .tensors import flat_positions, zero_outside
from .yaml_positions import key_position, position

#: An exact entry with more operations than this is shown on the sheet by its decimal only.
SHOWN_OPS = 14


class TieError(ExpressionError):
    """A max (max pooling) whose largest entries are equal: its derivative is not defined there."""


@dataclass
class GraphPass:
    """Exact values and gradients of a graph of layers."""
    order: list                                   # every node, inputs first
    values: dict = field(default_factory=dict)    # name -> exact value (number or array)
    grads: dict = field(default_factory=dict)     # name -> ∂E/∂node (shaped like the node)
    data: set = field(default_factory=set)        # names of labels and masks (no gradient)
    steps: list = field(default_factory=list)     # (latex, why)


def graph_nodes(tops):
    """Every node the ``tops`` are built from, each once, inputs before the layers that read them."""
    order, seen = [], set()

    def visit(node):
        if node.name in seen:
            return
        seen.add(node.name)
        for inner in getattr(node, "inputs", ()):
            visit(inner)
        order.append(node)

    for top in tops:
        visit(top)
    return order


def data_inputs(order):
    """name -> domain of the inputs that are data, not variables: class labels and masks."""
    found = {}
    for node in order:
        if node.is_layer:
            found.update(node.domains())
    return found


def atom_of(node, pos):
    return node.base[tuple(sp.Integer(i) for i in pos)] if node.shape else node.base


def as_value(node, entries):
    """The exact value of ``node`` from its entries by position: a number, a column vector, a matrix,
    or an array of higher rank (row-major, as PyTorch)."""
    shape = tuple(int(s) for s in node.shape)
    if not shape:
        return entries[()]
    flat = [entries[pos] for pos in flat_positions(shape)]
    if len(shape) == 1:
        return sp.Matrix(shape[0], 1, flat)
    if len(shape) == 2:
        return sp.Matrix(shape[0], shape[1], flat)
    return sp.ImmutableDenseNDimArray(flat, shape)


def entries_of(value, shape):
    """The inverse of ``as_value``: position -> entry."""
    shape = tuple(int(s) for s in shape)
    if not shape:
        return {(): sp.sympify(value)}
    flat = list(value) if isinstance(value, sp.MatrixBase) else list(sp.flatten(value.tolist())) \
        if hasattr(value, "tolist") else list(value)
    return dict(zip(flat_positions(shape), flat))


class NumericGraph:
    """The pass through the layers named by the question's ``of`` (one name or a list)."""

    def __init__(self, ctx, names, where, upstream=None):
        self.ctx = ctx
        tops = []
        for name in names:
            node = ctx.decls.lookup(str(name).strip()) if isinstance(name, str) else None
            if node is None or not node.is_layer:
                raise ExpressionError(f"'{name}' is not a declared layer (write it under layers:)",
                                      *position(name if isinstance(name, str) else where))
            if not all(sp.sympify(s).is_Integer for s in node.shape):
                raise ShapeError(f"layer '{node.name}': a numeric pass needs numeric sizes",
                                 *position(name))
            tops.append(node)
        self.tops = tops
        self.order = graph_nodes(tops)
        self.domains = data_inputs(self.order)
        self.leaves = [node for node in self.order if not node.is_layer]
        self.layers = [node for node in self.order if node.is_layer]
        self.inputs = {}
        for leaf in self.leaves:
            if getattr(leaf, "value_spec", None) is None:
                at = declared_at(ctx, leaf.name)
                raise ExpressionError(f"tensor '{leaf.name}' has no value: a numeric pass needs one for every "
                                      f"tensor the layers use (declare {leaf.name}: {{shape: [...], value: ...}})",
                                      *at)
            self.inputs[leaf.name] = tensor_array(ctx, leaf)
            self._check_domain(leaf)
        self.upstream = upstream

    def _check_domain(self, leaf):
        domain = self.domains.get(leaf.name)
        if domain is None:
            return
        where = declared_at(self.ctx, leaf.name)
        for value in entries_of(self.inputs[leaf.name], leaf.shape).values():
            if domain[0] == "labels":
                classes = sp.sympify(domain[1])
                if not (value.is_Integer and 0 <= value and (not classes.is_Integer or value < classes)):
                    raise ExpressionError(f"tensor '{leaf.name}' holds class labels: each is a whole number "
                                          f"0..{classes - 1 if classes.is_Integer else 'C-1'}, not {value}", *where)
            elif domain[0] == "mask" and value not in (0, 1):
                raise ExpressionError(f"tensor '{leaf.name}' is a dropout mask: each entry is 0 or 1, not {value}",
                                      *where)

    # --------------------------------------------------------------------------------------
    def run(self, backward=True):
        result = GraphPass(self.order, data=set(self.domains))
        known = {}                                     # atom -> exact value
        for leaf in self.leaves:
            result.values[leaf.name] = self.inputs[leaf.name]
            for pos, v in entries_of(self.inputs[leaf.name], leaf.shape).items():
                known[atom_of(leaf, pos)] = v
        labels = {atom: v for atom, v in known.items()
                  if (atom.base.label.name if isinstance(atom, sp.Indexed) else atom.name) in self.domains
                  and self.domains[atom.base.label.name if isinstance(atom, sp.Indexed) else atom.name][0]
                  == "labels"}
        shapes = {node.name: tuple(int(s) for s in node.shape) for node in self.order}
        self.local = {}
        for layer in self.layers:
            entries, local = {}, {}
            for pos in flat_positions(shapes[layer.name]):
                expr = layer.element(tuple(sp.Integer(i) for i in pos), expand=False)
                expr = evaluated(evaluated(expr).xreplace(labels))
                expr = zero_outside(expr, shapes)
                local[pos] = expr
                entries[pos] = tidy(evaluated(expr.xreplace(known)))
            self.local[layer.name] = local
            result.values[layer.name] = as_value(layer, entries)
            for pos, v in entries.items():
                known[atom_of(layer, pos)] = v
            result.steps.append((equated(tex_name(layer.name), result.values[layer.name]),
                                 f"{layer.name}: {layer.describe()}, each entry from its definition at the "
                                 f"values of {', '.join(n.name for n in layer.inputs)}"))
        self.known = known
        if backward:
            self._backward(result, known, shapes)
        return result

    def _backward(self, result, known, shapes):
        nodes = {node.name: node for node in self.order}
        grads = {name: {} for name in nodes}
        for top in self.tops:
            if top.shape:
                if self.upstream is None:
                    raise ExpressionError(f"'{top.name}' is not a scalar: give the gradient of the loss by it as "
                                          f"'upstream: G', a declared tensor of shape "
                                          f"{' × '.join(map(str, top.shape))} with a value",
                                          self.ctx.question.line, None)
                if tuple(getattr(self.upstream, "shape", ())) != tuple(int(s) for s in top.shape) and not (
                        len(top.shape) == 1 and getattr(self.upstream, "shape", None) == (int(top.shape[0]), 1)):
                    raise ShapeError(f"'upstream' must have the shape of '{top.name}', "
                                     f"{' × '.join(map(str, top.shape))}", self.ctx.question.line, None)
                grads[top.name] = entries_of(self.upstream, top.shape)
            else:
                grads[top.name] = {(): sp.Integer(1)}
        for layer in reversed(self.layers):
            for pos, g in grads[layer.name].items():
                if g == 0:
                    continue
                expr = self.local[layer.name][pos]
                for atom in _variables(expr):
                    name = atom.base.label.name if isinstance(atom, sp.Indexed) else atom.name
                    if name not in nodes or name in self.domains or \
                            (not isinstance(atom, sp.Indexed) and nodes[name].shape):
                        continue
                    d = sp.diff(expr, atom)
                    _refuse_ties(d, known, layer, pos, self.ctx)
                    value = tidy(evaluated(d.xreplace(known)))
                    key = tuple(int(i) for i in atom.indices) if isinstance(atom, sp.Indexed) else ()
                    grads[name][key] = grads[name].get(key, 0) + g * value
        for node in self.order:
            if node.name in self.domains:
                continue
            full = {pos: tidy(grads[node.name].get(pos, 0)) for pos in flat_positions(shapes[node.name])}
            result.grads[node.name] = as_value(node, full)


def _variables(expr):
    return {a for a in expr.atoms(sp.Indexed)} | {s for s in expr.free_symbols if not isinstance(s, sp.Idx)
                                                  and not isinstance(s, sp.Dummy)}


def is_tie_step(step):
    """A Heaviside step whose value at 0 is not fixed to 0: it comes from a max (pooling), whose
    derivative at a tie is a choice. ReLU's step is H(x, 0), PyTorch's derivative at 0.

    >>> x = sp.Symbol('x')
    >>> is_tie_step(sp.Max(x, 2).diff(x)), is_tie_step(sp.Heaviside(x, 0))
    (True, False)
    """
    return len(step.args) == 1 or step.args[1] != 0


def _refuse_ties(derivative, known, layer, pos, ctx):
    """A Heaviside step without a value at 0 comes from max (pooling): at a tie the derivative is a
    choice, not a number (PyTorch sends the whole gradient to one of the maxima)."""
    for step in derivative.atoms(sp.Heaviside):
        if is_tie_step(step) and sp.sympify(step.args[0]).xreplace(known).doit() == 0:
            raise TieError(f"layer '{layer.name}': entry {[i + ctx.base for i in pos]} is a max of equal entries, "
                           f"where the derivative is not defined; give values without a tie",
                           ctx.question.line, None)


def shown(value, digits=4):
    if isinstance(value, sp.NDimArray) and value.rank() > 2:
        return r"\left[" + r",\ ".join(shown(value[i], digits) for i in range(value.shape[0])) + r"\right]"
    if isinstance(value, sp.NDimArray):
        value = sp.Matrix(value.tolist()) if value.rank() == 2 else sp.Matrix(list(value))
    entries = list(value) if isinstance(value, sp.MatrixBase) else [sp.sympify(value)]
    if all(sp.sympify(v).is_Integer for v in entries) or any(sp.sympify(v).free_symbols for v in entries):
        return matrix(value) if isinstance(value, sp.MatrixBase) else sp.latex(value)   # exact only
    if any(sp.count_ops(v) > SHOWN_OPS for v in entries):
        return rf"\approx {approx_latex(value, digits)}"
    exact = matrix(value) if isinstance(value, sp.MatrixBase) else sp.latex(value)
    return rf"{exact} \approx {approx_latex(value, digits)}"


def equated(lhs, value, digits=4):
    r"""``lhs = exact ≈ decimal``, or ``lhs ≈ decimal`` when the exact value is too long to show (never
    ``lhs = \approx …``, which reads as nothing equal to something approximate).

    >>> equated("f", sp.Rational(1, 2))
    'f = \\frac{1}{2} \\approx 0.5000'
    """
    text = shown(value, digits)
    return f"{lhs} {text}" if text.startswith(r"\approx") else f"{lhs} = {text}"


def upstream_value(ctx, key="upstream"):
    """The declared tensor named by ``upstream`` (∂L/∂of) with its value, or None."""
    name = ctx.option(key)
    if name is None:
        return None, None
    tensor = ctx.decls.lookup(str(name).strip()) if isinstance(name, str) else None
    if tensor is None or tensor.is_layer or getattr(tensor, "value_spec", None) is None:
        raise ExpressionError(f"'{key}' names a declared tensor with a value: ∂L/∂{ctx.option('of')}",
                              *position(name))
    return tensor, tensor_array(ctx, tensor)


# ------------------------------------------------------------------------------------------
# What the asks (forward, forward_backward, gradient_step) make of a pass through layers


def of_names(ctx, many):
    """The layer names of the question's ``of``: one name, or (``many``) a list of names."""
    spec = ctx.require("of")
    names = spec if isinstance(spec, list) and many else [spec]
    if not names or not all(isinstance(n, str) for n in names):
        raise ExpressionError("'of' names a layer" + (" or is a list of layers" if many else ""), *position(spec))
    return names


def graph_pass(ctx, backward):
    """(NumericGraph, GraphPass) for the question's ``of`` (and ``upstream`` when going backward)."""
    names = of_names(ctx, many=not backward)
    upstream = upstream_value(ctx)[1] if backward else None
    if not backward and ctx.option("upstream") is not None:
        raise ExpressionError("'upstream' is for a backward pass (ask forward_backward)",
                              *position(ctx.option("upstream")))
    graph = NumericGraph(ctx, names, ctx.require("of"), upstream=upstream)
    return graph, graph.run(backward=backward)


def graph_results(ctx, graph, done, backward, digits):
    """The boxed results: every layer's value; going backward, the gradient of ``of`` by every layer
    and by every tensor that is not data (inputs and parameters alike: dx as well as dW)."""
    from .answer import Kind, Result, Step

    def result(key, value, latex):
        kind = Kind.VALUE if not isinstance(value, (sp.MatrixBase, sp.NDimArray)) else Kind.ENTRIES
        return Result(key, value, equated(latex, value, digits), kind, key=key)

    steps = [Step(equated(tex_name(leaf.name), done.values[leaf.name], digits),
                  "given" + (" (class labels: data, no gradient)" if self_labels(graph, leaf) else
                             " (a mask: data, no gradient)" if leaf.name in graph.domains else ""))
             for leaf in graph.leaves]
    steps += [Step(latex, why) for latex, why in done.steps]
    results = [result(layer.name, done.values[layer.name], tex_name(layer.name)) for layer in graph.layers]
    if not backward:
        return results, steps
    top = graph.tops[0]
    name = loss_name(ctx, top)
    loss = tex_name(name)
    seed = f"∂{name}/∂{name} = 1" if not top.shape else f"∂{name}/∂{top.name} = {ctx.option('upstream')}, given"
    steps.append(Step("", f"backward pass from {top.name} (seed {seed}), one layer at a time: the gradient by a "
                          f"layer's input is the sum over the layer's entries of the gradient by that entry times "
                          f"the derivative of the entry's own definition, at the forward values"))
    for node in reversed(graph.order):
        if (node is top and not top.shape) or node.name not in done.grads:
            continue
        label = rf"\frac{{\partial {loss}}}{{\partial {tex_name(node.name)}}}"
        if node is not top:
            steps.append(Step(equated(label, done.grads[node.name], digits),
                              f"through the layers that read {node.name}"))
        results.append(result(f"d{name}/d{node.name}", done.grads[node.name], label))
    return results, steps


def loss_name(ctx, top):
    """The name of what is differentiated: ``of`` itself when it is a scalar, else the loss whose
    gradient by ``of`` is the given upstream (``loss:``, default L)."""
    if not top.shape:
        if ctx.option("loss") is not None or ctx.option("upstream") is not None:
            key = "loss" if ctx.option("loss") is not None else "upstream"
            raise ExpressionError(f"'{top.name}' is a scalar, differentiated itself: '{key}' is only for an 'of' "
                                  f"that is not a scalar", *key_position(ctx.question.spec, key))
        return top.name
    name = ctx.option("loss", "L")
    if not isinstance(name, str) or not name.isidentifier() or ctx.decls.lookup(name) is not None:
        raise ExpressionError("'loss' names the loss whose gradient by 'of' is the upstream: a new name such as L",
                              *position(name if isinstance(name, str) else ctx.require("of")))
    return name


def self_labels(graph, leaf):
    return graph.domains.get(leaf.name, ("",))[0] == "labels"


def floats(value):
    """A pass's exact value (a number, Matrix or array) as a NumPy float array.

    >>> floats(sp.Matrix([[1, sp.Rational(1, 2)]]))
    array([[1. , 0.5]])
    """
    import numpy as np
    if isinstance(value, sp.MatrixBase):
        return np.array([[float(v) for v in value.row(r)] for r in range(value.rows)])
    if isinstance(value, sp.NDimArray):
        return np.array(value.tolist(), dtype=float)
    return np.array(float(value))


def check_graph(job, backward):
    """--verify: the same layers in torch (each kind's own torch op) at the declared values; going
    backward, autograd from the same seed."""
    import torch
    graph = NumericGraph(job.ctx, of_names(job.ctx, many=not backward), job.ctx.require("of"),
                         upstream=upstream_value(job.ctx)[1] if backward else None)
    job.random_inputs = False

    values = {}
    for leaf in graph.leaves:
        array = floats(graph.inputs[leaf.name])
        values[leaf.name] = array.reshape(tuple(int(s) for s in leaf.shape))
    torch_graph = job.graph({}, values)
    for leaf in graph.leaves:
        torch_graph.leaf(leaf.name, requires_grad=backward and leaf.name not in graph.domains)
    outputs = {}
    for layer in graph.layers:
        outputs[layer.name] = torch_graph.get(layer)
        if backward and outputs[layer.name].requires_grad:
            outputs[layer.name].retain_grad()
    base = job.problem.index_base
    for layer in graph.layers:
        engine = floats(job.result(layer.name)).reshape(-1)
        job.compare("every layer's value with torch's", engine, outputs[layer.name].detach().reshape(-1).numpy(),
                    [f"{layer.name}, entry {k + base}" for k in range(engine.size)])
    if not backward:
        return
    top = graph.tops[0]
    name = loss_name(job.ctx, top)
    out = outputs[top.name]
    seed = torch.tensor(floats(graph.upstream).reshape(tuple(out.shape)), dtype=torch.float64) if top.shape \
        else None
    out.backward(seed)
    for node in graph.order:
        if (node is top and not top.shape) or node.name in graph.domains:
            continue
        tensor = outputs.get(node.name, torch_graph.cache.get(node.name))
        engine = job.result(f"d{name}/d{node.name}")
        if engine is None or tensor is None:
            continue
        reference = tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)
        engine = floats(engine).reshape(-1)
        job.compare("the gradients by every layer and tensor with autograd's", engine,
                    reference.reshape(-1).numpy(), [f"d{name}/d{node.name}, entry {k + base}"
                                                    for k in range(engine.size)])
    job.autograd = True
