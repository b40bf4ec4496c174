"""The backward pass of a convolution: B = Aᵀ, and backward as a convolution.

B is defined by ∂L/∂vec(x) = B · ∂L/∂vec(y). It is *derived*, not assumed:
the chain rule gives ∂L/∂x[i] = Σ_j g[j] ∂y[j]/∂x[i] in closed form (with
``chain_rule``), and B's nonzeros are read off that closed form by
enumerating its sums. The indices split into independent factors (channels,
one per spatial axis); each is enumerated alone (the bounds of each sum become
array ranges) and the nonzeros are their broadcast product, so the work is
O(nonzeros) and they come out in the order of A's. B = Aᵀ is then checked
exactly against A, which is generated independently from the forward sum and
compared with B block by block as it is generated. The derivation (SymPy) is
cached per declaration of the layer (``_Declaration``); B's arrays are new on
every call.

For all sizes the identity is proved at the index level: B[i, j] is the
coefficient of g[j] in ∂L/∂x[i], i.e. ∂y[j]/∂x[i], which is A[j, i].
"""
import functools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .contract import contract, flatten, same_terms
from .conv_matrix import SparseSymbolMatrix, concrete_layer, conv_matrix, matching_conv_matrix
from .derivative import chain_rule, derivative
from .errors import ShapeError
from .indices import indices_for, names_in, substitute
from .tensors import Tensor, flat_positions

def _index_values(expr, env):
    """Exact int64 values of an index expression over arrays of index values (``env``), by NumPy
    directly: the closed form's index arithmetic is integer sums and products of indices, floor and
    ceiling of quotients (floor division), Mod, Max and Min; anything else is refused.

    >>> q = sp.Symbol('q'); _index_values(sp.Max(0, sp.ceiling(q / 2 - sp.Rational(1, 2))), {q: np.arange(5)})
    array([0, 0, 1, 1, 2])
    """
    if expr in env:
        return env[expr]
    if expr.is_Integer:
        return np.int64(int(expr))
    if isinstance(expr, (sp.floor, sp.ceiling)):
        sign = 1 if isinstance(expr, sp.floor) else -1          # ⌈e⌉ = −⌊−e⌋
        num, den = sp.fraction(sp.together(sign * expr.args[0]))
        return sign * np.floor_divide(_index_values(num, env), _index_values(den, env))
    args = [_index_values(a, env) for a in expr.args]
    if isinstance(expr, sp.Add):
        return functools.reduce(np.add, args)
    if isinstance(expr, sp.Mul):
        return functools.reduce(np.multiply, args)
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp >= 0:
        return np.power(args[0], int(expr.exp))
    if isinstance(expr, sp.Mod):
        return np.mod(*args)
    if isinstance(expr, (sp.Max, sp.Min)):
        return functools.reduce(np.maximum if isinstance(expr, sp.Max) else np.minimum, args)
    raise ShapeError(f"cannot evaluate the index expression {expr} with integer arithmetic")


def _evaluate(expr, env):
    """Evaluate an integer-valued index expression over arrays of index values, exactly."""
    value = _index_values(sp.sympify(expr), env)
    return np.broadcast_to(np.asarray(value, dtype=np.int64), next(iter(env.values())).shape)


def _evaluate_index(expr, env):
    """(integer values, exact mask): an index like (q + P - S j)/D is an entry only where D divides."""
    num, den = sp.fraction(sp.together(sp.sympify(expr)))
    num_v = _evaluate(sp.expand(num), env).astype(np.int64)
    if den == 1:
        return num_v, np.ones(num_v.shape, dtype=bool)
    den_v = _evaluate(den, env).astype(np.int64)
    return np.floor_divide(num_v, den_v), np.mod(num_v, den_v) == 0


_ONE_ROW = sp.Dummy("row")     # stands for "one row, no variable yet" when a factor has no free index


