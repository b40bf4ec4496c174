"""What the recurrent cells share (``rnn_cell``, ``lstm_cell``, ``gru_cell`` register the kinds).

A cell reads PyTorch's tensors: ``input`` x (n,) or with a batch axis (N, n), the state ``hx``
(m,) or (N, m), ``weight_ih`` (G·m, n), ``weight_hh`` (G·m, m) and the optional ``bias_ih``,
``bias_hh`` (G·m,), the G gates stacked by rows in torch's order. Each gate is a layer of its own
(σ or tanh of its rows of W_ih x + b_ih + W_hh h + b_hh), so a derivation names it and
backpropagation visits it once; the cell's output is written with the gates' names.

Unrolled over T steps (``rnn``, ``lstm``, ``gru``: x of shape (T, n) or (T, N, n), PyTorch's
``batch_first=False``), step t is a cell whose input is the row x[t − 1] and whose state is the
step before it; every step reads the same weights. The steps are layers h1, ..., hT, so a
derivative by W_hh is a sum over the steps that backpropagation builds one step at a time; the
layer itself is their sequence, PyTorch's ``output``: y[t − 1] = h_t. T must be a number.
"""
import sympy as sp

from ..errors import ShapeError
from ..indices import fresh_index
from .base import Layer, entry, taken_by


