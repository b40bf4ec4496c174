"""Backpropagation through a stack of layers, one layer at a time.

``derivative`` writes the output down to the leaves and differentiates once; through a
deep stack that formula, and the time to contract it, grow much faster than the depth
(an 8-block MLP: 12 s and 236,544 operations). Here each layer's gradient gets a name,

    δ^L[i…] = ∂of/∂L[i…] = Σ_C Σ_c δ^C[c…] · ∂C[c…]/∂L[i…]       (C: the layers that read L)

and each step differentiates only C's own definition, in which L's entries are opaque
symbols, so each step costs the same whatever the depth. The gradient by ``wrt`` is the
last such step, written with the δ of the layers above it. Forward entries stay names:
σ(z_i)(1 − σ(z_i)) is written a_i(1 − a_i) where a = σ(z), and the softmax inside a
cross-entropy loss is named ŷ.

The steps are definitions: ``delta_values`` computes them numerically from the top, from
the formulas alone, which is what the checks of the result use.
"""
from dataclasses import dataclass, field

import sympy as sp

from .contract import collapse_single_value_sums, conditions_to_bounds, contract
from .derivative import WRT_LETTERS, differentiated, graph_names, tidy, upstream_name
from .indices import indices_for
from .layers.base import entry
from .simplify import counted, fold
from .tensors import Tensor

#: Letters for the indices of a δ step (the layer's entry) and of the layers that read it.
STEP_LETTERS = ("i", "j", "k", "l", "m", "n")
READER_LETTERS = ("k", "l", "m", "c", "d", "e", "f", "h", "u", "v")


@dataclass
class DeltaStep:
    """δ^layer[idx] = value: the gradient of the output by one layer's entries."""
    layer: object          # the layer (or, for the last step, ``wrt``)
    delta: Tensor          # the name δ^layer, with the layer's shape
    idx: tuple
    value: sp.Expr         # in terms of the δ of the layers that read this one
    readers: tuple         # names of those layers


@dataclass
class Backprop:
    """∂of/∂wrt as a sequence of δ steps, from the output down to ``wrt``."""
    of: object
    wrt: Tensor
    seed: Tensor           # δ^of: the upstream gradient (a scalar output: the number 1)
    steps: list            # DeltaStep, from the output down, the last one being by ``wrt``
    auxiliaries: list = field(default_factory=list)     # (Layer, why): named sub-expressions (ŷ)
    out_idx: tuple = ()    # a Jacobian's output indices, carried first by every δ: δ^z[i, k] = ∂of[i]/∂z[k]

    @property
    def gradient(self):
        return self.steps[-1]

    @property
    def value(self):
        return self.steps[-1].value

    @property
    def wrt_idx(self):
        return self.steps[-1].idx[len(self.out_idx):]

    @property
    def depth(self):
        """How many layers the gradient goes through: one δ step each (the last by ``wrt``)."""
        return len(self.steps)

    def size(self):
        """count_ops of every step: the whole result, definitions included."""
        return sum(sp.count_ops(s.value) for s in self.steps)


def delta_name(layer_name, taken):
    """The name of δ^layer: ``delta__z1`` (printed δ^{z1}), made unique against ``taken``.

    >>> delta_name("z1", set())
    'delta__z1'
    """
    name = f"delta__{layer_name}"
    while name in taken:
        name += "_"
    return name


def path_layers(of, wrt):
    """The layers between ``wrt`` and ``of`` (both ends included when they are layers), each
    after every layer that reads it: the order in which backpropagation visits them."""
    nodes = {of.name: of, **of.layer_inputs()} if of.is_layer else {}

    def depends(node):
        return node.name == wrt.name or wrt.name in node.leaves() or \
            (node.is_layer and wrt.name in node.layer_inputs())

    order, seen = [], set()

    def visit(node):              # depth-first, a layer after its inputs
        if node.name in seen or not node.is_layer:
            return
        seen.add(node.name)
        for child in node.inputs:
            visit(child)
        order.append(node)
    visit(of)
    return [n for n in reversed(order) if n.name in nodes and depends(n)]