def _enumerate(limits, conds, free_idx, free_shape):
    """All values of (free indices, summation indices) where a term is nonzero: ``limits`` outermost
    sum first, each bound a function of the free indices and outer sums."""
    if free_idx:
        grids = np.indices([int(n) for n in free_shape]).reshape(len(free_shape), -1)
        env = {idx: grid.astype(np.int64) for idx, grid in zip(free_idx, grids)}
    else:
        env = {_ONE_ROW: np.zeros(1, dtype=np.int64)}
    for var, lo, hi in limits:
        lo_v, lo_exact = _evaluate_index(lo, env)
        hi_v, _ = _evaluate_index(hi, env)
        lo_v = lo_v + (~lo_exact)          # a fractional lower bound rounds up
        width = int((hi_v - lo_v).max(initial=-1)) + 1
        if width <= 0:
            return None
        offsets = np.repeat(np.arange(width)[None, :], len(lo_v), axis=0).reshape(-1)
        env = {k: np.repeat(v, width) for k, v in env.items()}
        values = np.repeat(lo_v, width) + offsets
        keep = values <= np.repeat(hi_v, width)
        env = {k: v[keep] for k, v in env.items()}
        env[var] = values[keep]
    keep = np.ones(len(next(iter(env.values()))), dtype=bool)
    for cond in conds:
        keep &= np.asarray(_evaluate_condition(cond, env), dtype=bool)
    return {k: v[keep] for k, v in env.items()}


def _evaluate_condition(cond, env):
    if isinstance(cond, sp.Eq) and isinstance(cond.lhs, sp.Mod) and cond.rhs == 0:
        num, den = cond.lhs.args
        return np.mod(_evaluate(num, env).astype(np.int64), int(den)) == 0
    if isinstance(cond, (sp.GreaterThan, sp.StrictGreaterThan, sp.LessThan, sp.StrictLessThan)):
        num, den = sp.fraction(sp.together(cond.lhs - cond.rhs))    # den > 0: sizes are positive
        value = _evaluate(sp.expand(num), env)
        return {sp.GreaterThan: value >= 0, sp.StrictGreaterThan: value > 0,
                sp.LessThan: value <= 0, sp.StrictLessThan: value < 0}[type(cond)]
    raise ShapeError(f"cannot evaluate the condition {cond}")


def _factors(term, wrt_idx, tied):
    """Split a term's variables (free indices, then sums outermost first) into independent factors:
    two variables share a factor when a sum bound, a condition or one index in ``tied`` names both.
    Returns [(variables, limits, conditions, tied expressions)] per factor; what names no variable
    goes with the first factor."""
    variables = list(wrt_idx) + [var for var, _, _ in reversed(term.limits)]
    root = {v: v for v in variables}

    def find(v):
        while root[v] != v:
            v = root[v]
        return v

    def join(expr_symbols):
        named = [v for v in variables if v in expr_symbols]
        for a, b in zip(named, named[1:]):
            root[find(b)] = find(a)

    for var, lo, hi in term.limits:
        join({var} | sp.sympify(lo).free_symbols | sp.sympify(hi).free_symbols)
    for expr in list(term.conds) + list(tied):
        join(sp.sympify(expr).free_symbols)
    groups = {}
    for v in variables:
        groups.setdefault(find(v), []).append(v)
    factors = [(vs, [lim for lim in reversed(term.limits) if lim[0] in vs], [], []) for vs in groups.values()]
    home = {v: f for f in factors for v in f[0]}

    def owner(expr):
        named = [v for v in variables if v in sp.sympify(expr).free_symbols]
        return home[named[0]] if named else factors[0]
    for cond in term.conds:
        owner(cond)[2].append(cond)
    for expr in tied:
        owner(expr)[3].append(expr)
    return factors


