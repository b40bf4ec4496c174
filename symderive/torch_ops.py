"""The PyTorch counterpart of every layer kind, for cross-checking derived results.

``TORCH_OPS`` maps a layer's ``kind`` (``conv1d``, ``avg_pool2d``, ``softmax``,
``element formula``, ...) to a ``TorchOp``: how to compute that layer's output
with ``torch`` from its inputs' outputs. A new layer kind is one new entry.

An entry with ``counterpart=False`` has no PyTorch operation: the layer is then
computed from its own SymPy formula (written out with torch arithmetic, so that
autograd still runs through it), and every report that used it says so. A
layer kind with no entry at all is treated the same way, and named.

torch is imported lazily, inside the functions: importing this module never
needs it.

Each op is called as ``op.compute(layer, get, num)``: ``get(node)`` is the torch
tensor of an input node (a declared tensor or another layer), ``num(v)`` turns a
size or hyperparameter (a number or a size symbol) into a Python ``int``.
"""
from dataclasses import dataclass

import sympy as sp

from .tensors import flat_positions


@dataclass(frozen=True)
class TorchOp:
    torch_name: str           # the PyTorch operation, as a report names it
    compute: object           # (layer, get, num) -> torch tensor
    counterpart: bool = True  # False: computed from the layer's SymPy formula, no PyTorch op


def _torch():
    import torch
    return torch


def _F():
    import torch.nn.functional as F
    return F


def _conv(layer, get, num):
    F = _F()
    fn = F.conv1d if layer.dims == 1 else F.conv2d
    x, w = get(layer.x), get(layer.weight)
    b = get(layer.bias) if layer.bias is not None else None
    options = dict(stride=tuple(num(v) for v in layer.stride), padding=tuple(num(v) for v in layer.padding),
                   dilation=tuple(num(v) for v in layer.dilation))
    if not layer.channels:       # one channel: x (L,) or (H, W), kernel (K,) or (KH, KW)
        return fn(x.unsqueeze(0), w[None, None], None, **options)[0]
    return fn(x, w, b, **options)


def _pool(layer, get, num):
    F = _F()
    x = get(layer.x)
    single = x.dim() == layer.dims           # no channel axis: add one for torch
    if single:
        x = x.unsqueeze(0)
    kernel, stride = tuple(num(v) for v in layer.kernel), tuple(num(v) for v in layer.stride)
    padding = tuple(num(v) for v in layer.padding)
    if layer.mode == "avg":
        fn = F.avg_pool1d if layer.dims == 1 else F.avg_pool2d
        y = fn(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True)
    else:
        fn = F.max_pool1d if layer.dims == 1 else F.max_pool2d
        y = fn(x, kernel, stride, padding)
    return y[0] if single else y


def _elementwise(function):
    def compute(layer, get, num):
        return getattr(_torch(), function)(get(layer.x))
    return compute


def _softmax(layer, get, num):
    return _torch().softmax(get(layer.z), dim=-1)


def _linear(layer, get, num):
    return _F().linear(get(layer.x), get(layer.weight),
                       get(layer.bias) if layer.bias is not None else None)


def _cross_entropy(layer, get, num):
    # Soft targets: F.cross_entropy with a probability target of the input's shape,
    # -sum_i p[i] log_softmax(z)[i] (targets need not sum to 1).
    return _F().cross_entropy(get(layer.prediction), get(layer.target))


def _mse(layer, get, num):
    return _F().mse_loss(get(layer.prediction), get(layer.target), reduction="mean")


def _sum_of_squares(layer, get, num):
    y = get(layer.prediction)
    t = get(layer.target) if layer.target is not None else _torch().zeros_like(y)
    return _F().mse_loss(y, t, reduction="sum")