def _local_step(reader, reader_delta, layer, idx, taken, out_idx=()):
    """Σ_c δ^reader[c] · ∂reader[c]/∂layer[idx], contracted: one term of δ^layer. With ``out_idx``
    (a Jacobian) every δ carries those output indices first, and ``idx`` starts with them."""
    c_idx = indices_for(reader.shape, taken | {i.name for i in idx}, READER_LETTERS)
    avoid = taken | {i.name for i in idx + c_idx}
    definition = reader.element(c_idx, expand=False, avoid=avoid)     # inputs stay opaque
    variable = entry(layer, idx[len(out_idx):])
    raw = differentiated(definition, variable)
    if raw == 0:
        return sp.S.Zero
    if callable(reader_delta):                   # the Jacobian's seed: δ^of[i, c] = δ(i, c)
        upstream = reader_delta(c_idx)
    elif not reader.shape and not out_idx:
        upstream = reader_delta
    else:
        upstream = reader_delta[tuple(out_idx) + tuple(c_idx)]
    summed = sp.Sum(upstream * raw, *[(c, 0, n - 1) for c, n in zip(c_idx, reader.shape)]) if reader.shape \
        else upstream * raw
    return counted(collapse_single_value_sums(conditions_to_bounds(contract(summed))))


def _definitions(reader, auxiliaries):
    """(entry with Wild indices, its definition) for ``fold``: the reader's own (σ(z_i) is a_i)
    and the named sub-expressions of a loss (the softmax ŷ)."""
    out = []
    for node in [reader] + [aux for aux, _ in auxiliaries if aux.inputs[0].name in
                            {n.name for n in reader.inputs}]:
        wilds = tuple(sp.Wild(f"w{n}") for n in range(node.rank))
        out.append((entry(node, wilds), contract(node.element(wilds, expand=False))))
    return out


def _softmax_auxiliaries(layers, taken):
    """A softmax ŷ for each cross-entropy loss: its derivative is written ŷ Σp − p."""
    from .layers.softmax import Softmax
    out = []
    for layer in layers:
        if getattr(layer, "kind", None) == "cross_entropy" and layer.input.rank == 1:
            name = next(n for n in ("yhat", "qhat", "phat") + tuple(f"yhat{k}" for k in range(2, 99))
                        if n not in taken)
            taken.add(name)
            logits = layer.input                      # the scores the loss takes the softmax of
            out.append((Softmax(name, logits),
                        f"the softmax of {logits.name}, the probabilities the loss {layer.name} compares"))
    return out


def backprop(of, wrt, upstream=None, avoid=(), jacobian=False):
    """∂of/∂wrt layer by layer.

    ``of`` a scalar (the loss) or, with ``upstream`` (the name of ∂l/∂of), any layer. With
    ``jacobian`` (and no upstream) ``of`` may have a shape: every δ then carries of's indices
    first, δ^z[i…, k…] = ∂of[i…]/∂z[k…], starting from δ^of[i…, c…] = δ(i, c)… (one backward pass
    per output entry, written once).

    >>> import symderive as sd
    >>> x, W = sd.tensor('x', 3), sd.tensor('W', 2, 3)
    >>> z = sd.linear(x, W, name='z'); a = sd.sigmoid(z, name='a')
    >>> L = sd.sum_of_squares(a, name='L')
    >>> [str(s.value) for s in backprop(L, W).steps]
    ['2*a[i]', '(1 - a[i])*a[i]*delta__a[i]', 'delta__z[p]*x[q]']
    """
    if not of.is_layer:
        raise ValueError(f"{of.name} is not a layer: there is nothing to backpropagate through")
    layers = path_layers(of, wrt)
    if not layers or layers[0].name != of.name:
        raise ValueError(f"{of.name} does not depend on {wrt.name}")
    taken = graph_names(of, wrt) | set(avoid)
    out_idx = ()
    if jacobian and of.shape and upstream is None:
        out_idx = of.free_indices(taken)
        taken |= {i.name for i in out_idx}
        seed = None

        def seed_delta(c_idx):
            return sp.Mul(*[sp.KroneckerDelta(i, c) for i, c in zip(out_idx, c_idx)])
        top = seed_delta
    elif of.shape:
        seed = Tensor(upstream_name(of, wrt, upstream), of.shape)
        taken.add(seed.name)
        top = seed.base
    else:
        seed = Tensor(upstream, ()) if upstream else None
        top = seed.base if seed is not None else sp.S.One
    auxiliaries = _softmax_auxiliaries(layers, taken)
    deltas = {of.name: top}
    steps = []
    below = [n for n in layers[1:] if n.name != wrt.name] + [wrt]
    for layer in below:
        readers = [r for r in layers if r.name in deltas and any(i.name == layer.name for i in r.inputs)]
        name = delta_name(layer.name, taken)
        taken.add(name)
        delta = Tensor(name, tuple(of.shape if out_idx else ()) + tuple(layer.shape))
        idx = out_idx + indices_for(layer.shape, taken, WRT_LETTERS if layer is wrt else STEP_LETTERS)
        value = sp.S.Zero
        for reader in readers:
            term = _local_step(reader, deltas[reader.name], layer, idx, taken, out_idx)
            value += fold(term, _definitions(reader, auxiliaries))
        value = tidy(sp.factor_terms(value))
        steps.append(DeltaStep(layer, delta, idx, value, tuple(r.name for r in readers)))
        deltas[layer.name] = delta.base
    return Backprop(of, wrt, seed, steps, auxiliaries, out_idx)


