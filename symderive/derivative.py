"""Element-wise derivatives, Jacobian dimensions, the chain rule and explicit arrays.

dy[i…]/dx[j…] is obtained by differentiating the element expression of y
(SymPy turns ∂x[a]/∂x[j] into δ(a, j)) and contracting the deltas with
``contract``, which keeps every range condition. Explicit arrays at concrete
sizes are then read off that closed form entry by entry (index arithmetic),
never by differentiating each entry again.

Conventions: numerator layout (the Jacobian of y with respect to x has the
shape of y followed by the shape of x; flattened, numel(y) × numel(x)), and
PyTorch's row-major order for vec(·).
"""
from dataclasses import dataclass

import sympy as sp
from sympy.core.cache import cacheit

from .contract import collapse_single_value_sums, conditions_to_bounds, contract
from .errors import ShapeError
from .indices import indices_for, names_in
from .layers import expand_layers
from .sympy_memos import replace
from .tensors import Tensor, flat_positions, is_concrete, numel, zero_outside

#: Letters for the indices of the variable we differentiate by, distinct from the output's.
WRT_LETTERS = ("p", "q", "r", "u", "v", "a", "b", "j", "n", "m", "l")


@dataclass
class ElementDerivative:
    """∂y[out]/∂x[wrt] in closed form, with the intermediate forms kept for the sheet."""
    of: Tensor
    wrt: Tensor
    out_idx: tuple
    wrt_idx: tuple
    element: sp.Expr      # y[out] written down to the variables
    raw: sp.Expr          # after differentiation, deltas not yet contracted
    value: sp.Expr        # contracted closed form

    @property
    def tensor_shape(self):
        return self.of.shape + self.wrt.shape

    @property
    def matrix_shape(self):
        return (numel(self.of.shape), numel(self.wrt.shape))

    def _repr_latex_(self):
        from .latex import partial, show
        lhs = partial(self.of.name, self.out_idx, self.wrt.name, self.wrt_idx)
        return f"$\\displaystyle {lhs} = {show(self.value)}$"

    def array(self):
        """The Jacobian at concrete sizes as a numel(y) × numel(x) matrix (row-major vec)."""
        return entries_matrix(self.value, self.out_idx, self.of.shape, self.wrt_idx, self.wrt.shape,
                              _shapes_of(self.of, self.wrt))


def _shapes_of(*nodes):
    shapes = {}
    for node in nodes:
        for leaf in node.leaves().values():
            if leaf.shape and is_concrete(leaf.shape):
                shapes[leaf.name] = leaf.shape
    return shapes


def element_of(of, stop_at=None, avoid=()):
    """y's element expression over fresh indices, expanded down to leaves (or to ``stop_at``);
    no index is named in ``avoid`` or after a tensor, layer or size around ``of``."""
    out_idx = of.free_indices(graph_names(of, stop_at) | set(avoid))
    if not of.is_layer:
        return out_idx, of.element(out_idx)
    layers = {n: l for n, l in of.layer_inputs().items() if stop_at is None or n != stop_at.name}
    taken = {i.name for i in out_idx} | of.reserved_names() | set(avoid)
    return out_idx, expand_layers(of.definition(out_idx, taken), layers, taken)


def graph_names(*nodes):
    """The names of these tensors and layers and of everything they depend on."""
    names = set()
    for node in filter(None, nodes):
        names |= {node.name} | set(node.leaves())
        if node.is_layer:
            names |= node.reserved_names()
    return names


#: Names for the upstream gradient ∂l/∂y of a chain rule, in order of preference.
UPSTREAM_NAMES = ("g", "delta", "G")


def upstream_name(of, wrt, requested=None):
    """The upstream gradient's name: ``requested``, else the first of ``UPSTREAM_NAMES`` that no
    tensor, layer or size around ``of`` and ``wrt`` has (g beside a layer g would read as one).

    >>> from symderive.layers import Elementwise
    >>> upstream_name(Elementwise('g', Tensor('x', (3,)), 'tanh'), Tensor('x', (3,)))
    'delta'
    """
    if requested is not None:
        return requested
    taken = graph_names(of, wrt)
    return next(n for n in UPSTREAM_NAMES + tuple(f"g{k}" for k in range(2, 100)) if n not in taken)


def derivative_indices(of, wrt, avoid=()):
    """(output indices, y's element expression, wrt indices) as ``derivative`` names them: the
    one place that choice is made (verify and checking read it from here)."""
    out_idx, element = element_of(of, stop_at=wrt, avoid=avoid)
    # Apart from every name in the element and every declared name around it (a layer p that is
    # inlined here may be folded back into the result, beside the index).
    wrt_idx = indices_for(wrt.shape, names_in(element) | graph_names(of, wrt) | set(avoid), WRT_LETTERS)
    return out_idx, element, wrt_idx


