"""What every layer is: a tensor whose entries are a SymPy index expression.

The kinds themselves (convolution, pooling, ...) live in the other modules of
this package, one per kind. Argument names follow PyTorch (``stride``,
``padding``, ``dilation``, weight shape (out_channels, in_channels, *kernel)).
All indices are 0-based internally.

A layer's ``definition`` is written in terms of its inputs' entries (an input
that is itself a layer appears as its own symbol, e.g. ``y[i]``); ``element``
substitutes the inputs' definitions all the way down to the declared tensors,
which is what derivatives need.
"""
import sympy as sp

from ..errors import ShapeError
from ..indices import names_in
from ..sympy_memos import replace
from ..tensors import Tensor


class Layer(Tensor):
    """A tensor defined by an index expression over other tensors."""

    is_layer = True
    kind = "layer"

    def __init__(self, name, inputs, shape):
        super().__init__(name, shape)
        self.inputs = list(inputs)
        rename_inner_apart(self)

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

    def domains(self):
        """Inputs that only make sense with some values, for random inputs of cross-checks: name ->
        ("labels", C) (class indices 0..C−1), ("probabilities",) (in (0, 1)) or ("mask",) (0 or 1)."""
        return {}


def rename_inner_apart(layer):
    """Two different nodes under one name would read as one (an LSTM's gate g beside a tensor g):
    a layer built inside another (``inner_of``, see ``mark_inner``) takes a free name instead,
    ``g_h`` (then ``g_h_``)."""
    by_name, visited, stack = {}, set(), [layer]
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack += list(getattr(node, "inputs", ()))
        other = by_name.setdefault(node.name, node)
        if other is node:
            continue
        inner = node if node.inner_of is not None else other if other.inner_of is not None else None
        if inner is None:
            continue                     # declared names are unique in a file: nothing to rename
        old, name = inner.name, f"{inner.name}_{inner.inner_of}"
        while name in by_name:
            name += "_"
        inner.rename(name)
        by_name[old], by_name[name] = (other if inner is node else node), inner


def mark_inner(layer, declared):
    """Mark every layer ``layer`` is built from, other than the ``declared`` inputs and what they are
    built from, as built inside it (``Tensor.inner_of``)."""
    outside = set()
    for node in declared:
        outside |= {id(node)} | {id(n) for n in (node.layer_inputs().values() if node.is_layer else ())}
    for node in layer.layer_inputs().values():
        if id(node) not in outside:
            node.inner_of = layer.name
    return layer


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

    return replace(expr, is_layer_entry, substitute)


def axis_values(value, dims, what):
    """PyTorch accepts an int or a tuple per spatial axis."""
    if isinstance(value, (tuple, list)):
        if len(value) != dims:
            raise ShapeError(f"{what} needs {dims} value(s), got {len(value)}")
        return tuple(sp.sympify(v) for v in value)
    return (sp.sympify(value),) * dims