def delta_values(bp, values, sizes=None):
    """Each δ, and each named sub-expression, as a NumPy array computed from its step's formula
    (from the top down); ``values`` (verify's ``EngineValues``, which computes forward layers from
    their definitions) gets them under their names. Entries outside a range are zero."""
    import numpy as np
    from .tensors import flat_positions
    from .verify.job import as_int, engine_value
    for aux, _ in bp.auxiliaries:
        shape = tuple(as_int(n, sizes or {}) for n in aux.shape)
        values[aux.name] = np.array([engine_value(aux.element(tuple(sp.Integer(i) for i in pos), expand=False),
                                                  values, sizes) for pos in flat_positions(shape)]).reshape(shape)
    for step in bp.steps[:-1]:
        shape = tuple(as_int(n, sizes or {}) for n in step.delta.shape)
        names = [i.name for i in step.idx]
        array = [engine_value(step.value, values, sizes, dict(zip(names, pos))) for pos in flat_positions(shape)]
        values[step.delta.name] = np.array(array, dtype=float).reshape(shape)
    return values


#: ``derivative`` and ``chain_rule`` go layer by layer (δ steps on the sheet) when the variable sits
#: at least this many layers below ``of`` (counting the step by the variable itself); closer, the
#: one-layer formula is already the whole derivation.
STACK_DEPTH = 3
#: Through at most this many layers the stack is also written out and differentiated once, for the
#: closed element formula; deeper, that formula grows about 3× a layer (an MLP's Linear → sigmoid
#: blocks: 122, 528, 1,752, 5,184 operations for 1 to 4 blocks) and the δ form is the answer.
CLOSED_MAX_DEPTH = 6
#: ...and the closed formula is the answer only when its LaTeX is at most this long (a few lines on
#: the sheet, and well under the checker's 6,000 characters); otherwise the δ form is.
CLOSED_MAX_CHARS = 1500


def through_stack(of, wrt, upstream=None, avoid=(), jacobian=False):
    """``backprop(of, wrt, …)`` when ``wrt`` sits ``STACK_DEPTH`` or more layers below ``of``, else
    None: the one decision by which ``derivative`` and ``chain_rule`` derive layer by layer.

    >>> import symderive as sd
    >>> x, W = sd.tensor('x', 3), sd.tensor('W', 2, 3)
    >>> a = sd.sigmoid(sd.linear(x, W, name='z'), name='a')
    >>> through_stack(sd.sum_of_squares(a, name='L'), W).depth, through_stack(a, W)
    (3, None)
    """
    if not of.is_layer:
        return None
    layers = path_layers(of, wrt)
    if not layers or layers[0].name != of.name:
        return None
    depth = len(layers) - (1 if any(n.name == wrt.name for n in layers) else 0)
    if depth < STACK_DEPTH:
        return None
    return backprop(of, wrt, upstream, avoid, jacobian=jacobian)