def chain_rule_avoid(of, wrt, upstream=None, loss="l"):
    """The names a chain rule's indices avoid: the upstream gradient's and the loss's."""
    return {upstream_name(of, wrt, upstream), str(loss)}


def derivative(of, wrt, avoid=()):
    """∂of[i…]/∂wrt[j…] element by element.

    >>> from symderive.layers import conv1d
    >>> x, w = Tensor('x', (5,)), Tensor('w', (3,))
    >>> d = derivative(conv1d('y', x, w, stride=2), x)
    >>> d.value
    Piecewise((w[-2*i + p], (2*i - p >= -2) & (2*i - p <= 0)), (0, True))
    >>> d.array()
    Matrix([
    [w[0], w[1], w[2],    0,    0],
    [   0,    0, w[0], w[1], w[2]]])
    """
    refuse_labels(of, wrt)
    out_idx, element, wrt_idx = derivative_indices(of, wrt, avoid)
    variable = wrt.base[wrt_idx] if wrt.shape else wrt.base     # a layer's entry, not its definition
    raw = differentiated(element, variable)
    value = tidy(contract(raw))
    return ElementDerivative(of, wrt, out_idx, wrt_idx, element, raw, value)


def refuse_labels(of, wrt):
    """Class labels and lookup indices (a loss's target y, an embedding's words) select entries:
    nothing is differentiable by them, so asking is an error rather than a formula in δ′."""
    from .assumptions import tensor_facts
    if "detached" in tensor_facts(wrt):
        raise ShapeError(f"'{wrt.name}' is declared detached: no gradient flows to it")
    layers = [of, *of.layer_inputs().values()] if of.is_layer else []
    if "labels" in tensor_facts(wrt) or \
            any(layer.domains().get(wrt.name, ("",))[0] == "labels" for layer in layers):
        raise ShapeError(f"'{wrt.name}' holds class labels or indices (whole numbers that select entries); "
                         f"nothing is differentiable by them")


def tidy(expr):
    """Light clean-up that never expands sums: combine like terms, drop zeros."""
    return sp.factor_terms(expr) if expr.has(sp.Piecewise) else sp.simplify(expr) if expr.is_number else expr


@dataclass
class ChainRule:
    """∂l/∂x[j…] = Σ_i ∂l/∂y[i…] · ∂y[i…]/∂x[j…], with the upstream gradient a symbol."""
    local: ElementDerivative
    upstream: Tensor
    summed: sp.Expr       # Σ_i g[i] · (closed-form ∂y/∂x), before contraction
    value: sp.Expr        # contracted, conditions moved into sum bounds

    def _repr_latex_(self):
        from .latex import partial, show
        lhs = partial("l", (), self.local.wrt.name, self.local.wrt_idx)
        return f"$\\displaystyle {lhs} = {show(self.value)}$"

    def array(self):
        """∂l/∂x at concrete sizes, with the shape of x (entries in terms of g)."""
        d = self.local
        shapes = _shapes_of(d.of, d.wrt)
        shapes[self.upstream.name] = self.upstream.shape
        positions = flat_positions(d.wrt.shape)
        values = [entry(self.value, d.wrt_idx, pos, shapes) for pos in positions]
        rows, cols = matrix_view(d.wrt.shape)
        return sp.Matrix(rows, cols, values)


def chain_rule(of, wrt, upstream=None, avoid=()):
    """Given the upstream gradient g = ∂l/∂y, derive ∂l/∂x in closed form.

    >>> from symderive.layers import conv1d
    >>> x, w = Tensor('x', (5,)), Tensor('w', (3,))
    >>> c = chain_rule(conv1d('y', x, w, stride=2), w)
    >>> c.value
    Sum(g[i]*x[2*i + p], (i, 0, 1))
    """
    upstream = upstream_name(of, wrt, upstream)
    local = derivative(of, wrt, set(avoid) | {upstream})
    g = Tensor(upstream, of.shape)
    summed = sp.Sum(g.element(local.out_idx) * local.value,
                    *[(i, 0, n - 1) for i, n in zip(local.out_idx, of.shape)]) if of.shape \
        else g.base * local.value
    value = collapse_single_value_sums(conditions_to_bounds(contract(summed)))
    return ChainRule(local, g, summed, value)


def entry(expr, idx, position, shapes):
    """``expr`` at concrete index values, out-of-range tensor entries set to zero."""
    value = expr.xreplace(dict(zip(idx, [sp.Integer(p) for p in position])))
    return zero_outside(evaluated(value) if value.has(sp.Sum) else value, shapes)


def evaluated(expr):
    """``expr.doit()``, with the sums written out directly when ``written_out`` can."""
    written = written_out(expr) if expr.has(sp.Sum) else None
    return expr.doit() if written is None else written