def from_formula(layer, get, num):
    """A layer with no PyTorch counterpart, from its SymPy definition entry by entry.

    Sizes are replaced by the numbers ``num`` gives, sums are written out, and
    entries of the inputs are read from ``get`` (zero outside their range).
    """
    torch = _torch()
    inputs = {node.name: node for node in layer.inputs}
    shape = tuple(num(n) for n in layer.shape)
    sizes = {s: num(s) for n in _size_values(layer) for s in sp.sympify(n).free_symbols}

    def lookup(atom):
        if isinstance(atom, sp.Indexed):
            node = inputs.get(atom.base.label.name)
            if node is None:
                raise VerifyError(f"layer '{layer.name}': its formula names '{atom.base.label}', "
                                  "which is not one of its inputs")
            value = get(node)
            idx = tuple(int(i) for i in atom.indices)
            if not all(0 <= i < n for i, n in zip(idx, value.shape)):
                return torch.zeros((), dtype=torch.float64)
            return value[idx]
        node = inputs.get(atom.name)
        if node is None:
            raise VerifyError(f"layer '{layer.name}': cannot evaluate the symbol '{atom}'")
        return get(node)

    entries = [to_torch(layer.definition(tuple(sp.Integer(i) for i in pos)), lookup, sizes)
               for pos in flat_positions(shape)]
    if not shape:
        return entries[0]
    return torch.stack(entries).reshape(shape)


def _size_values(layer):
    values = list(layer.shape)
    for node in layer.inputs:
        values += list(node.shape)
    for attr in ("stride", "padding", "dilation", "kernel"):
        values += list(getattr(layer, attr, ()))
    return values


#: layer kind -> its PyTorch counterpart. One entry per layer kind.
TORCH_OPS = {
    "conv1d": TorchOp("torch.nn.functional.conv1d", _conv),
    "conv2d": TorchOp("torch.nn.functional.conv2d", _conv),
    "avg_pool1d": TorchOp("torch.nn.functional.avg_pool1d", _pool),
    "avg_pool2d": TorchOp("torch.nn.functional.avg_pool2d", _pool),
    "max_pool1d": TorchOp("torch.nn.functional.max_pool1d", _pool),
    "max_pool2d": TorchOp("torch.nn.functional.max_pool2d", _pool),
    "sigmoid": TorchOp("torch.sigmoid", _elementwise("sigmoid")),
    "tanh": TorchOp("torch.tanh", _elementwise("tanh")),
    "relu": TorchOp("torch.relu", _elementwise("relu")),
    "softmax": TorchOp("torch.softmax", _softmax),
    "linear": TorchOp("torch.nn.functional.linear", _linear),
    "cross_entropy": TorchOp("torch.nn.functional.cross_entropy (probability targets)", _cross_entropy),
    "mse": TorchOp("torch.nn.functional.mse_loss", _mse),
    "sum_of_squares": TorchOp("torch.nn.functional.mse_loss(reduction='sum')", _sum_of_squares),
    # Written in the problem file as an index formula: PyTorch has nothing to compare it with.
    "element formula": TorchOp("its SymPy formula", from_formula, counterpart=False),
}

#: Used for a layer kind that has no entry above (named in the report).
FORMULA_FALLBACK = TorchOp("its SymPy formula", from_formula, counterpart=False)


def op_for(layer):
    """The ``TorchOp`` of a layer, and whether it came from ``TORCH_OPS`` (else the fallback)."""
    op = TORCH_OPS.get(layer.kind)
    return (op, True) if op is not None else (FORMULA_FALLBACK, False)


class VerifyError(Exception):
    """A cross-check could not be carried out (not a disagreement)."""


# ---------------------------------------------------------------------------------------------
# Layer stacks (``network:`` of a question, network.py): PyTorch's own modules
# ---------------------------------------------------------------------------------------------
def _net_conv(layer, num, bias):
    nn = _torch().nn
    cls = nn.Conv1d if layer.dims == 1 else nn.Conv2d
    return cls(num(layer.in_channels), num(layer.out_channels), tuple(num(k) for k in layer.kernel),
               stride=tuple(num(v) for v in layer.stride), padding=tuple(num(v) for v in layer.padding),
               dilation=tuple(num(v) for v in layer.dilation), bias=layer.bias if bias is None else bias,
               dtype=_torch().float64)


