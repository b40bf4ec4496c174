"""Layers written in a problem file as an index formula (``z[i]: Sum(W[i, j]*x[j], ...)``).

The layer itself is ``declarations.ElementLayer``; what registers here is that PyTorch has
nothing to compare it with: ``--verify`` computes it from its own SymPy formula (with torch
arithmetic, so that autograd still runs through it) and every report that used it says so.
A layer whose kind registers no torch op is computed the same way (``registry.op_for``).
"""
import sympy as sp

from ..errors import VerifyError
from ..tensors import flat_positions
from ..torch_ops import to_torch
from .registry import LayerKind, TorchOp, register


def from_formula(layer, get, num):
    """A layer with no PyTorch counterpart, from its SymPy definition entry by entry.

    Sizes are replaced by the numbers ``num`` gives, sums are written out, and
    entries of the inputs are read from ``get`` (zero outside their range).
    """
    import torch
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


register(LayerKind("element formula", torch=TorchOp("its SymPy formula", from_formula, counterpart=False)))
