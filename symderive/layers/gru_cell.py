"""The GRU cell as PyTorch computes it: ``gru_cell`` (one step, ``torch.nn.GRUCell``) and ``gru``
(unrolled over the T rows of its input, ``torch.nn.GRU`` with one layer). The gates are stacked
by rows of W_ih (3m × n) and W_hh (3m × m) in torch's order r, z, n:

    r = σ(…rows 0..m−1…), z = σ(…m..2m−1…),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

(the reset gate multiplies W_hn h + b_hn, bias included, as in PyTorch and unlike some texts).
"""
import sympy as sp

from ..errors import ShapeError
from ..functions import sigmoid
from .base import Layer, entry, mark_inner
from .cells import CellTensors, Gate, Names, Sequence, functional_module, has_bias, module_params, unroll
from .registry import LayerKind, TorchOp, register


class Candidate(Layer):
    """n[…, i] = tanh(rows 2m + i of W_ih x + b_ih  +  r[…, i] · (rows 2m + i of W_hh h + b_hh))."""

    def __init__(self, name, cell, r, state, prefix, tag=""):
        self.kind, self.cell, self.r, self.state, self.prefix, self.tag = "gru candidate", cell, r, state, prefix, tag
        inputs = [r] + ([state] if state is not None else []) + [t for t in cell.leaves if t is not cell.hx]
        super().__init__(name, inputs, cell.lead + (cell.m,))

    def describe(self):
        return f"GRU candidate state{self.tag}"

    def definition(self, idx, avoid=()):
        x_part = self.cell.affine(2, idx, avoid, None, input_part=True, hidden_part=False)
        h_part = self.cell.affine(2, idx, avoid, self.state, self.prefix, input_part=False, hidden_part=True)
        return sp.tanh(x_part + entry(self.r, idx) * h_part)


class GRUState(Layer):
    """h'[…, i] = (1 − z[…, i]) n[…, i] + z[…, i] h[…, i] (h = 0 when no hx is given)."""

    def __init__(self, name, kind, cell, z, n, state, prefix, tag=""):
        self.kind, self.cell, self.z, self.n, self.state, self.prefix, self.tag = kind, cell, z, n, state, prefix, tag
        super().__init__(name, [z, n] + ([state] if state is not None else []), cell.lead + (cell.m,))

    def describe(self):
        return f"GRU hidden state{self.tag}"

    def definition(self, idx, avoid=()):
        z = entry(self.z, idx)
        kept = z * entry(self.state, tuple(self.prefix) + tuple(idx)) if self.state is not None else 0
        return (1 - z) * entry(self.n, idx) + kept


def _step(names, cell, h, prefix, kind, name, tag="", suffix=""):
    r = Gate(names(f"r{suffix}"), cell, 0, sigmoid, h, prefix, why=f"GRU reset gate{tag}")
    z = Gate(names(f"z{suffix}"), cell, 1, sigmoid, h, prefix, why=f"GRU update gate{tag}")
    n = Candidate(names(f"n{suffix}"), cell, r, h, prefix, tag)
    return GRUState(name or names(f"h{suffix}"), kind, cell, z, n, h, prefix, tag)


def gru_cell(name, input, hx=None, weight_ih=None, weight_hh=None, bias_ih=None, bias_hh=None):
    if weight_ih is None or weight_hh is None:
        raise ShapeError("gru_cell: needs input, hx, weight_ih and weight_hh (in PyTorch's order)")
    cell = CellTensors("gru_cell", 3, input, hx, weight_ih, weight_hh, bias_ih, bias_hh)
    layer = _step(Names(name, cell.leaves), cell, hx, (), "gru_cell", name)
    layer.hx = hx
    return mark_inner(layer, cell.leaves)