def _net_pool(layer, num, bias):
    nn = _torch().nn
    cls = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d,
           ("avg", 2): nn.AvgPool2d}[(layer.mode, layer.dims)]
    return cls(tuple(num(k) for k in layer.kernel), stride=tuple(num(v) for v in layer.stride),
               padding=tuple(num(v) for v in layer.padding))


def _net_linear(layer, num, bias):
    return _torch().nn.Linear(num(layer.in_features), num(layer.out_features),
                              bias=layer.bias if bias is None else bias, dtype=_torch().float64)


def _net_batchnorm(layer, num, bias):
    nn = _torch().nn
    cls = nn.BatchNorm2d if layer.dims == 2 else nn.BatchNorm1d
    return cls(num(layer.num_features), affine=layer.affine, dtype=_torch().float64)


def _net_module(name):
    def build(layer, num, bias):
        nn = _torch().nn
        return nn.Softmax(dim=1) if name == "Softmax" else getattr(nn, name)()
    return build


def _net_residual(layer, num, bias):
    torch = _torch()

    class Residual(torch.nn.Module):
        """y = F(x) + x: the block's layers, and an identity skip."""
        def __init__(self, inner):
            super().__init__()
            self.inner = torch.nn.Sequential(*inner)

        def forward(self, x):
            return self.inner(x) + x

    return Residual([network_module(inner, num, bias) for inner in layer.layers])


#: network layer kind (PyTorch's class names, network.py) -> the torch.nn module. One entry per kind.
NETWORK_OPS = {
    "Conv1d": TorchOp("torch.nn.Conv1d", _net_conv),
    "Conv2d": TorchOp("torch.nn.Conv2d", _net_conv),
    "MaxPool1d": TorchOp("torch.nn.MaxPool1d", _net_pool),
    "MaxPool2d": TorchOp("torch.nn.MaxPool2d", _net_pool),
    "AvgPool1d": TorchOp("torch.nn.AvgPool1d", _net_pool),
    "AvgPool2d": TorchOp("torch.nn.AvgPool2d", _net_pool),
    "Linear": TorchOp("torch.nn.Linear", _net_linear),
    "BatchNorm1d": TorchOp("torch.nn.BatchNorm1d", _net_batchnorm),
    "BatchNorm2d": TorchOp("torch.nn.BatchNorm2d", _net_batchnorm),
    "ReLU": TorchOp("torch.nn.ReLU", _net_module("ReLU")),
    "Tanh": TorchOp("torch.nn.Tanh", _net_module("Tanh")),
    "Sigmoid": TorchOp("torch.nn.Sigmoid", _net_module("Sigmoid")),
    "Identity": TorchOp("torch.nn.Identity", _net_module("Identity")),
    "Softmax": TorchOp("torch.nn.Softmax(dim=1)", _net_module("Softmax")),
    "Flatten": TorchOp("torch.nn.Flatten", _net_module("Flatten")),
    "Residual": TorchOp("an identity skip around torch.nn.Sequential", _net_residual),
}


def network_module(layer, num, bias=None, found=None):
    """The torch.nn module of one network layer (batch-first, channels-first input). ``bias``
    overrides the layer's own bias flag (for counting with or without biases); ``found``
    collects name -> module for the layer and the layers inside it."""
    op = NETWORK_OPS.get(layer.kind)
    if op is None:
        raise VerifyError(f"network layer kind '{layer.kind}' has no entry in symderive/torch_ops.py "
                          "(NETWORK_OPS)")
    module = op.compute(layer, num, bias)
    if found is not None:
        found[layer.name] = module
        for inner, sub in zip(getattr(layer, "layers", ()), getattr(module, "inner", ())):
            found[inner.name] = sub
    return module