def _term_factors(term, wrt, wrt_idx, placed):
    """The factors of one term Σ … g[…]·w[…], whose broadcast sum (``_broadcast_sum``) is its
    (rows, cols, entries); None when the term has no nonzero.

    ``placed`` is ((g, g's index expressions, 'col'), (w, w's, 'entry')). Each factor (for a
    convolution: the sample, the channels, one factor per spatial axis) is enumerated alone,
    which is small; its share of every flat index is a sum of per-factor parts, so the nonzeros
    are one broadcast sum into preallocated arrays, O(nonzeros) with no grid and no mask over the
    whole. Each factor is sorted by the interleaved positions (y's axis a, then x's axis a, for
    a = 0, 1, …), so for a convolution the triples come out in the order of A's (sample, output
    channel, input channel, then per axis output and input position), and B = Aᵀ is a streaming
    comparison."""
    tied = [e for _, indexed, _ in placed for e in indexed.indices]
    x_shape = [int(n) for n in wrt.shape]
    x_stride = np.cumprod([1] + x_shape[::-1])[-2::-1] if x_shape else []
    parts = []
    for variables, limits, conds, exprs in _factors(term, wrt_idx, tied):
        free = [i for i in wrt_idx if i in variables]
        env = _enumerate(limits, conds, free, [x_shape[list(wrt_idx).index(i)] for i in free])
        if env is None:
            return None
        size = len(next(iter(env.values())))
        ok = np.ones(size, dtype=bool)
        share = {"row": np.zeros(size, dtype=np.int64), "col": 0, "entry": 0}
        keys = {}
        for axis, idx in enumerate(wrt_idx):
            if idx in free:
                share["row"] = share["row"] + env[idx] * int(x_stride[axis])
                keys[2 * axis + 1] = env[idx]
        for tensor, indexed, kind in placed:
            shape = [int(n) for n in tensor.shape]
            strides = np.cumprod([1] + shape[::-1])[-2::-1]
            for axis, (expr, n) in enumerate(zip(indexed.indices, shape)):
                if expr not in exprs:
                    continue
                v, exact = _evaluate_index(expr, env)
                ok &= exact & (v >= 0) & (v < n)
                share[kind] = share[kind] + v * int(strides[axis])
                if kind == "col":
                    keys[2 * axis] = v
        share = {k: np.broadcast_to(v, (size,))[ok] for k, v in share.items()}
        order = np.lexsort([keys[k][ok] for k in sorted(keys, reverse=True)]) if keys else slice(None)
        parts.append((min(keys, default=np.inf), tuple(share[k][order] for k in ("row", "col", "entry"))))
    return [p for _, p in sorted(parts, key=lambda item: item[0])]


def _broadcast_sum(parts, dtype):
    """Every combination of one row from each factor, summed, in lexicographic factor order:
    the factors are merged into two (each small) and one broadcast fills the result.

    >>> rows, cols, entries = _broadcast_sum([(np.array([0, 10]),) * 3, (np.array([1, 2, 3]),) * 3], np.int32)
    >>> rows.tolist()
    [1, 2, 3, 11, 12, 13]
    """
    sizes = [len(p[0]) for p in parts]
    total = int(np.prod(sizes, dtype=np.int64))
    if total == 0:
        return None
    cut = min(range(len(parts) + 1), key=lambda k: max(int(np.prod(sizes[:k])), int(np.prod(sizes[k:]))))

    def merged(group):
        acc = tuple(np.zeros(1, dtype=np.int64) for _ in range(3))
        for p in group:
            acc = tuple((a[:, None] + b[None, :]).reshape(-1) for a, b in zip(acc, p))
        return acc
    left, right = merged(parts[:cut]), merged(parts[cut:])
    result = []
    for a, b in zip(left, right):
        out = np.empty((len(a), len(b)), dtype=dtype)
        np.add(a.astype(dtype)[:, None], b.astype(dtype)[None, :], out=out)
        result.append(out.reshape(-1))
    return tuple(result)


