"""The LSTM cell as PyTorch computes it: ``lstm_cell`` (one step, ``torch.nn.LSTMCell``) and
``lstm`` (unrolled over the T rows of its input, ``torch.nn.LSTM`` with one layer). The gates
are stacked by rows of W_ih (4m × n) and W_hh (4m × m) in torch's order i, f, g, o:

    i = σ(…rows 0..m−1…), f = σ(…m..2m−1…), g = tanh(…2m..3m−1…), o = σ(…3m..4m−1…)
    c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

PyTorch returns the pair (h', c'); a layer is one tensor, so ``output='c'`` picks c' (for
``lstm``, the sequence of cell states) and the default ``output='h'`` h'.
"""
import sympy as sp

from ..errors import ShapeError
from ..functions import sigmoid
from .base import Layer, entry, mark_inner
from .cells import CellTensors, Gate, Names, Sequence, functional_module, has_bias, module_params, sequence_length
from .registry import LayerKind, TorchOp, register

GATES = (("i", sigmoid, "input gate"), ("f", sigmoid, "forget gate"), ("g", sp.tanh, "cell candidate"),
         ("o", sigmoid, "output gate"))


class CellState(Layer):
    """c'[…, i] = f[…, i] c[…, i] + i[…, i] g[…, i] (c = 0 when no cx is given)."""

    def __init__(self, name, cell, gates, c, prefix, step_tag):
        self.kind, self.cell, self.gates, self.c, self.prefix = "lstm cell state", cell, gates, c, prefix
        self.step_tag = step_tag
        super().__init__(name, list(gates.values()) + ([c] if c is not None else []), cell.lead + (cell.m,))

    def describe(self):
        return f"LSTM cell state{self.step_tag}"

    def definition(self, idx, avoid=()):
        g = self.gates
        kept = entry(g["f"], idx) * entry(self.c, tuple(self.prefix) + tuple(idx)) if self.c is not None else 0
        return kept + entry(g["i"], idx) * entry(g["g"], idx)


class HiddenState(Layer):
    """h'[…, i] = o[…, i] tanh(c'[…, i])."""

    def __init__(self, name, kind, cell, o, c, step_tag=""):
        self.kind, self.cell, self.o, self.c, self.step_tag = kind, cell, o, c, step_tag
        super().__init__(name, [o, c], cell.lead + (cell.m,))

    def describe(self):
        return f"LSTM hidden state{self.step_tag}"

    def definition(self, idx, avoid=()):
        return entry(self.o, idx) * sp.tanh(entry(self.c, idx))


def _step(names, cell, h, h_prefix, c, c_prefix, tag, suffix):
    gates = {letter: Gate(names(f"{letter}{suffix}"), cell, k, function, h, h_prefix, why=f"LSTM {why}{tag}")
             for k, (letter, function, why) in enumerate(GATES)}
    state = CellState(names(f"c{suffix}"), cell, gates, c, c_prefix, tag)
    return gates, state


def lstm_cell(name, input, hx=None, cx=None, weight_ih=None, weight_hh=None, bias_ih=None, bias_hh=None,
              output="h"):
    """One LSTM step; the layer is h' (``output='h'``) or c' (``output='c'``)."""
    if weight_ih is None or weight_hh is None:
        raise ShapeError("lstm_cell: needs input, hx, cx, weight_ih and weight_hh (in PyTorch's order; "
                         "PyTorch's pair (h, c) is written as the two tensors hx, cx)")
    cell = CellTensors("lstm_cell", 4, input, hx, weight_ih, weight_hh, bias_ih, bias_hh, cx=cx)
    names = Names(name, cell.leaves)
    gates = {letter: Gate(names(letter), cell, k, function, hx, (), why=f"LSTM {why}")
             for k, (letter, function, why) in enumerate(GATES)}
    if output == "c":
        layer = CellState(name, cell, gates, cx, (), "")
    else:
        layer = HiddenState(name, "lstm_cell", cell, gates["o"], CellState(names("c"), cell, gates, cx, (), ""))
    layer.kind = "lstm_cell"
    layer.output, layer.hx, layer.cx = output, hx, cx
    return mark_inner(layer, cell.leaves)