def gru(name, input, hx=None, weight_ih=None, weight_hh=None, bias_ih=None, bias_hh=None):
    """The sequence h_1..h_T of the GRU unrolled over the rows of ``input`` (PyTorch's ``output``)."""
    if weight_ih is None or weight_hh is None:
        raise ShapeError("gru: needs input, hx, weight_ih and weight_hh (in PyTorch's order)")
    cell = CellTensors("gru", 3, input, hx, weight_ih, weight_hh, bias_ih, bias_hh, sequence=True)
    steps = unroll(name, cell, hx, lambda names, at, state, prefix, t: _step(
        names, at, state, prefix, "gru step", None, f", step {t + 1}", t + 1))
    layer = Sequence(name, "gru", steps, f"GRU unrolled over {len(steps)} steps")
    layer.cell, layer.hx = cell, hx
    return mark_inner(layer, cell.leaves)


def _h0(layer, get):
    if layer.hx is None:
        return None
    value = get(layer.hx)
    return value[0] if layer.cell.state_prefix(layer.hx) else value


def _torch_gru_cell(layer, get, num):
    import torch
    cell = layer.cell
    module = torch.nn.GRUCell(num(cell.n), num(cell.m), bias=has_bias(cell), dtype=torch.float64)
    return functional_module(module, module_params(cell, get), get(cell.x), _h0(layer, get))


def _torch_gru(layer, get, num):
    import torch
    cell = layer.cell
    module = torch.nn.GRU(num(cell.n), num(cell.m), num_layers=1, bias=has_bias(cell), dtype=torch.float64)
    h0 = _h0(layer, get)
    args = (get(cell.x),) + ((h0.unsqueeze(0),) if h0 is not None else ())
    return functional_module(module, module_params(cell, get, "_l0"), *args)[0]


