"""Multi-head attention as ``torch.nn.MultiheadAttention`` computes it (one layer of
``torch.nn.functional.multi_head_attention_forward`` with separate projection weights,
``batch_first=False``, no masks, no dropout):

    Q = query W_qᵀ + b_q,  K = key W_kᵀ + b_k,  V = value W_vᵀ + b_v     (b_q, b_k, b_v: in_proj_bias)
    head h (columns hD .. hD + D − 1 of Q, K, V, D = embed_dim / num_heads):
        A_h = softmax(Q_h K_hᵀ / √D) along the keys
    y = concat_h(A_h V_h) W_oᵀ + b_o

query (L, E) or (L, N, E), key (S, kdim), value (S, vdim) (with N likewise); q_proj_weight (E, E),
k_proj_weight (E, kdim), v_proj_weight (E, vdim), out_proj_weight (E, E), in_proj_bias (3E,),
out_proj_bias (E,). The projections, the scores and the weights are layers of their own
(``<name>_q``, ``<name>_k``, ``<name>_v``, ``<name>_scores``, ``<name>_weights``, the last two
with a head axis: (H, L, S) or (N, H, L, S), torch's per-head attention weights).
"""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index
from .base import Layer, entry, mark_inner, taken_by
from .cells import Names, _equal
from .registry import LayerKind, TorchOp, register


class Projection(Layer):
    """P[…, e] = Σ_d W[e, d] x[…, d] + b[offset + e]."""

    def __init__(self, name, x, weight, bias, offset, what):
        self.kind, self.x, self.weight, self.bias, self.offset, self.what = "attention projection", x, weight, \
            bias, offset, what
        super().__init__(name, [t for t in (x, weight, bias) if t is not None],
                         tuple(x.shape[:-1]) + (weight.shape[0],))

    def describe(self):
        return f"the {self.what} projection"

    def definition(self, idx, avoid=()):
        lead, e = tuple(idx[:-1]), idx[-1]
        d = fresh_index(self.x.shape[-1], taken_by(avoid, idx), ("d", "j", "k"))
        total = sp.Sum(entry(self.weight, (e, d)) * entry(self.x, lead + (d,)), (d, 0, self.x.shape[-1] - 1))
        return total + entry(self.bias, (self.offset + e,)) if self.bias is not None else total


def _at(batched, l, nb, e):
    """The entry of an (L, [N,] E) tensor."""
    return (l, nb, e) if batched else (l, e)


class HeadScores(Layer):
    """S[[n,] h, l, s] = Σ_a Q[l, [n,] hD + a] K[s, [n,] hD + a] / √D."""

    def __init__(self, name, q, k, heads, head_dim, batched):
        self.kind, self.q, self.k, self.heads, self.head_dim, self.batched = "attention scores", q, k, heads, \
            head_dim, batched
        lead = (q.shape[1],) if batched else ()
        super().__init__(name, [q, k], lead + (heads, q.shape[0], k.shape[0]))

    def describe(self):
        return "attention scores of each head, Q_h K_hᵀ / √D"

    def definition(self, idx, avoid=()):
        nb = idx[0] if self.batched else None
        h, l, s = idx[-3:]
        a = fresh_index(self.head_dim, taken_by(avoid, idx), ("a", "d", "e", "j"))
        col = h * self.head_dim + a
        return sp.Sum(entry(self.q, _at(self.batched, l, nb, col)) * entry(self.k, _at(self.batched, s, nb, col)),
                      (a, 0, self.head_dim - 1)) / sp.sqrt(self.head_dim)


class HeadWeights(Layer):
    """A[…, l, s] = e^{S[…, l, s]} / Σ_k e^{S[…, l, k]}."""

    def __init__(self, name, scores):
        self.kind, self.scores = "attention weights", scores
        super().__init__(name, [scores], scores.shape)

    def describe(self):
        return "attention weights of each head, the softmax of its scores over the keys"

    def definition(self, idx, avoid=()):
        lead, s = tuple(idx[:-1]), idx[-1]
        k = fresh_index(self.scores.shape[-1], taken_by(avoid, idx), ("k", "j", "r", "u"))
        return sp.exp(entry(self.scores, idx)) / sp.Sum(sp.exp(entry(self.scores, lead + (k,))),
                                                         (k, 0, self.scores.shape[-1] - 1))