def lstm(name, input, hx=None, cx=None, weight_ih=None, weight_hh=None, bias_ih=None, bias_hh=None, output="h"):
    """The sequence h_1..h_T (``output='h'``, PyTorch's ``output``) or c_1..c_T (``output='c'``)."""
    if weight_ih is None or weight_hh is None:
        raise ShapeError("lstm: needs input, hx, cx, weight_ih and weight_hh (in PyTorch's order)")
    cell = CellTensors("lstm", 4, input, hx, weight_ih, weight_hh, bias_ih, bias_hh, cx=cx, sequence=True)
    names = Names(name, cell.leaves)
    h, hp = hx, (cell.state_prefix(hx) if hx is not None else ())
    c, cp = cx, (cell.state_prefix(cx, "cx") if cx is not None else ())
    hs, cs = [], []
    for t in range(sequence_length("lstm", input)):
        step = cell.at_step(t)
        gates, c = _step(names, step, h, hp, c, cp, f", step {t + 1}", t + 1)
        h = HiddenState(names(f"h{t + 1}"), "lstm step", step, gates["o"], c, f", step {t + 1}")
        hs.append(h)
        cs.append(c)
        hp = cp = ()
    layer = Sequence(name, "lstm", cs if output == "c" else hs, f"LSTM unrolled over {len(hs)} steps ({output})")
    layer.cell, layer.output, layer.hx, layer.cx = cell, output, hx, cx
    return mark_inner(layer, cell.leaves)


def _states(layer, get, cell):
    """(h0, c0) in the cell's form (…, m), zeros where not given."""
    import torch
    shape = tuple(get(cell.x).shape[1:-1] if cell.sequence else get(cell.x).shape[:-1]) + \
        (get(cell.weight_hh).shape[1],)
    out = []
    for state, what in ((layer.hx, "hx"), (layer.cx, "cx")):
        if state is None:
            out.append(torch.zeros(shape, dtype=torch.float64))
        else:
            value = get(state)
            out.append(value[0] if cell.state_prefix(state, what) else value)
    return out


def _torch_lstm_cell(layer, get, num):
    import torch
    cell = layer.cell
    module = torch.nn.LSTMCell(num(cell.n), num(cell.m), bias=has_bias(cell), dtype=torch.float64)
    h, c = functional_module(module, module_params(cell, get), get(cell.x), tuple(_states(layer, get, cell)))
    return c if layer.output == "c" else h


def _torch_lstm(layer, get, num):
    import torch
    cell = layer.cell
    h0, c0 = _states(layer, get, cell)
    if layer.output == "h":
        module = torch.nn.LSTM(num(cell.n), num(cell.m), num_layers=1, bias=has_bias(cell), dtype=torch.float64)
        return functional_module(module, module_params(cell, get, "_l0"), get(cell.x),
                                 (h0.unsqueeze(0), c0.unsqueeze(0)))[0]
    # PyTorch's LSTM returns only the last cell state: step its LSTMCell through the sequence.
    module = torch.nn.LSTMCell(num(cell.n), num(cell.m), bias=has_bias(cell), dtype=torch.float64)
    params, x, states, cs = module_params(cell, get), get(cell.x), (h0, c0), []
    for t in range(x.shape[0]):
        states = functional_module(module, params, x[t], states)
        cs.append(states[1])
    return torch.stack(cs)


