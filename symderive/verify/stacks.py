"""Helpers shared by the cross-checks of layer stacks (``network:``: shape_table,
parameter_count, same_padding, receptive_field): the sizes a stack names and its torch.nn
forward pass, in the engine's layout."""
import sympy as sp

from ..layers import torch_module
from .job import as_int


def net_symbols(network):
    found = set()
    values = list(network.shape.dims()) if network.shape is not None and network.shape.known else []
    for top in network.layers:
        for layer in top.flatten():
            for v in vars(layer).values():
                for item in (v if isinstance(v, tuple) else (v,)):
                    if isinstance(item, sp.Basic):
                        values.append(item)
    for v in values:
        found |= {s for s in sp.sympify(v).free_symbols if s.is_integer}
    return sorted(found, key=lambda s: s.name)


def net_input_shape(shape, sizes):
    """The torch shape of a network input: batch first (1 when the layout has no N), channels next."""
    batch = as_int(shape.batch, sizes) if shape.batch is not None else 1
    spatial = tuple(as_int(n, sizes) for n in shape.spatial or ())
    return (batch, as_int(shape.channels, sizes)) + spatial


def in_layout(torch_shape, layout):
    """A batch-first, channels-first torch shape written in the engine's layout letters."""
    spatial = dict(zip("HW" if len(torch_shape) == 4 else "L", torch_shape[2:]))
    values = {"N": torch_shape[0], "C": torch_shape[1], **spatial}
    return tuple(values[letter] for letter in layout)


def run_network(job, network, sizes):
    """The torch output of each top-level layer (eval mode, no grad) at the given sizes."""
    import torch
    num = lambda v: as_int(v, sizes)  # noqa: E731
    x = torch.tensor(job.random(net_input_shape(network.shape, sizes)), dtype=torch.float64)
    outputs = []
    with torch.no_grad():
        for layer in network.layers:
            x = torch_module(layer, num).eval()(x)
            outputs.append(x)
    return outputs