class CellTensors:
    """The tensors of one cell step, their shapes checked against PyTorch's, and the step's
    row of the input (``step`` is None for a single cell, else the 0-based time step)."""

    def __init__(self, kind, gates, x, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None, step=None,
                 cx=None, sequence=False):
        self.kind, self.gates, self.step, self.sequence = kind, gates, step, sequence
        self.x, self.hx, self.cx = x, hx, cx
        self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh = weight_ih, weight_hh, bias_ih, bias_hh
        ranks = (2, 3) if sequence else (1, 2)
        if x.rank not in ranks:
            raise ShapeError(f"{kind}: input {x.name} must have shape "
                             + ("(T, input_size) or (T, N, input_size)" if sequence else
                                "(input_size,) or (N, input_size)") + f", got rank {x.rank}")
        for w in (weight_ih, weight_hh):
            if w.rank != 2:
                raise ShapeError(f"{kind}: {w.name} must be a matrix, got rank {w.rank}")
        self.n, self.m = x.shape[-1], weight_hh.shape[1]
        self.lead = tuple(x.shape[1:-1]) if sequence else tuple(x.shape[:-1])     # () or (N,)
        rows = gates * self.m
        _same(kind, f"weight_hh {weight_hh.name} has {weight_hh.shape[0]} rows, but {gates} gate(s) × hidden "
                    f"size {self.m} is {rows}", weight_hh.shape[0], rows)
        _same(kind, f"weight_ih {weight_ih.name} has shape ({weight_ih.shape[0]}, {weight_ih.shape[1]}); "
                    f"expected ({rows}, {self.n}) for input size {self.n}", weight_ih.shape, (rows, self.n))
        for b in (bias_ih, bias_hh):
            if b is not None:
                _same(kind, f"bias {b.name} must have shape ({rows},), got {tuple(b.shape)}", b.shape, (rows,))
        for name, state in (("hx", hx), ("cx", cx)):
            if state is not None:
                self.state_prefix(state, name)

    def state_prefix(self, state, what="hx"):
        """() for a state of shape (…, m); (0,) for PyTorch's nn.RNN form (1, …, m) of h_0."""
        shape = tuple(state.shape)
        want = self.lead + (self.m,)
        if len(shape) == len(want) and _equal(shape, want):
            return ()
        if self.sequence and len(shape) == len(want) + 1 and shape[0] == 1 and _equal(shape[1:], want):
            return (0,)
        raise ShapeError(f"{self.kind}: {what} {state.name} must have shape ({', '.join(map(str, want))}), "
                         f"got ({', '.join(map(str, shape))})")

    def at_step(self, step):
        """The same tensors, reading row ``step`` (0-based) of a sequence input."""
        import copy
        out = copy.copy(self)
        out.step = step
        return out

    @property
    def leaves(self):
        return [t for t in (self.x, self.hx, self.cx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
                if t is not None]

    def x_entry(self, lead, j):
        return entry(self.x, ((self.step,) if self.step is not None else ()) + tuple(lead) + (j,))

    def affine(self, gate, idx, avoid, state, state_prefix=(), input_part=True, hidden_part=True):
        """Rows ``gate``·m + i of W_ih x + b_ih (``input_part``) and of W_hh h + b_hh (``hidden_part``),
        h = ``state`` (None: the zero state, whose bias still counts, as in PyTorch)."""
        lead, i = tuple(idx[:-1]), idx[-1]
        row = gate * self.m + i
        taken = taken_by(avoid, idx)
        total = sp.S.Zero
        if input_part:
            j = fresh_index(self.n, taken, ("j", "k", "l"))
            total += sp.Sum(entry(self.weight_ih, (row, j)) * self.x_entry(lead, j), (j, 0, self.n - 1))
            if self.bias_ih is not None:
                total += entry(self.bias_ih, (row,))
        if hidden_part:
            if state is not None:
                k = fresh_index(self.m, taken, ("k", "l", "j"))
                total += sp.Sum(entry(self.weight_hh, (row, k)) * entry(state, tuple(state_prefix) + lead + (k,)),
                                (k, 0, self.m - 1))
            if self.bias_hh is not None:
                total += entry(self.bias_hh, (row,))
        return total


def _equal(a, b):
    return len(a) == len(b) and all(sp.simplify(sp.sympify(x) - sp.sympify(y)) == 0 for x, y in zip(a, b))


def _same(kind, message, got, want):
    got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
    want = tuple(want) if isinstance(want, (tuple, list)) else (want,)
    if not _equal(got, want):
        raise ShapeError(f"{kind}: {message}")


class Gate(Layer):
    """One gate of a cell: f(rows ``gate``·m … of W_ih x + b_ih + W_hh h + b_hh), f = σ, tanh or ReLU."""

    def __init__(self, name, cell, gate, function, state, state_prefix=(), why=""):
        self.kind = f"{cell.kind} gate"
        self.cell, self.gate, self.function, self.state, self.state_prefix = cell, gate, function, state, state_prefix
        self.why = why
        inputs = cell.leaves if state is None else [state] + [t for t in cell.leaves if t is not cell.hx]
        super().__init__(name, inputs, cell.lead + (cell.m,))

    def describe(self):
        return self.why or self.kind

    def definition(self, idx, avoid=()):
        return self.function(self.cell.affine(self.gate, idx, avoid, self.state, self.state_prefix))


class Sequence(Layer):
    """PyTorch's ``output`` of an unrolled recurrence: y[t − 1, …] = h_t[…], t = 1..T."""

    def __init__(self, name, kind, steps, describe):
        self.kind, self.steps, self._describe = kind, list(steps), describe
        super().__init__(name, self.steps, (len(self.steps),) + tuple(self.steps[0].shape))

    def describe(self):
        return self._describe

    def definition(self, idx, avoid=()):
        t, rest = idx[0], tuple(idx[1:])
        if sp.sympify(t).is_Integer:
            return entry(self.steps[int(t)], rest) if 0 <= int(t) < len(self.steps) else sp.S.Zero
        return sp.Add(*[sp.KroneckerDelta(t, s) * entry(step, rest) for s, step in enumerate(self.steps)])


def unroll(name, cell, hx, step):
    """The steps h1..hT of a one-state cell: ``step(names, cell at t, state, its prefix, t)`` builds
    step t + 1 from the state before it (hx, then the step before)."""
    names = Names(name, cell.leaves)
    state, prefix, steps = hx, (cell.state_prefix(hx) if hx is not None else ()), []
    for t in range(sequence_length(cell.kind, cell.x)):
        state = step(names, cell.at_step(t), state, prefix, t)
        steps.append(state)
        prefix = ()
    return steps


def sequence_length(kind, x):
    """T, the first axis of a sequence input, as a number (unrolling needs one)."""
    steps = sp.sympify(x.shape[0])
    if not steps.is_Integer:
        raise ShapeError(f"{kind}: the sequence length {steps} (first axis of {x.name}) must be a number to "
                         f"unroll; for a symbolic length ask about one step ({kind}_cell)")
    if steps > 50:
        raise ShapeError(f"{kind}: {steps} steps is too many to unroll (at most 50)")
    return int(steps)


class Names:
    """Names for a layer's internal layers (gates, steps) that no input, size or the layer itself
    uses: ``i1``, ``c2``, ...; ``i1_y`` when ``i1`` is taken."""

    def __init__(self, layer_name, inputs):
        self.layer_name = layer_name
        self.taken = {layer_name}
        stack = list(inputs)
        while stack:
            node = stack.pop()
            if node.name in self.taken and node.name != layer_name:
                continue
            self.taken.add(node.name)
            self.taken |= {s.name for n in node.shape for s in sp.sympify(n).free_symbols}
            stack += list(getattr(node, "inputs", ()))

    def __call__(self, base):
        name = base
        if name in self.taken:
            name = f"{base}_{self.layer_name}"
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name


def torch_state(layer_state, prefix, get):
    """A state's torch tensor in the cell's form (…, m): PyTorch's nn.RNN form (1, …, m) squeezed."""
    value = get(layer_state)
    return value[0] if prefix else value


def functional_module(module, params, *args):
    """Call a torch.nn module with the question's tensors as its parameters, so that autograd
    reaches them (``torch.func.functional_call``)."""
    from torch.func import functional_call
    return functional_call(module, params, args)


def module_params(cell, get, suffix=""):
    """torch.nn's parameter names (``weight_ih``, ``bias_hh_l0``, ...) -> the question's tensors;
    a missing bias is a zero one (PyTorch's modules have both or neither)."""
    import torch
    w_ih, w_hh = get(cell.weight_ih), get(cell.weight_hh)
    params = {f"weight_ih{suffix}": w_ih, f"weight_hh{suffix}": w_hh}
    if cell.bias_ih is not None or cell.bias_hh is not None:
        zeros = torch.zeros(w_ih.shape[0], dtype=torch.float64)
        params[f"bias_ih{suffix}"] = get(cell.bias_ih) if cell.bias_ih is not None else zeros
        params[f"bias_hh{suffix}"] = get(cell.bias_hh) if cell.bias_hh is not None else zeros
    return params


def has_bias(cell):
    return cell.bias_ih is not None or cell.bias_hh is not None