def _read_off(closed_form, wrt, wrt_idx, upstream, weight):
    """(factors of every term, index dtype): what B's triples are the broadcast sums of (small
    tables, read-only so that a cached one cannot be changed)."""
    biggest = max(int(t.numel) for t in (wrt, upstream, weight))
    dtype = np.int32 if biggest <= np.iinfo(np.int32).max else np.int64
    terms = []
    for term in flatten(closed_form):
        if term.coeff == 0:          # y identically zero (every window in the padding)
            continue
        factors = sp.Mul.make_args(term.coeff)
        g = [f for f in factors if isinstance(f, sp.Indexed) and f.base == upstream.base]
        w = [f for f in factors if isinstance(f, sp.Indexed) and f.base == weight.base]
        if len(g) != 1 or len(w) != 1 or len(factors) != 2:
            raise ShapeError(f"cannot read a matrix off the term {term.coeff}: expected g[…]·{weight.name}[…]")
        parts = _term_factors(term, wrt, wrt_idx, ((upstream, g[0], "col"), (weight, w[0], "entry")))
        if parts is not None:
            for part in parts:
                for array in part:
                    array.setflags(write=False)
            terms.append(parts)
    return terms, dtype


def _assemble(terms, shape, weight, dtype):
    """B from its read-off factors: one broadcast sum per term into fresh arrays."""
    found = [t for t in (_broadcast_sum(parts, dtype) for parts in terms) if t is not None]
    if not found:
        found = [(np.zeros(0, dtype=dtype),) * 3]
    rows, cols, entries = found[0] if len(found) == 1 else (np.concatenate(parts) for parts in zip(*found))
    return SparseSymbolMatrix(shape, rows, cols, entries, weight)


def matrix_from_chain_rule(closed_form, wrt, wrt_idx, upstream, weight):
    """Read the matrix M with ∂L/∂vec(wrt) = M · vec(g) off a chain-rule closed form whose
    terms are Σ … g[…] · weight[…] (entries of M are entries of ``weight``)."""
    terms, dtype = _read_off(closed_form, wrt, wrt_idx, upstream, weight)
    return _assemble(terms, (int(wrt.numel), int(upstream.numel)), weight, dtype)


@dataclass
class BackwardMatrix:
    """B derived by the chain rule, with the closed form it was read from."""
    layer: object
    closed_form: sp.Expr      # ∂L/∂x[i…] in closed form
    wrt_idx: tuple
    upstream: Tensor
    matrix: SparseSymbolMatrix


class _Declaration:
    """A convolution keyed by all its chain rule and B depend on: its class, name and
    hyperparameters and, per tensor, its class, base (name, shape, assumptions) and declared facts.
    Layer objects are mutable, so they are not the key; two declared alike share one derivation,
    and any difference (size, stride, padding, dilation, groups, a name) is another key."""
    __slots__ = ("layer", "key")

    def __init__(self, layer):
        self.layer = layer
        tensors = tuple(None if t is None else (type(t), t.base, t.symmetric, frozenset(t.facts.items()))
                        for t in (layer.x, layer.weight, layer.bias))
        self.key = (type(layer), layer.name, layer.dims, layer.stride, layer.padding, layer.dilation,
                    layer.groups, tensors)

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Declaration) and self.key == other.key


def _derive(layer):
    """(chain rule, B's read-off factors, dtype): the SymPy part of ``backward_matrix``."""
    c = chain_rule(layer, layer.x, "g")
    return (c,) + _read_off(c.value, layer.x, c.local.wrt_idx, c.upstream, layer.weight)


@functools.lru_cache(maxsize=64)
def _derived(declaration):
    """``_derive`` once per declaration: deriving the chain rule in SymPy cost 0.02-0.03 s per call,
    as much as building A at 17.7 M nonzeros, and its result is a pure function of the declaration."""
    return _derive(declaration.layer)


