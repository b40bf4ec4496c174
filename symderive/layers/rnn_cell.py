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


def _backward_form(layer, wrt, upstream, free, taken):
    """One step's backward pass as CS231n (rnn_step_backward) and CS224n write it, with g = ∂L/∂h':

        δ = g ⊙ (1 − h'²)  (g ⊙ H(a) for ReLU),   ∂L/∂W_hh = δ hᵀ,   ∂L/∂W_ih = δ xᵀ,
        ∂L/∂h = W_hhᵀ δ,   ∂L/∂x = W_ihᵀ δ,   ∂L/∂b = δ

    on a batch (rows n): δᵀ h, δᵀ x, δ W_hh, δ W_ih and Σ_n δ_n. A tensor in several places collects
    one term per place. Not for the steps of an unrolled ``rnn`` (``backprop`` gives their δ)."""
    from ..course_forms import BackwardForm, Named, free_name
    from ..indices import fresh_index
    from ..tensors import Tensor
    cell = layer.cell
    if cell.step is not None or layer.prefix or len(cell.lead) > 1:
        return None
    slots = {"weight_hh": cell.weight_hh, "weight_ih": cell.weight_ih, "hx": layer.state, "input": cell.x,
             "bias_ih": cell.bias_ih, "bias_hh": cell.bias_hh}
    if not any(t is wrt for t in slots.values()):
        return None
    taken = set(taken) | {i.name for i in free}
    lead = tuple(fresh_index(n, taken, ("n", "i", "r")) for n in cell.lead)
    taken |= {i.name for i in lead}
    i = fresh_index(cell.m, taken, ("i", "j", "k", "u"))
    taken.add(i.name)
    delta = Tensor(free_name(("delta", "da"), taken), cell.lead + (cell.m,))
    at = lead + (i,)
    slope = 1 - entry(layer, at) ** 2 if layer.nonlinearity == "tanh" else sp.Heaviside(entry(layer.preactivation, at))
    named = (Named(delta, at, entry(upstream, at) * slope,
                   rf"${delta.tex}$, the gradient by the pre-activation $a$ "
                   + (rf"(CS231n's da): ${upstream.tex} \odot (1 - {layer.tex}^2)$, since $\tanh' = 1 - \tanh^2$"
                      if layer.nonlinearity == "tanh" else
                      rf"(CS231n's da): ${upstream.tex} \odot \mathbb{{1}}[a > 0]$")),)

    def over_batch(body):
        """Σ_n body over the batch axis (as it is without one)."""
        return sp.Sum(body, (lead[0], 0, cell.lead[0] - 1)) if lead else body

    gradient = sp.S.Zero
    for slot, tensor in slots.items():
        if tensor is not wrt:
            continue
        if slot in ("weight_hh", "weight_ih"):             # δ_p (h or x)_q, summed over the batch
            p, q = free
            other = layer.state if slot == "weight_hh" else cell.x
            if other is None:
                continue
            gradient += over_batch(delta.base[lead + (p,)] * entry(other, lead + (q,)))
        elif slot in ("hx", "input"):                      # Σ_i W_{i,q} δ_i, row by row
            weight = cell.weight_hh if slot == "hx" else cell.weight_ih
            q = free[-1]
            row = tuple(free[:-1])
            gradient += sp.Sum(entry(weight, (i, q)) * delta.base[row + (i,)], (i, 0, cell.m - 1))
        else:                                              # a bias: δ, summed over the batch
            gradient += over_batch(delta.base[lead + (free[0],)])
    return BackwardForm(named, gradient)


INPUTS = ("input", "hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
register(LayerKind("rnn_cell", RNNCell, INPUTS, options=("nonlinearity",), choices={"nonlinearity": ("tanh", "relu")},
                   torch=TorchOp("torch.nn.RNNCell", _torch_rnn_cell), backward_form=_backward_form),
         LayerKind("rnn", rnn, INPUTS, options=("nonlinearity",), choices={"nonlinearity": ("tanh", "relu")},
                   torch=TorchOp("torch.nn.RNN", _torch_rnn)))
