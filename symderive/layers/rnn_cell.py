"""The Elman cell as PyTorch computes it: ``rnn_cell`` (one step, ``torch.nn.RNNCell``) and
``rnn`` (unrolled over the T rows of its input, ``torch.nn.RNN`` with one layer):

    h' = f(W_ih x + b_ih + W_hh h + b_hh),   f = tanh (``nonlinearity='tanh'``) or ReLU.
"""
import sympy as sp

from ..errors import ShapeError
from ..functions import relu

from .base import Layer, entry, mark_inner
from .cells import CellTensors, Gate, Names, Sequence, functional_module, has_bias, module_params, unroll
from .registry import LayerKind, TorchOp, register

FUNCTIONS = {"tanh": sp.tanh, "relu": relu}


class RNNCell(Layer):
    """h'[…, i] = f(a[…, i]), a[…, i] = Σ_j W_ih[i, j] x[…, j] + b_ih[i] + Σ_k W_hh[i, k] h[…, k] + b_hh[i].

    >>> from symderive.tensors import Tensor
    >>> x, h, A, B = Tensor('x', (2,)), Tensor('h', (3,)), Tensor('A', (3, 2)), Tensor('B', (3, 3))
    >>> y = RNNCell('y', x, h, A, B)
    >>> y.definition((0,)), y.preactivation.definition((0,))
    (tanh(a[0]), Sum(A[0, j]*x[j], (j, 0, 1)) + Sum(B[0, k]*h[k], (k, 0, 2)))
    """

    kind = "rnn_cell"

    def __init__(self, name, input, hx=None, weight_ih=None, weight_hh=None, bias_ih=None, bias_hh=None,
                 nonlinearity="tanh", cell=None, state=None, prefix=(), preactivation=None):
        if cell is None:
            if weight_ih is None or weight_hh is None:
                raise ShapeErrorMissing("rnn_cell")
            cell = CellTensors("rnn_cell", 1, input, hx, weight_ih, weight_hh, bias_ih, bias_hh)
            state, prefix = hx, (cell.state_prefix(hx) if hx is not None else ())
            preactivation, single = Names(name, cell.leaves)("a"), True
        else:
            single = False
        self.cell, self.state, self.prefix, self.nonlinearity = cell, state, prefix, nonlinearity
        # The pre-activation a = W_ih x + b_ih + W_hh h + b_hh is a layer of its own, so that
        # backpropagation through time reads δ^a = δ^h ⊙ f'(a) and ∂L/∂W_hh = Σ_t δ^{a_t} h_{t−1}ᵀ.
        self.preactivation = Gate(preactivation, cell, 0, lambda a: a, state, prefix,
                                  why="RNN pre-activation"
                                  + (f", step {cell.step + 1}" if cell.step is not None else ""))
        super().__init__(name, [self.preactivation], cell.lead + (cell.m,))
        if single:
            mark_inner(self, cell.leaves)

    def describe(self):
        step = f", step {self.cell.step + 1}" if self.cell.step is not None else ""
        return f"RNN cell ({self.nonlinearity}){step}"

    def definition(self, idx, avoid=()):
        return FUNCTIONS[self.nonlinearity](entry(self.preactivation, idx))


def ShapeErrorMissing(kind):
    return ShapeError(f"{kind}: needs input, hx, weight_ih and weight_hh (in PyTorch's order)")


def rnn(name, input, hx=None, weight_ih=None, weight_hh=None, bias_ih=None, bias_hh=None, nonlinearity="tanh"):
    """The sequence of states h_1..h_T of the cell unrolled over the rows of ``input``."""
    if weight_ih is None or weight_hh is None:
        raise ShapeErrorMissing("rnn")
    cell = CellTensors("rnn", 1, input, hx, weight_ih, weight_hh, bias_ih, bias_hh, sequence=True)
    steps = unroll(name, cell, hx, lambda names, at, state, prefix, t: RNNCell(
        names(f"h{t + 1}"), input, cell=at, state=state, prefix=prefix, nonlinearity=nonlinearity,
        preactivation=names(f"a{t + 1}")))
    layer = Sequence(name, "rnn", steps, f"RNN ({nonlinearity}) unrolled over {len(steps)} steps")
    layer.cell, layer.hx, layer.nonlinearity = cell, hx, nonlinearity
    return mark_inner(layer, cell.leaves)


def _torch_rnn_cell(layer, get, num):
    import torch
    cell = layer.cell
    x = get(cell.x)
    x = x[cell.step] if cell.step is not None else x
    h = None
    if layer.state is not None:
        h = get(layer.state)
        h = h[0] if layer.prefix else h
    module = torch.nn.RNNCell(num(cell.n), num(cell.m), bias=has_bias(cell), nonlinearity=layer.nonlinearity,
                              dtype=torch.float64)
    return functional_module(module, module_params(cell, get), x, h)


def _torch_rnn(layer, get, num):
    import torch
    cell = layer.cell
    module = torch.nn.RNN(num(cell.n), num(cell.m), num_layers=1, nonlinearity=layer.nonlinearity,
                          bias=has_bias(cell), dtype=torch.float64)
    args = (get(cell.x),)
    if layer.hx is not None:
        h0 = get(layer.hx)
        args += (h0 if cell.state_prefix(layer.hx) else h0.unsqueeze(0),)
    return functional_module(module, module_params(cell, get, "_l0"), *args)[0]


INPUTS = ("input", "hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
register(LayerKind("rnn_cell", RNNCell, INPUTS, options=("nonlinearity",), choices={"nonlinearity": ("tanh", "relu")},
                   torch=TorchOp("torch.nn.RNNCell", _torch_rnn_cell)),
         LayerKind("rnn", rnn, INPUTS, options=("nonlinearity",), choices={"nonlinearity": ("tanh", "relu")},
                   torch=TorchOp("torch.nn.RNN", _torch_rnn)))