def backward_matrix(layer):
    """B with ∂L/∂vec(x) = B · ∂L/∂vec(y), from the chain rule (concrete sizes). The derivation
    is cached per declaration (``_Declaration``) when the layer's inputs are plain tensors."""
    concrete_layer(layer)
    declaration = None
    if not any(getattr(t, "is_layer", False) for t in (layer.x, layer.weight, layer.bias)):
        declaration = _Declaration(layer)
        try:
            hash(declaration)
        except TypeError:         # an unhashable declared fact: derive without the cache
            declaration = None
    c, terms, dtype = _derived(declaration) if declaration else _derive(layer)
    m = _assemble(terms, (int(layer.x.numel), int(c.upstream.numel)), layer.weight, dtype)
    return BackwardMatrix(layer, c.value, c.local.wrt_idx, c.upstream, m)


def check_transpose(layer):
    """(B, A, equal, first difference) at the layer's concrete sizes; exact.

    B is read off the chain rule in the order of A's triples, so A's triples are first generated
    from the forward sum a block at a time and compared with Bᵀ's as they come
    (``matching_conv_matrix``): when they agree, that one pass is the check, and the A returned
    shares B's arrays (just shown to hold A's triples) instead of a second copy. Otherwise A is built
    in full and compared by the order-free exact check, which gives a counterexample."""
    b = backward_matrix(layer)
    a = matching_conv_matrix(layer, b.matrix.transpose())
    if a is not None:
        return b, a, True, None
    a = conv_matrix(layer)
    equal = b.matrix.equals(a.transpose())
    return b, a, equal, None if equal else b.matrix.first_difference(a.transpose())


def prove_transpose(layer):
    """B[i, j] = A[j, i] at the index level, for the layer's sizes (symbolic or not).

    Returns (A_element, B_element, proved): A[j, i] = ∂y[j]/∂x[i] (y is linear in x),
    B[i, j] = ∂/∂g[j] of the chain-rule closed form, both contracted, compared in
    normal form.
    """
    d = derivative(layer, layer.x)
    c = chain_rule(layer, layer.x, "g")
    fresh = indices_for(layer.shape, names_in(c.summed), ("a", "b", "e", "f", "h"))
    b_element = contract(sp.diff(c.summed, c.upstream.element(fresh)))
    a_element = substitute(d.value, dict(zip(d.out_idx, fresh)))
    return a_element, b_element, same_terms(a_element, b_element)


@dataclass
class BackwardConvolution:
    """∂L/∂x as a stride-1 convolution of the dilated, zero-padded upstream gradient with the
    flipped kernels, channels transposed."""
    stride: tuple
    dilation: tuple
    padding_each_side: tuple      # zeros added on each side of the dilated g, per axis
    crop: tuple                   # the forward padding, removed from the result
    flipped: sp.Array             # kernel[c, o, k…] = w[o, c, K−1−k…]
    matrix: SparseSymbolMatrix    # the same map as a matrix, for the exact check