class MultiHeadAttention(Layer):
    """y[l, [n,] e] = Σ_h Σ_a W_o[e, hD + a] Σ_s A[[n,] h, l, s] V[s, [n,] hD + a] + b_o[e]."""

    kind = "multi_head_attention"

    def __init__(self, name, query, key, value, q_proj_weight, k_proj_weight, v_proj_weight, out_proj_weight,
                 in_proj_bias=None, out_proj_bias=None, num_heads=1):
        if query.rank not in (2, 3) or not query.rank == key.rank == value.rank:
            raise ShapeError("multi_head_attention: query, key and value must all be (length, embed_dim) or all "
                             "(length, N, embed_dim) (PyTorch's batch_first=False)")
        batched = query.rank == 3
        if not _equal(key.shape[:-1], value.shape[:-1]):
            raise ShapeError(f"multi_head_attention: key {key.name} and value {value.name} must have the same "
                             "length (and batch)")
        if batched and not _equal(query.shape[1:2], key.shape[1:2]):
            raise ShapeError("multi_head_attention: query and key must have the same batch size N")
        E = query.shape[-1]
        for w, cols, what in ((q_proj_weight, E, "q_proj_weight"), (k_proj_weight, key.shape[-1], "k_proj_weight"),
                              (v_proj_weight, value.shape[-1], "v_proj_weight"), (out_proj_weight, E,
                                                                                   "out_proj_weight")):
            if w.rank != 2 or not _equal(w.shape, (E, cols)):
                raise ShapeError(f"multi_head_attention: {what} {w.name} must have shape ({E}, {cols}), got "
                                 f"({', '.join(map(str, w.shape))})")
        if in_proj_bias is not None and not _equal(in_proj_bias.shape, (3 * E,)):
            raise ShapeError(f"multi_head_attention: in_proj_bias {in_proj_bias.name} must have shape ({3 * E},)")
        if out_proj_bias is not None and not _equal(out_proj_bias.shape, (E,)):
            raise ShapeError(f"multi_head_attention: out_proj_bias {out_proj_bias.name} must have shape ({E},)")
        heads = sp.sympify(num_heads)
        if not (heads.is_Integer and heads >= 1):
            raise ShapeError(f"multi_head_attention: num_heads must be a positive number, got {num_heads}")
        head_dim = sp.simplify(E / heads)
        if head_dim.is_integer is not True:
            raise ShapeError(f"multi_head_attention: embed_dim {E} is not divisible by num_heads {heads}"
                             + ("" if E.is_Integer else f" (declare it as a multiple, e.g. {heads}*D)"))
        self.query, self.key, self.value, self.batched = query, key, value, batched
        self.q_proj_weight, self.k_proj_weight, self.v_proj_weight = q_proj_weight, k_proj_weight, v_proj_weight
        self.out_proj_weight, self.in_proj_bias, self.out_proj_bias = out_proj_weight, in_proj_bias, out_proj_bias
        self.num_heads, self.head_dim, self.embed_dim = heads, head_dim, E
        names = Names(name, [t for t in (query, key, value, q_proj_weight, k_proj_weight, v_proj_weight,
                                          out_proj_weight, in_proj_bias, out_proj_bias) if t is not None])
        self.q = Projection(names(f"{name}_q"), query, q_proj_weight, in_proj_bias, 0, "query")
        self.k = Projection(names(f"{name}_k"), key, k_proj_weight, in_proj_bias, E, "key")
        self.v = Projection(names(f"{name}_v"), value, v_proj_weight, in_proj_bias, 2 * E, "value")
        self.scores = HeadScores(names(f"{name}_scores"), self.q, self.k, int(heads), head_dim, batched)
        self.weights = HeadWeights(names(f"{name}_weights"), self.scores)
        super().__init__(name, [t for t in (self.weights, self.v, out_proj_weight, out_proj_bias) if t is not None],
                         query.shape)
        mark_inner(self, [query, key, value])

    def describe(self):
        return f"multi-head attention, {self.num_heads} head(s) of dimension {self.head_dim}"

    def definition(self, idx, avoid=()):
        l, e = idx[0], idx[-1]
        nb = idx[1] if self.batched else None
        taken = taken_by(avoid, idx)
        h = fresh_index(self.num_heads, taken, ("h", "c", "u"))
        a = fresh_index(self.head_dim, taken | {h.name}, ("a", "d", "j"))
        s = fresh_index(self.key.shape[0], taken | {h.name, a.name}, ("s", "k", "r"))
        col = h * self.head_dim + a
        head = sp.Sum(entry(self.weights, ((nb,) if self.batched else ()) + (h, l, s))
                      * entry(self.v, _at(self.batched, s, nb, col)), (s, 0, self.key.shape[0] - 1))
        total = sp.Sum(entry(self.out_proj_weight, (e, col)) * head, (a, 0, self.head_dim - 1),
                       (h, 0, self.num_heads - 1))
        return total + entry(self.out_proj_bias, (e,)) if self.out_proj_bias is not None else total


