"""The backward pass of a convolution: B = Aᵀ, and backward as a convolution.

B is defined by ∂L/∂vec(x) = B · ∂L/∂vec(y). It is *derived*, not assumed:
the chain rule gives ∂L/∂x[i] = Σ_j g[j] ∂y[j]/∂x[i] in closed form (with
``chain_rule``), and B's nonzeros are read off that closed form by
enumerating its sums, vectorised over all x positions (the bounds of each
sum become array ranges, so the work is O(nonzeros)). B = Aᵀ is then checked
exactly against A, which is built independently from the forward sum.

For all sizes the identity is proved at the index level: B[i, j] is the
coefficient of g[j] in ∂L/∂x[i], i.e. ∂y[j]/∂x[i], which is A[j, i].
"""
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .contract import contract, flatten, same_terms
from .conv_matrix import SparseSymbolMatrix, concrete_layer, conv_matrix
from .derivative import chain_rule, derivative
from .errors import ShapeError
from .indices import indices_for, names_in, substitute
from .tensors import Tensor, flat_positions

_FLOOR_DIV = sp.Function("floor_div")
NUMPY_FUNCTIONS = [{"floor_div": np.floor_divide, "Max": np.maximum, "Min": np.minimum, "Mod": np.mod},
                   "numpy"]


def _integer_form(expr):
    """Rewrite floor/ceiling of rational expressions as exact integer floor division."""
    def floor_of(e, negate=False):
        num, den = sp.fraction(sp.together(-e if negate else e))
        result = _FLOOR_DIV(sp.expand(num), den) if den != 1 else sp.floor(num)
        return -result if negate else result
    return (sp.sympify(expr)
            .replace(lambda e: isinstance(e, sp.floor), lambda e: floor_of(e.args[0]))
            .replace(lambda e: isinstance(e, sp.ceiling), lambda e: floor_of(e.args[0], negate=True)))


def _evaluate(expr, env):
    """Evaluate an integer-valued index expression over arrays of index values, exactly."""
    symbols = list(env)
    plain = {s: sp.Dummy(s.name) for s in symbols}
    f = sp.lambdify([plain[s] for s in symbols], _integer_form(expr).xreplace(plain), modules=NUMPY_FUNCTIONS)
    value = f(*[env[s] for s in symbols])
    return np.broadcast_to(np.asarray(value), next(iter(env.values())).shape)


def _evaluate_index(expr, env):
    """(integer values, exact mask): an index like (q + P - S j)/D is an entry only where D divides."""
    num, den = sp.fraction(sp.together(sp.sympify(expr)))
    num_v = _evaluate(sp.expand(num), env).astype(np.int64)
    if den == 1:
        return num_v, np.ones(num_v.shape, dtype=bool)
    den_v = _evaluate(den, env).astype(np.int64)
    return np.floor_divide(num_v, den_v), np.mod(num_v, den_v) == 0


def _enumerate(term, free_idx, free_shape):
    """All values of (free indices, summation indices) where the term is nonzero."""
    grids = np.indices([int(n) for n in free_shape]).reshape(len(free_shape), -1)
    env = {idx: grid.astype(np.int64) for idx, grid in zip(free_idx, grids)}
    for var, lo, hi in reversed(term.limits):          # outermost sum first
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
    for cond in term.conds:
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


def _flat(tensor, indexed, env):
    """Flat (row-major) index of ``indexed`` (an entry of ``tensor``) and whether it is in range."""
    shape = [int(n) for n in tensor.shape]
    ints, ok = [], None
    for a, n in zip(indexed.indices, shape):
        v, exact = _evaluate_index(a, env)
        good = exact & (v >= 0) & (v < n)
        ok = good if ok is None else ok & good
        ints.append(v)
    flat = np.ravel_multi_index([np.where(ok, v, 0) for v in ints], shape)
    return flat, ok


def matrix_from_chain_rule(closed_form, wrt, wrt_idx, upstream, weight):
    """Read the matrix M with ∂L/∂vec(wrt) = M · vec(g) off a chain-rule closed form whose
    terms are Σ … g[…] · weight[…] (entries of M are entries of ``weight``)."""
    rows, cols, entries = [], [], []
    for term in flatten(closed_form):
        if term.coeff == 0:          # y identically zero (every window in the padding)
            continue
        factors = sp.Mul.make_args(term.coeff)
        g = [f for f in factors if isinstance(f, sp.Indexed) and f.base == upstream.base]
        w = [f for f in factors if isinstance(f, sp.Indexed) and f.base == weight.base]
        if len(g) != 1 or len(w) != 1 or len(factors) != 2:
            raise ShapeError(f"cannot read a matrix off the term {term.coeff}: expected g[…]·{weight.name}[…]")
        env = _enumerate(term, wrt_idx, wrt.shape)
        if env is None:
            continue
        row = np.ravel_multi_index([env[i] for i in wrt_idx], [int(n) for n in wrt.shape])
        col, ok_g = _flat(upstream, g[0], env)
        entry, ok_w = _flat(weight, w[0], env)
        ok = ok_g & ok_w
        rows.append(row[ok]), cols.append(col[ok]), entries.append(entry[ok])
    cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
    return SparseSymbolMatrix((int(wrt.numel), int(upstream.numel)), cat(rows), cat(cols), cat(entries), weight)


@dataclass
class BackwardMatrix:
    """B derived by the chain rule, with the closed form it was read from."""
    layer: object
    closed_form: sp.Expr      # ∂L/∂x[i…] in closed form
    wrt_idx: tuple
    upstream: Tensor
    matrix: SparseSymbolMatrix


def backward_matrix(layer):
    """B with ∂L/∂vec(x) = B · ∂L/∂vec(y), from the chain rule (concrete sizes)."""
    concrete_layer(layer)
    c = chain_rule(layer, layer.x, "g")
    m = matrix_from_chain_rule(c.value, layer.x, c.local.wrt_idx, c.upstream, layer.weight)
    return BackwardMatrix(layer, c.value, c.local.wrt_idx, c.upstream, m)


def check_transpose(layer):
    """(B, A, equal, first difference) at the layer's concrete sizes; exact."""
    b = backward_matrix(layer)
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