def linear_with_weights(x, W, B=None, bias_node=False):
    """A numeric network's Linear layer with given weights: W x + B (PyTorch's layout), or with
    ``bias_node`` (W is (1 + in) × out, biases in its first row) Wᵀ [1; x]."""
    F = _F()
    if bias_node:
        return F.linear(x, W[1:].T, W[0])
    return F.linear(x, W, B)


# ---------------------------------------------------------------------------------------------
# SymPy expressions evaluated numerically: with torch ops (autograd runs through them) for the
# torch side, with NumPy float64 for the engine's side. Sums are iterated, never rewritten.
# ---------------------------------------------------------------------------------------------
class _Numbers:
    """The operations ``evaluate`` needs, on one kind of number."""

    def __init__(self, const, functions, heaviside, maximum, minimum, power):
        self.const, self.functions, self.heaviside = const, functions, heaviside
        self.maximum, self.minimum, self.power = maximum, minimum, power


def _float_numbers():
    import numpy as np
    from .functions import relu, sigmoid
    return _Numbers(
        np.float64,
        {sp.exp: np.exp, sp.log: np.log, sp.tanh: np.tanh, sigmoid: lambda v: 1 / (1 + np.exp(-v)),
         relu: lambda v: np.maximum(v, 0.0), sp.Abs: np.abs, sp.floor: np.floor, sp.ceiling: np.ceil},
        lambda v, at_zero: np.heaviside(v, at_zero), np.maximum, np.minimum, np.power)


def _torch_numbers():
    torch = _torch()
    from .functions import relu, sigmoid

    def const(v):
        return torch.tensor(float(v), dtype=torch.float64)
    return _Numbers(
        const,
        {sp.exp: torch.exp, sp.log: torch.log, sp.tanh: torch.tanh, sigmoid: torch.sigmoid, relu: torch.relu,
         sp.Abs: torch.abs, sp.floor: torch.floor, sp.ceiling: torch.ceil},
        lambda v, at_zero: torch.heaviside(v, const(at_zero)), torch.maximum, torch.minimum,
        lambda b, e: b ** e if not isinstance(e, torch.Tensor) else torch.pow(b, e))


def to_torch(expr, lookup, env=None):
    """Evaluate a SymPy expression in float64 torch (see ``evaluate``); autograd runs through it."""
    return evaluate(expr, lookup, env, _torch_numbers())


def to_float(expr, lookup, env=None):
    """Evaluate a SymPy expression in NumPy float64 (see ``evaluate``); no torch involved.

    >>> import sympy as sp
    >>> from symderive.indices import make_index
    >>> x, j = sp.IndexedBase('x'), make_index('j', 3)
    >>> float(to_float(sp.Sum(x[j] ** 2, (j, 0, 2)), lambda a: float(a.indices[0])))
    5.0
    """
    return evaluate(expr, lookup, env, _float_numbers())


def integer_value(expr, env):
    """An integer index expression at ``env``: indices by name (str keys), sizes by their symbol
    (``Symbol`` keys), so that a summation index k and a size k never mix."""
    e = sp.sympify(expr)
    if e.is_Integer:
        return int(e)
    subs = {a: sp.Integer(env[a.name]) for a in e.atoms(sp.Idx) if a.name in env}
    for a in e.atoms(sp.Symbol):
        if a in env:
            subs[a] = sp.Integer(env[a])
        elif a.is_integer and not a.is_positive and a.name in env:   # an index as a plain symbol; sizes
            subs.setdefault(a, sp.Integer(env[a.name]))              # are positive and keyed by symbol
    value = e.xreplace(subs)
    if not value.is_Integer:
        raise VerifyError(f"the index expression {e} is not a whole number here ({value})")
    return int(value)