@cacheit
def differentiated(expr, variable):
    """``diff(expr, variable)`` without the sums of 0 that ``diff`` leaves behind. Memoized (a pure
    function of the two): the shipped run differentiated 142 elements in ``derivative``, 114
    distinct, 1.36 s of CPU, and 160 in ``backprop``'s local steps, 146 distinct."""
    return replace(sp.diff(expr, variable), lambda e: isinstance(e, sp.Sum) and e.function == 0,
                   lambda e: sp.S.Zero)


def written_out(expr):
    """``expr`` with every sum written out term by term, when each has whole-number limits with
    hi ≥ lo − 1 (what ``doit`` gives there: the same terms, added); None otherwise, or when
    something else in ``expr`` has a ``doit`` that does more than rebuild the node from its
    arguments (Add's, Mul's, Max's and Piecewise's only rebuild it, as ``_write_out`` does).
    ``Sum.doit`` first looks for a closed form (deltas, Piecewise, polynomial sums) before writing
    the terms out, and that search was 60 % of transposed-weight-gradient's CPU, entry by entry.

    >>> from symderive.indices import make_index
    >>> x = sp.IndexedBase('x'); i, j = make_index('i', 3), make_index('j', 3)
    >>> s = sp.Sum(x[i] * sp.Sum(x[j], (j, 0, i)), (i, 0, 2))
    >>> written_out(s) == x[0]**2 + x[1]*(x[0] + x[1]) + x[2]*(x[0] + x[1] + x[2]) == s.doit()
    True
    >>> written_out(sp.Sum(x[i], (i, 0, sp.Symbol('n')))) is None
    True
    """
    if expr.has(sp.Derivative, sp.Integral, sp.Product, sp.Limit, sp.Subs):    # each has a doit of its own
        return None
    try:
        return _write_out(expr)
    except (_NotWhole, ValueError):     # ValueError: an inner sum binds the outer index's name (xreplace
        return None                     # would set its bound index to a number), left to doit's subs


class _NotWhole(Exception):
    """A sum whose limits are not whole numbers (or run backwards): left to ``doit``."""


def _write_out(expr):
    if not expr.args or not expr.has(sp.Sum):
        return expr
    if isinstance(expr, sp.Sum):
        *inner, (var, lo, hi) = expr.limits                 # the last limit is the outermost sum
        if not (lo.is_Integer and hi.is_Integer) or hi < lo - 1:
            raise _NotWhole
        body = sp.Sum(expr.function, *inner) if inner else expr.function
        return sp.Add(*[_write_out(body.xreplace({var: sp.Integer(k)})) for k in range(int(lo), int(hi) + 1)])
    return expr.func(*[_write_out(a) for a in expr.args])


def entries_matrix(expr, out_idx, out_shape, in_idx, in_shape, shapes):
    """Matrix of ``expr`` over all (vec(out), vec(in)) index pairs, row-major."""
    rows = flat_positions(out_shape)
    cols = flat_positions(in_shape)
    return sp.Matrix(len(rows), len(cols),
                     lambda r, c: entry(expr, out_idx + in_idx, rows[r] + cols[c], shapes))


def matrix_view(shape):
    """How to print a tensor of this shape as a matrix: rank 1 as a column, rank 2 as is,
    higher ranks with the leading axes merged into rows (row-major)."""
    shape = [int(s) for s in shape]
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], 1
    return int(sp.Mul(*shape[:-1])), shape[-1]


def apply_signs(expr, signs):
    """Fix ReLU's step H(z) where the sign of z is given: ``signs`` maps an expanded entry
    (as a SymPy expression) to +1 or -1."""
    def known(e):
        return isinstance(e, sp.Heaviside) and sp.expand(e.args[0]) in signs

    return expr.replace(known, lambda e: sp.S.One if signs[sp.expand(e.args[0])] > 0 else sp.S.Zero)


def intermediate_definitions(of, wrt):
    """(entry with Wild indices, definition written down to the leaves) for each layer between
    ``wrt`` and ``of``: what ``simplify.fold`` needs to write σ(…) back as c_i."""
    out = []
    layers = dict(of.layer_inputs())
    if of.is_layer:
        layers[of.name] = of          # σ'(z) = σ(z)(1 − σ(z)) reads h(1 − h) when h = σ(z)
    for name, layer in layers.items():
        if name == wrt.name:
            continue
        wilds = tuple(sp.Wild(f"w{n}") for n in range(layer.rank))
        entry = layer.base[wilds] if wilds else layer.base
        # Written down as far as the result is (not past wrt), and contracted like it.
        written = expand_layers(layer.element(wilds, expand=False),
                                {n: l for n, l in layers.items() if n not in (wrt.name, name)})
        out.append((entry, contract(written)))
    return out