def _backward_form(layer, wrt, upstream, free, taken):
    """One step's backward pass as d2l 10.2 and CMU 11-785 (GRU cell backward) write it, with g = ∂L/∂h':

        δ_n = g ⊙ (1 − z) ⊙ (1 − n²),   δ_z = g ⊙ (h − n) ⊙ z ⊙ (1 − z),
        δ_r = δ_n ⊙ (W_hn h + b_hn) ⊙ r ⊙ (1 − r),
        ∂L/∂h = g ⊙ z + W_hrᵀ δ_r + W_hzᵀ δ_z + W_hnᵀ (δ_n ⊙ r),   ∂L/∂x = W_irᵀ δ_r + W_izᵀ δ_z + W_inᵀ δ_n

    with W_h· (W_i·, b_hn) the gate's block of rows of W_hh (W_ih, b_hh) in torch's order r, z, n (printed
    W_{h,r}, …). The reset gate multiplies W_hn h + b_hn, so δ_n reaches h through r. Only for hx and the input
    of one cell without a batch axis; the weights' gradients (a block of rows per gate) are left to the element
    formula."""
    from ..course_forms import BackwardForm, Named, free_name
    from ..indices import fresh_index
    from ..tensors import Tensor
    cell = layer.cell
    if cell.step is not None or cell.lead or len(free) != 1 or layer.kind != "gru_cell":
        return None
    h_prev = layer.state
    slots = {"hx": h_prev, "input": cell.x}
    if not any(t is wrt for t in slots.values()) or (h_prev is not None and h_prev is cell.x):
        return None
    z_layer, n_layer = layer.z, layer.n
    r_layer = n_layer.r
    taken = set(taken) | {free[0].name}
    k = fresh_index(cell.m, taken, ("k", "i", "j", "u"))
    taken.add(k.name)
    m, p = cell.m, free[0]
    g_k, z_k, n_k, r_k = (entry(t, (k,)) for t in (upstream, z_layer, n_layer, r_layer))
    named = []

    def block(weight, gate, side, size, why):
        """The gate's rows of ``weight`` as a named m × size matrix W_{side,gate}."""
        letter = "rzn"[gate]
        w = Tensor(free_name((f"W{side}{letter}", f"W{side}_{letter}"), taken), (m, size))
        q = fresh_index(size, taken | {k.name}, ("q", "j", "l"))
        named.append(Named(w, (k, q), entry(weight, (gate * m + k, q)),
                           rf"${w.tex}$, the {why}'s rows of ${weight.tex}$ (rows ${sp.latex(gate * m)}$ to "
                           rf"${sp.latex((gate + 1) * m - 1)}$, counted from 0)"))
        return w, q

    delta = {}
    d_n = Tensor(free_name(("delta_n", "da_n"), taken), (m,))
    named.append(Named(d_n, (k,), g_k * (1 - z_k) * (1 - n_k ** 2),
                       rf"${d_n.tex}$, the gradient at the candidate's pre-activation: "
                       rf"${upstream.tex} \odot (1 - z) \odot (1 - n^2)$, since $\tanh' = 1 - \tanh^2$"))
    delta["n"] = d_n
    h_k = entry(h_prev, (k,)) if h_prev is not None else sp.S.Zero
    d_z = Tensor(free_name(("delta_z", "da_z"), taken), (m,))
    named.append(Named(d_z, (k,), g_k * (h_k - n_k) * z_k * (1 - z_k),
                       rf"${d_z.tex}$, the gradient at the update gate's pre-activation: "
                       rf"${upstream.tex} \odot (h - n) \odot z \odot (1 - z)$"))
    delta["z"] = d_z
    hidden, w_hn = sp.S.Zero, None                   # W_hn h + b_hn, what the reset gate multiplies
    if h_prev is not None:
        w_hn, q = block(cell.weight_hh, 2, "h", m, "candidate")
        hidden += sp.Sum(w_hn.base[k, q] * entry(h_prev, (q,)), (q, 0, m - 1))
    if cell.bias_hh is not None:
        b_hn = Tensor(free_name(("bhn", "bh_n"), taken), (m,))
        named.append(Named(b_hn, (k,), entry(cell.bias_hh, (2 * m + k,)),
                           rf"${b_hn.tex}$, the candidate's entries of ${cell.bias_hh.tex}$ "
                           rf"(${sp.latex(2 * m)}$ to ${sp.latex(3 * m - 1)}$, counted from 0)"))
        hidden += b_hn.base[k]
    if hidden != 0:
        d_r = Tensor(free_name(("delta_r", "da_r"), taken), (m,))
        named.append(Named(d_r, (k,), d_n.base[k] * hidden * r_k * (1 - r_k),
                           rf"${d_r.tex}$, the gradient at the reset gate's pre-activation: "
                           rf"$\delta_n \odot (W_{{hn}} h + b_{{hn}}) \odot r \odot (1 - r)$"))
        delta["r"] = d_r
    gradient = sp.S.Zero
    if h_prev is wrt:
        gradient += entry(upstream, (p,)) * entry(z_layer, (p,))           # the update gate's direct path
        for gate, letter in enumerate("rzn"):
            if letter not in delta:
                continue
            if letter == "n":                    # δ_n reaches h through the reset gate
                gradient += sp.Sum(w_hn.base[k, p] * delta["n"].base[k] * r_k, (k, 0, m - 1))
            else:
                w, _ = block(cell.weight_hh, gate, "h", m, {"r": "reset gate", "z": "update gate"}[letter])
                gradient += sp.Sum(w.base[k, p] * delta[letter].base[k], (k, 0, m - 1))
    if cell.x is wrt:
        for gate, letter in enumerate("rzn"):
            if letter not in delta:
                continue
            w, _ = block(cell.weight_ih, gate, "x", cell.n,
                         {"r": "reset gate", "z": "update gate", "n": "candidate"}[letter])
            gradient += sp.Sum(w.base[k, p] * delta[letter].base[k], (k, 0, m - 1))
    return BackwardForm(tuple(named), gradient)


INPUTS = ("input", "hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
register(LayerKind("gru_cell", gru_cell, INPUTS, torch=TorchOp("torch.nn.GRUCell", _torch_gru_cell),
                   backward_form=_backward_form),
         LayerKind("gru", gru, INPUTS, torch=TorchOp("torch.nn.GRU", _torch_gru)))