def evaluate(expr, lookup, env, numbers):
    """The value of ``expr`` with indices (by name) and sizes (by symbol) from ``env``.

    ``lookup(atom)`` gives the value of a tensor entry (an ``Indexed`` whose subscripts are
    already numbers) or of a scalar tensor (a ``Symbol``). Finite sums are iterated with their
    index bound in ``env``; range conditions (``Piecewise``, ``KroneckerDelta``) are decided on
    the index values.
    """
    env = dict(env or {})

    def integer(e):
        return integer_value(e, env)

    def decide(cond):
        if cond in (sp.true, sp.false):
            return bool(cond)
        if isinstance(cond, sp.And):
            return all(decide(c) for c in cond.args)
        if isinstance(cond, sp.Or):
            return any(decide(c) for c in cond.args)
        if isinstance(cond, sp.Not):
            return not decide(cond.args[0])
        if isinstance(cond, sp.core.relational.Relational):
            left, right = ev(cond.lhs), ev(cond.rhs)
            return bool({"==": left == right, "!=": left != right, ">=": left >= right, ">": left > right,
                         "<=": left <= right, "<": left < right}[cond.rel_op])
        raise VerifyError(f"cannot decide the condition {cond}")

    def ev(e):
        if isinstance(e, sp.Indexed):
            atom = e.base[tuple(sp.Integer(integer(i)) for i in e.indices)]
            return _number(lookup(atom), numbers)
        if isinstance(e, sp.Symbol) and e in env:
            return numbers.const(env[e])                       # a size
        if isinstance(e, sp.Idx) or (isinstance(e, sp.Symbol) and e.name in env and e.is_integer
                                     and not e.is_positive):
            if e.name not in env:
                raise VerifyError(f"the index {e} has no value here")
            return numbers.const(env[e.name])
        if isinstance(e, sp.Symbol):
            return _number(lookup(e), numbers)
        if e.is_Number or isinstance(e, sp.NumberSymbol):
            return numbers.const(float(e))
        if isinstance(e, sp.Add):
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = out + ev(a)
            return out
        if isinstance(e, sp.Mul):
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = out * ev(a)
            return out
        if isinstance(e, sp.Pow):
            base, exponent = e.args
            return numbers.power(ev(base), float(exponent) if exponent.is_Number else ev(exponent))
        if isinstance(e, sp.Sum):
            return _iterate(e)
        if type(e) in numbers.functions and len(e.args) == 1:
            return numbers.functions[type(e)](ev(e.args[0]))
        if isinstance(e, (sp.Max, sp.Min)):
            fn = numbers.maximum if isinstance(e, sp.Max) else numbers.minimum
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = fn(out, ev(a))
            return out
        if isinstance(e, sp.Heaviside):
            return numbers.heaviside(ev(e.args[0]), float(e.args[1]) if len(e.args) > 1 else 0.5)
        if isinstance(e, sp.Piecewise):
            for value, cond in e.args:
                if decide(cond):
                    return ev(value)
            return numbers.const(0.0)
        if isinstance(e, sp.KroneckerDelta):
            return numbers.const(1.0 if integer(e.args[0]) == integer(e.args[1]) else 0.0)
        raise VerifyError(f"cannot evaluate {type(e).__name__} ({e}) numerically")

    def _iterate(e):
        # Outermost sum first: the bounds of an inner sum may name an outer index.
        body, (var, lo, hi), rest = e.function, e.limits[-1], e.limits[:-1]
        inner = sp.Sum(body, *rest) if rest else body
        saved = env.get(var.name)
        out = numbers.const(0.0)
        for v in range(integer(lo), integer(hi) + 1):
            env[var.name] = v
            out = out + ev(inner)
        if saved is None:
            env.pop(var.name, None)
        else:
            env[var.name] = saved
        return out

    return ev(sp.sympify(expr))


def _number(value, numbers):
    return numbers.const(value) if isinstance(value, (int, float)) else value