def _backward_form(layer, wrt, upstream, free, taken):
    """One step's backward pass as CS231n (lstm_step_backward) and d2l 10.1 write it, with g = ∂L/∂h'
    (or ∂L/∂c' for ``output='c'``, then δ_c = g):

        δ_c = g ⊙ o ⊙ (1 − tanh²(c')),   ∂L/∂c = δ_c ⊙ f,
        δ_i = δ_c ⊙ g̃ ⊙ i ⊙ (1 − i),  δ_f = δ_c ⊙ c ⊙ f ⊙ (1 − f),  δ_g = δ_c ⊙ i ⊙ (1 − g̃²),
        δ_o = g ⊙ tanh(c') ⊙ o ⊙ (1 − o),   ∂L/∂h = Σ_gates W_{h·}ᵀ δ_·,   ∂L/∂x = Σ_gates W_{x·}ᵀ δ_·

    with W_{h·} the gate's block of rows of W_hh (d2l's W_hi, W_hf, W_hc, W_ho; printed W_{h,i}, …). Only for hx,
    cx and the input of one cell without a batch axis; the weights' gradients (a block of rows per gate) are left
    to the element formula."""
    from ..course_forms import BackwardForm, Named, free_name
    from ..indices import fresh_index
    from ..tensors import Tensor
    cell = layer.cell
    if cell.step is not None or cell.lead or len(free) != 1:
        return None
    state = layer if layer.output == "c" else layer.c
    gates, c_prev = state.gates, state.c
    slots = {"hx": layer.hx, "cx": c_prev, "input": cell.x}
    if not any(t is wrt for t in slots.values()) or (c_prev is not None and c_prev is layer.hx):
        return None
    taken = set(taken) | {free[0].name}
    k = fresh_index(cell.m, taken, ("k", "i", "j", "u"))
    taken.add(k.name)
    m = cell.m
    named = []
    if layer.output == "c":
        d_c = upstream.base
    else:
        dc = Tensor(free_name(("delta_c", "dc"), taken), (m,))
        named.append(Named(dc, (k,), entry(upstream, (k,)) * entry(gates["o"], (k,))
                           * (1 - sp.tanh(entry(state, (k,))) ** 2),
                           rf"${dc.tex}$, the gradient by the cell state ${state.tex}$, through "
                           rf"$h' = o \odot \tanh(c')$: ${upstream.tex} \odot o \odot (1 - \tanh^2(c'))$"))
        d_c = dc.base
    p = free[0]
    gradient = sp.S.Zero
    if c_prev is wrt:
        gradient += d_c[p] * entry(gates["f"], (p,))
    readers = [("hx", cell.weight_hh, "h", m), ("input", cell.weight_ih, "x", cell.n)]
    if any(slots[slot] is wrt for slot, *_ in readers):
        i_, f_, g_, o_ = (entry(gates[letter], (k,)) for letter in "ifgo")
        local = {"i": d_c[k] * g_ * i_ * (1 - i_),
                 "f": d_c[k] * entry(c_prev, (k,)) * f_ * (1 - f_) if c_prev is not None else None,
                 "g": d_c[k] * i_ * (1 - g_ ** 2),
                 "o": entry(upstream, (k,)) * sp.tanh(entry(state, (k,))) * o_ * (1 - o_)
                 if layer.output == "h" else None}
        deltas = {}
        for gate, (letter, _, why) in enumerate(GATES):
            if local[letter] is None:
                continue
            d = Tensor(free_name((f"delta_{letter}", f"da_{letter}"), taken), (m,))
            named.append(Named(d, (k,), local[letter], rf"${d.tex}$, the gradient at the {why}'s pre-activation"))
            deltas[letter] = (gate, d, why)
        for slot, weight, side, size in readers:
            if slots[slot] is not wrt:
                continue
            for letter, (gate, d, why) in deltas.items():
                block = Tensor(free_name((f"W{side}_{letter}", f"W{side}_{letter}_"), taken), (m, size))
                q = fresh_index(size, taken | {k.name}, ("q", "j", "r"))
                named.append(Named(block, (k, q), entry(weight, (gate * m + k, q)),
                                   rf"${block.tex}$, the {why}'s rows of ${weight.tex}$ (rows "
                                   rf"${sp.latex(gate * m)}$ to ${sp.latex((gate + 1) * m - 1)}$, counted from 0)"))
                gradient += sp.Sum(block.base[k, p] * d.base[k], (k, 0, m - 1))
    return BackwardForm(tuple(named), gradient)


INPUTS = ("input", "hx", "cx", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
register(LayerKind("lstm_cell", lstm_cell, INPUTS, options=("output",), choices={"output": ("h", "c")},
                   backward_form=_backward_form,
                   torch=TorchOp("torch.nn.LSTMCell", _torch_lstm_cell)),
         LayerKind("lstm", lstm, INPUTS, options=("output",), choices={"output": ("h", "c")},
                   torch=TorchOp("torch.nn.LSTM", _torch_lstm)))