def _torch_mha(layer, get, num):
    import torch.nn.functional as F
    E, heads = num(layer.embed_dim), int(layer.num_heads)
    out, _ = F.multi_head_attention_forward(
        get(layer.query), get(layer.key), get(layer.value), E, heads, None,
        get(layer.in_proj_bias) if layer.in_proj_bias is not None else None, None, None, False, 0.0,
        get(layer.out_proj_weight), get(layer.out_proj_bias) if layer.out_proj_bias is not None else None,
        training=False, need_weights=False, use_separate_proj_weight=True, q_proj_weight=get(layer.q_proj_weight),
        k_proj_weight=get(layer.k_proj_weight), v_proj_weight=get(layer.v_proj_weight))
    return out


def _backward_form(layer, wrt, upstream, free, taken):
    """∂ℓ/∂W_v head by head, as the backward pass of Vaswani et al. §3.2.2's multi-head attention is written
    (each head is scaled dot-product attention, whose ∂/∂V is Aᵀ g, FlashAttention's dV = Pᵀ dO), with
    g = ∂ℓ/∂y:

        dO = g W_o (the gradient by the heads' concatenated outputs),  dO_h = columns hD … hD + D − 1 of dO,
        dV_h = A_hᵀ dO_h,   dV = [dV_1 … dV_H],   ∂ℓ/∂W_v = dVᵀ X_value

    with A_h the head's attention weights. Only for the value projection's weight, without a batch axis."""
    from ..course_forms import BackwardForm, Named, free_name
    from ..tensors import Tensor
    if layer.batched or wrt is not layer.v_proj_weight or len(free) != 2 \
            or any(t is wrt for t in (layer.query, layer.key, layer.value, layer.q_proj_weight,
                                      layer.k_proj_weight, layer.out_proj_weight)):
        return None
    p, q = free
    taken = set(taken) | {p.name, q.name}
    L, S, E, D, H = layer.query.shape[0], layer.key.shape[0], layer.embed_dim, layer.head_dim, int(layer.num_heads)
    l, s, e, a, j = [], None, None, None, None
    for size, letters in ((L, ("i", "t", "u")), (S, ("s", "k", "r")), (E, ("e", "c", "f")), (D, ("a", "b", "d")),
                          (E, ("j", "v", "w"))):
        l.append(fresh_index(size, taken, letters))
        taken.add(l[-1].name)
    l, s, e, a, j = l
    d_out = Tensor(free_name(("dO", "dY"), taken), (L, E))
    named = [Named(d_out, (l, e), sp.Sum(entry(upstream, (l, j)) * entry(layer.out_proj_weight, (j, e)),
                                         (j, 0, E - 1)),
                   rf"${d_out.tex} = {upstream.tex} W_o$, the gradient by the heads' outputs, concatenated")]
    pieces = []
    for h in range(H):
        weights = Tensor(free_name((f"A{h + 1}", f"P{h + 1}"), taken), (L, S))
        named.append(Named(weights, (l, s), entry(layer.weights, (h, l, s)),
                           rf"${weights.tex}$, head {h + 1}'s attention weights"))
        d_head = Tensor(free_name((f"dO{h + 1}", f"dY{h + 1}"), taken), (L, D))
        named.append(Named(d_head, (l, a), d_out.base[l, h * D + a],
                           rf"${d_head.tex}$, head {h + 1}'s columns of ${d_out.tex}$"))
        d_v = Tensor(free_name((f"dV{h + 1}", f"dV{h + 1}_"), taken), (S, D))
        named.append(Named(d_v, (s, a), sp.Sum(weights.base[l, s] * d_head.base[l, a], (l, 0, L - 1)),
                           rf"${d_v.tex} = {weights.tex}^T {d_head.tex}$, the gradient by head {h + 1}'s values "
                           "(scaled dot-product attention's backward pass)"))
        pieces.append((d_v.base[s, e - h * D], sp.And(e >= h * D, e < (h + 1) * D)))
    d_value = Tensor(free_name(("dV", "dV_"), taken), (S, E))
    named.append(Named(d_value, (s, e), sp.Piecewise(*pieces[:-1], (pieces[-1][0], True)),
                       rf"${d_value.tex}$, the heads' gradients side by side: " + "["
                       + ", ".join(rf"${n.tensor.tex}$" for n in named if n.tensor.name.startswith("dV")) + "]"))
    gradient = sp.Sum(d_value.base[s, p] * entry(layer.value, (s, q)), (s, 0, S - 1))
    return BackwardForm(tuple(named), gradient)


register(LayerKind("multi_head_attention", MultiHeadAttention,
                   ("query", "key", "value", "q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj_weight",
                    "in_proj_bias", "out_proj_bias"), options=("num_heads",),
                   torch=TorchOp("torch.nn.functional.multi_head_attention_forward (torch.nn.MultiheadAttention)",
                                 _torch_mha), backward_form=_backward_form))
