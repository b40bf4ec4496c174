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


INPUTS = ("input", "hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
register(LayerKind("gru_cell", gru_cell, INPUTS, torch=TorchOp("torch.nn.GRUCell", _torch_gru_cell)),
         LayerKind("gru", gru, INPUTS, torch=TorchOp("torch.nn.GRU", _torch_gru)))
