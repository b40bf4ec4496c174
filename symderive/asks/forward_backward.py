"""ask: forward_backward — a numeric forward pass and backpropagation through a small fully
connected network with given weights: every layer's output, the loss, the gradient of the loss
by every layer's output (δ) and by every weight, exact and then as decimals."""
from ..answer import Kind, Result, Step
import sympy as sp

from ..latex import tex_name
from ..numeric_network import NumericNetwork, digits_option

KEYS = {"network", "digits"}


def passes(ctx):
    """(network, pass, steps), shared with gradient_step."""
    network = NumericNetwork(ctx)
    done = network.run(digits_option(ctx))
    steps = [Step(latex, why) for latex, why in done.forward_steps]
    steps.append(Step("", "backward pass: from the loss back to the first layer (chain rule)"))
    steps += [Step(latex, why) for latex, why in done.backward_steps]
    return network, done, steps


def result(network, label, value, latex_name):
    """A boxed 'name = exact ≈ decimal'; the value is exact with every abbreviation written out.
    Its key is the label: the name of the layer or parameter (or d<loss>/d<name>) it is the value of."""
    full = network.full(value)
    return Result(label, full, f"{latex_name} = {network.shown(value)}",
                  Kind.ENTRIES if isinstance(full, sp.MatrixBase) else Kind.VALUE, key=label)


def solve(ctx):
    network, done, steps = passes(ctx)
    loss = tex_name(network.loss_name)
    results = [result(network, layer.name, done.shown_values[layer.name], tex_name(layer.name))
               for layer in network.net.layers]
    results.append(result(network, network.loss_name, done.loss, loss))
    for layer in reversed(network.net.layers):
        if layer.name in done.grads:
            label = network.delta_label(layer)
            results.append(result(network, f"d{network.loss_name}/d{layer.name}", done.grads[layer.name],
                                  (f"{label} = " if label else "")
                                  + rf"\frac{{\partial {loss}}}{{\partial {tex_name(layer.name)}}}"))
    for name in parameter_order(network, done):
        results.append(result(network, f"d{network.loss_name}/d{name}", done.param_grads[name],
                              rf"\frac{{\partial {loss}}}{{\partial {tex_name(name)}}}"))
    if done.definitions:
        results.append(Result("where", ", ".join(f"{s} = {m}" for s, m in done.definitions), r",\quad ".join(
            rf"{tex_name(str(s))} = {network.shown(m)}" for s, m in done.definitions), Kind.TEXT))
    return ctx.answer(results, steps)


def parameter_order(network, done):
    """The parameters with gradients, in the order the layers use them."""
    order = [t.name for layer in network.linear_layers() for t in (layer.weight, layer.bias_tensor) if t]
    return [name for name in order if name in done.param_grads]
