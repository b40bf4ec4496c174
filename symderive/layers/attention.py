"""Scaled dot-product attention as ``torch.nn.functional.scaled_dot_product_attention``:

    S = scale · Q Kᵀ (+ M),   A = softmax(S) along the keys,   y = A V,

Q (…, L, E), K (…, S, E), V (…, S, Ev), any leading (batch, head) axes equal in the three; scale
defaults to 1/√E. ``attn_mask`` M is (L, S) or (…, L, S): added to the scores (a float mask,
``mask_dtype='float'``, the default) or, as a boolean mask (``mask_dtype='bool'``, True = takes
part, as PyTorch's SDPA), the weights A_ls = M_ls e^{S_ls} / Σ_k M_lk e^{S_lk} (a masked score is
−∞). The scores and the weights are layers of their own (``<name>_scores``, ``<name>_weights``),
so derivations name them; the output is written with the weights.
"""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index
from .base import Layer, entry, mark_inner, taken_by
from .cells import Names, _equal
from .registry import LayerKind, TorchOp, register


class Scores(Layer):
    """S[…, l, s] = scale · Σ_e Q[…, l, e] K[…, s, e] (+ M[…, l, s] for a float mask)."""

    def __init__(self, name, query, key, scale, mask, additive):
        self.kind, self.query, self.key, self.scale, self.mask, self.additive = \
            "attention scores", query, key, scale, mask, additive
        super().__init__(name, [query, key] + ([mask] if mask is not None and additive else []),
                         tuple(query.shape[:-1]) + (key.shape[-2],))

    def describe(self):
        return "attention scores, scale · Q Kᵀ" + (" + mask" if self.mask is not None and self.additive else "")

    def definition(self, idx, avoid=()):
        lead, l, s = tuple(idx[:-2]), idx[-2], idx[-1]
        e = fresh_index(self.query.shape[-1], taken_by(avoid, idx), ("e", "d", "j", "k"))
        total = self.scale * sp.Sum(entry(self.query, lead + (l, e)) * entry(self.key, lead + (s, e)),
                                    (e, 0, self.query.shape[-1] - 1))
        if self.mask is not None and self.additive:
            total += entry(self.mask, mask_index(self.mask, lead, l, s))
        return total


def mask_index(mask, lead, l, s):
    return (tuple(lead) if mask.rank > 2 else ()) + (l, s)


class Weights(Layer):
    """A[…, l, s] = e^{S[…, l, s]} / Σ_k e^{S[…, l, k]} (times M where the mask is boolean)."""

    def __init__(self, name, scores, mask, boolean):
        self.kind, self.scores, self.mask, self.boolean = "attention weights", scores, mask, boolean
        super().__init__(name, [scores] + ([mask] if boolean else []), scores.shape)

    def describe(self):
        return "attention weights, the softmax of the scores over the keys" + \
            (" where the boolean mask is 1" if self.boolean else "")

    def definition(self, idx, avoid=()):
        lead, l, s = tuple(idx[:-2]), idx[-2], idx[-1]
        k = fresh_index(self.scores.shape[-1], taken_by(avoid, idx), ("k", "j", "r", "u"))

        def weight(col):
            w = sp.exp(entry(self.scores, lead + (l, col)))
            return w * entry(self.mask, mask_index(self.mask, lead, l, col)) if self.boolean else w
        return weight(s) / sp.Sum(weight(k), (k, 0, self.scores.shape[-1] - 1))


class Attention(Layer):
    """y[…, l, v] = Σ_s A[…, l, s] V[…, s, v]."""

    kind = "scaled_dot_product_attention"

    def __init__(self, name, query, key, value, attn_mask=None, scale=None, mask_dtype="float"):
        for t, what in ((query, "query"), (key, "key"), (value, "value")):
            if t.rank < 2:
                raise ShapeError(f"scaled_dot_product_attention: {what} {t.name} must have shape (…, length, "
                                 f"features), got rank {t.rank}")
        if not (query.rank == key.rank == value.rank):
            raise ShapeError(f"scaled_dot_product_attention: query, key and value must have the same rank, got "
                             f"{query.rank}, {key.rank}, {value.rank}")
        if not _equal(query.shape[:-2], key.shape[:-2]) or not _equal(key.shape[:-2], value.shape[:-2]):
            raise ShapeError("scaled_dot_product_attention: the leading (batch, head) axes of query, key and value "
                             "must be equal")
        if not _equal(query.shape[-1:], key.shape[-1:]):
            raise ShapeError(f"scaled_dot_product_attention: query {query.name} has {query.shape[-1]} features but "
                             f"key {key.name} has {key.shape[-1]}")
        if not _equal(key.shape[-2:-1], value.shape[-2:-1]):
            raise ShapeError(f"scaled_dot_product_attention: key {key.name} has {key.shape[-2]} positions but "
                             f"value {value.name} has {value.shape[-2]}")
        want = tuple(query.shape[:-1]) + (key.shape[-2],)
        if attn_mask is not None and not (_equal(attn_mask.shape, want[-2:]) or _equal(attn_mask.shape, want)):
            raise ShapeError(f"scaled_dot_product_attention: attn_mask {attn_mask.name} must have shape "
                             f"({', '.join(map(str, want[-2:]))}) or ({', '.join(map(str, want))}), got "
                             f"({', '.join(map(str, attn_mask.shape))})")
        self.query, self.key, self.value, self.attn_mask, self.mask_dtype = query, key, value, attn_mask, mask_dtype
        self.scale = sp.sympify(scale) if scale is not None else 1 / sp.sqrt(query.shape[-1])
        self.given_scale = scale
        names = Names(name, [query, key, value] + ([attn_mask] if attn_mask is not None else []))
        boolean = attn_mask is not None and mask_dtype == "bool"
        self.scores = Scores(names(f"{name}_scores"), query, key, self.scale, attn_mask, not boolean)
        self.weights = Weights(names(f"{name}_weights"), self.scores, attn_mask, boolean)
        super().__init__(name, [self.weights, value], tuple(query.shape[:-1]) + (value.shape[-1],))
        mark_inner(self, [t for t in (query, key, value, attn_mask) if t is not None])

    def describe(self):
        return "scaled dot-product attention"

    def domains(self):
        if self.attn_mask is not None and self.mask_dtype == "bool":
            return {self.attn_mask.name: ("mask rows",)}
        return {}

    def definition(self, idx, avoid=()):
        lead, l, v = tuple(idx[:-2]), idx[-2], idx[-1]
        s = fresh_index(self.value.shape[-2], taken_by(avoid, idx), ("s", "k", "j", "r"))
        return sp.Sum(entry(self.weights, lead + (l, s)) * entry(self.value, lead + (s, v)),
                      (s, 0, self.value.shape[-2] - 1))


