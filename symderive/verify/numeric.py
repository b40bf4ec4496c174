"""Helpers shared by the cross-checks of numeric networks (forward_backward, gradient_step):
the same pass in torch, with the given values, after backward()."""
import numpy as np
import sympy as sp

from ..layers import torch_module
from ..torch_ops import VerifyError, to_torch


def numeric_pass(job):
    """(NumericNetwork, torch output of each layer, the loss, the weights by name) after backward()."""
    import torch
    from ..numeric_network import NumericNetwork
    from ..layers.linear import linear_with_weights
    network = NumericNetwork(job.ctx)

    def leaf(value, vector):
        if isinstance(value, sp.MatrixBase):
            array = np.array([[float(sp.N(v, 30)) for v in value.row(r)] for r in range(value.rows)])
            array = array.reshape(-1) if vector else array
        else:
            array = np.array(float(sp.N(value, 30)))
        return torch.tensor(array, dtype=torch.float64, requires_grad=True)

    weights = {layer.weight.name for layer in network.linear_layers()}
    params = {name: leaf(v, name not in weights and isinstance(v, sp.MatrixBase) and v.cols == 1)
              for name, v in network.weights.items()}
    x = leaf(network.x0, True)
    outputs = {network.input.name: x}
    for layer in network.net.layers:
        rule = getattr(network.rule(layer), "torch", None)
        if layer.kind == "Linear":
            bias = params[layer.bias_tensor.name] if layer.bias_tensor is not None else None
            x = linear_with_weights(x, params[layer.weight.name], bias, network.bias_node)
        elif rule is not None:
            x = rule(layer, x, params)
        else:
            x = torch_module(layer, int)(x.unsqueeze(0))[0]
        x.retain_grad()
        outputs[layer.name] = x
    last = network.net.layers[-1].name

    def lookup(atom):
        if isinstance(atom, sp.Indexed) and atom.base.label.name == last:
            return outputs[last][tuple(int(i) for i in atom.indices)]
        raise VerifyError(f"the loss names {atom}, which has no value")

    loss = to_torch(network.loss_expr, lookup)
    loss.backward()
    return network, outputs, loss, params


def floats(value):
    """Floats of an exact answer (a number or a matrix, row-major)."""
    if isinstance(value, sp.MatrixBase):
        return [float(sp.N(v, 30)) for v in value]
    return [float(sp.N(value, 30))]