def backward_as_convolution(layer):
    """Build ∂L/∂x = conv(pad(dilate_s(g), (K−1)·d), flip(w)ᵀ, dilation d) at concrete sizes."""
    concrete_layer(layer)
    if layer.batch or layer.groups != 1:
        raise ShapeError(f"the backward convolution of '{layer.name}' is built for one sample without groups; "
                         "with a batch axis or groups ask backward_matrix (B = Aᵀ) instead")
    dims = layer.dims
    K = [int(k) for k in layer.kernel]
    s, d, p = ([int(v) for v in vals] for vals in (layer.stride, layer.dilation, layer.padding))
    out_spatial = [int(n) for n in layer.shape[len(layer.shape) - dims:]]
    in_spatial = [int(n) for n in layer.x.shape[layer.x.rank - dims:]]
    n_out = int(layer.weight.shape[0]) if layer.channels else 1
    n_in = int(layer.x.shape[0]) if layer.channels else 1
    pad = [(k - 1) * dd for k, dd in zip(K, d)]
    # Result positions i' of the full convolution (before cropping the forward padding).
    full_out = [(lo - 1) * ss + 1 + pp for lo, ss, pp in zip(out_spatial, s, pad)]
    grids = np.meshgrid(np.arange(n_in), *[np.arange(n) for n in full_out], np.arange(n_out),
                        *[np.arange(k) for k in K], indexing="ij")
    c, outs, o, ks = grids[0], grids[1:1 + dims], grids[1 + dims], grids[2 + dims:]
    valid = np.ones(c.shape, dtype=bool)
    g_pos, x_pos = [], []
    for i_full, k, ss, dd, pp, lo, crop, n in zip(outs, ks, s, d, pad, out_spatial, p, in_spatial):
        m = i_full + dd * k - pp                 # position in the dilated g (no padding)
        valid &= (m >= 0) & (m % ss == 0) & (m // ss < lo)
        g_pos.append(m // ss)
        xi = i_full - crop
        valid &= (xi >= 0) & (xi < n)
        x_pos.append(xi)
    c, o = c[valid], o[valid]
    rows = np.ravel_multi_index([c] + [a[valid] for a in x_pos], [n_in] + in_spatial)
    cols = np.ravel_multi_index([o] + [a[valid] for a in g_pos], [n_out] + out_spatial)
    flipped_k = [k - 1 - a[valid] for a, k in zip(ks, K)]
    entries = np.ravel_multi_index([o, c] + flipped_k, [n_out, n_in] + K)
    matrix = SparseSymbolMatrix((int(layer.x.numel), int(sp.Mul(*layer.shape))), rows, cols, entries,
                                layer.weight)
    w = layer.weight.base
    if layer.channels:
        flipped = sp.Array([[[w[(oo, cc) + tuple(kk - 1 - a for kk, a in zip(K, pos))]
                              for pos in flat_positions(K)] for oo in range(n_out)] for cc in range(n_in)])
        flipped = flipped.reshape(n_in, n_out, *K)
    else:
        flipped = sp.Array([w[tuple(kk - 1 - a for kk, a in zip(K, pos))] for pos in flat_positions(K)]).reshape(*K)
    return BackwardConvolution(tuple(s), tuple(d), tuple(pad), tuple(p), flipped, matrix)


def prove_backward_convolution(layer):
    """∂L/∂x equals the full convolution at the index level, for the layer's sizes (symbolic or not).

    The full convolution, written down and contracted:
        z[c, i…] = Σ_o Σ_k' ĝ[o, i + p + d·k' − (K−1)·d …] · w[o, c, K−1−k' …],
        ĝ[o, m…] = Σ_j g[o, j…] · δ(m, s·j) …   (g dilated by the stride)
    Returns (z, ∂L/∂x, proved): both contracted, compared in normal form.
    """
    c = chain_rule(layer, layer.x, "g")
    d = c.local
    wrt_idx = d.wrt_idx
    taken = names_in(c.summed) | {i.name for i in wrt_idx}
    dims = layer.dims
    kernel = layer.kernel
    ks = indices_for(kernel, taken, ("kk", "kl", "km", "kn"))
    taken |= {k.name for k in ks}
    outs = indices_for(layer.shape, taken, ("a", "b", "e", "f", "h"))
    spatial_x = wrt_idx[len(wrt_idx) - dims:]
    spatial_g = outs[len(outs) - dims:]
    deltas = sp.Mul(*[sp.KroneckerDelta(i + p + dd * k - (K - 1) * dd, s * j)
                      for i, k, K, s, dd, p, j in zip(spatial_x, ks, kernel, layer.stride,
                                                      layer.dilation, layer.padding, spatial_g)])
    flipped = tuple(K - 1 - k for K, k in zip(kernel, ks))
    if layer.channels:
        weight = layer.weight.element((outs[0], wrt_idx[0]) + flipped)
    else:
        weight = layer.weight.element(flipped)
    body = c.upstream.element(outs) * weight * deltas
    limits = [(k, 0, K - 1) for k, K in zip(ks, kernel)] + [(j, 0, n - 1) for j, n in zip(outs, layer.shape)]
    z = contract(sp.Sum(body, *limits))
    chain = contract(c.summed).xreplace(dict(zip(d.out_idx, outs)))
    return z, chain, same_terms(z, chain)