def _torch_sdpa(layer, get, num):
    import torch.nn.functional as F
    mask = None
    if layer.attn_mask is not None:
        mask = get(layer.attn_mask)
        mask = mask > 0.5 if layer.mask_dtype == "bool" else mask
    scale = float(layer.given_scale) if layer.given_scale is not None else None
    return F.scaled_dot_product_attention(get(layer.query), get(layer.key), get(layer.value), attn_mask=mask,
                                          scale=scale)


def taken_index(size, taken, letters):
    """A fresh index over 0..size−1 named by one of ``letters`` if it can be, then added to ``taken``."""
    index = fresh_index(size, taken, tuple(letters))
    taken.add(index.name)
    return index


def _backward_form(layer, wrt, upstream, free, taken):
    """The backward pass as the FlashAttention paper (Dao et al. 2022, Algorithm 2 / eq. in section 2.3)
    and CS224n/d2l write it, with G = ∂L/∂O the upstream gradient and P the attention weights:

        ∂L/∂V = Pᵀ G,   dP = G Vᵀ,   D = rowsum(P ⊙ dP),   dS = P ⊙ (dP − D),
        ∂L/∂Q = scale · dS K,   ∂L/∂K = scale · dSᵀ Q

    (an additive mask leaves it unchanged; a boolean one is inside P). ``wrt`` read in several places
    (self-attention: K = V) collects one term per place. Only Q, K, V without leading (batch, head) axes.
    """
    from ..course_forms import BackwardForm, Named, free_name
    from ..tensors import Tensor
    slots = [t for t in (layer.query, layer.key, layer.value) if t is wrt]
    if not slots or layer.query.rank != 2 or len(free) != 2:
        return None
    (L, _), (S, Ev) = layer.query.shape, layer.value.shape
    taken = set(taken) | {i.name for i in free}
    l, s, k, v = (taken_index(n, taken, letters) for n, letters in ((L, "liab"), (S, "sjrt"), (S, "kjru"),
                                                                     (Ev, "vecd")))
    p, q = free
    P = Tensor(free_name(("P", "A"), taken), (L, S))
    named = [Named(P, (l, s), entry(layer.weights, (l, s)),
                   rf"${P.tex} = \operatorname{{softmax}}({layer.scores.tex})$ row by row, the attention weights "
                   rf"(${layer.weights.tex}$)")]
    G = upstream.base
    gradient = sp.S.Zero
    if layer.value is wrt:
        gradient += sp.Sum(P.base[l, p] * G[l, q], (l, 0, L - 1))
    if layer.query is wrt or layer.key is wrt:
        dP = Tensor(free_name(("dP",), taken), (L, S))
        D = Tensor(free_name(("D", "Delta"), taken), (L,))
        dS = Tensor(free_name(("dS",), taken), (L, S))
        named += [Named(dP, (l, s), sp.Sum(G[l, v] * entry(layer.value, (s, v)), (v, 0, Ev - 1)),
                        rf"${dP.tex}$, the gradient by ${P.tex}$: the upstream gradient through $O = {P.tex} V$"),
                  Named(D, (l,), sp.Sum(P.base[l, k] * dP.base[l, k], (k, 0, S - 1)),
                        rf"${D.tex}_{l} = \sum_{k} {P.tex}_{{{l},{k}}} {dP.tex}_{{{l},{k}}}$, one number per query "
                        "(the softmax Jacobian's rank-one part)"),
                  Named(dS, (l, s), P.base[l, s] * (dP.base[l, s] - D.base[l]),
                        rf"${dS.tex}$, the gradient by the scores ${layer.scores.tex}$, through the row-wise softmax: "
                        rf"${dS.tex} = {P.tex} \odot ({dP.tex} - {D.tex})$, ${D.tex}$ repeated along each row")]
        if layer.query is wrt:
            gradient += layer.scale * sp.Sum(dS.base[p, s] * entry(layer.key, (s, q)), (s, 0, S - 1))
        if layer.key is wrt:
            gradient += layer.scale * sp.Sum(dS.base[l, p] * entry(layer.query, (l, q)), (l, 0, L - 1))
    return BackwardForm(tuple(named), gradient)


register(LayerKind("scaled_dot_product_attention", Attention, ("query", "key", "value", "attn_mask"),
                   options=("scale", "mask_dtype"), numbers=("scale",), choices={"mask_dtype": ("float", "bool")},
                   torch=TorchOp("torch.nn.functional.scaled_dot_product_attention", _torch_sdpa),
                   backward_form=_backward_form))
