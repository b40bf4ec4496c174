"""ask: forward — the outputs of a network on given inputs, with no loss: a ``network:`` stack on
one input vector or a batch (a matrix, one sample per row, as PyTorch), or the layers named by
``of:`` (any kinds, any graph) at the declared values. Exact, with decimals."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..latex import tex_name
from ..numeric_graph import check_graph, graph_pass, graph_results
from ..numeric_network import NumericNetwork, digits_option

KEYS = {"network", "of", "digits"}
USES_VALUES = True



def solve(ctx):
    digits = digits_option(ctx)
    if ("network" in ctx.question.spec) == ("of" in ctx.question.spec):
        raise ExpressionError("ask 'forward' needs either 'network:' (a stack) or 'of:' (declared layers)",
                              ctx.question.line, None)
    if "of" in ctx.question.spec:
        graph, done = graph_pass(ctx, backward=False)
        results, steps = graph_results(ctx, graph, done, False, digits)
        return ctx.answer(results, steps)
    network = NumericNetwork(ctx, forward_only=True)
    done, outputs = network.run_forward(digits)
    steps = [Step(latex, why) for latex, why in done.forward_steps]
    results = [Result(layer.name, network.full(outputs[layer.name]),
                      f"{tex_name(layer.name)} = {network.shown(outputs[layer.name])}",
                      Kind.ENTRIES, key=layer.name) for layer in network.net.layers]
    if done.definitions:
        results.append(Result("where", ", ".join(f"{s} = {m}" for s, m in done.definitions), r",\quad ".join(
            rf"{tex_name(str(s))} = {network.shown(m)}" for s, m in done.definitions), Kind.TEXT))
    if network.input.rank == 2:
        steps.insert(0, Step("", f"{network.input.name} is a batch: one sample per row (N × in, as PyTorch); each "
                                 f"row goes through the network on its own, and each output has one row per sample"))
    return ctx.answer(results, steps)


def check(job):
    if "of" in job.question.spec:
        return check_graph(job, backward=False)
    import numpy as np
    import torch
    from ..layers import torch_module
    from ..layers.linear import linear_with_weights
    from ..verify.numeric import floats
    network = NumericNetwork(job.ctx, forward_only=True)
    job.random_inputs = False

    def tensor(value):
        return torch.tensor(np.array([[float(sp.N(v, 30)) for v in value.row(r)] for r in range(value.rows)]),
                            dtype=torch.float64)

    x = tensor(network.x0 if network.input.rank == 2 else network.x0.T)       # N × in
    for layer in network.net.layers:
        if layer.kind == "Linear":
            W = tensor(network.weights[layer.weight.name])
            B = tensor(network.weights[layer.bias_tensor.name]).reshape(-1) if layer.bias_tensor else None
            x = linear_with_weights(x, W, B, network.bias_node)
        else:
            x = torch_module(layer, int)(x)
        engine = np.array(floats(job.result(layer.name)))
        reference = x.detach().numpy()
        if network.bias_node and engine.size == reference.size + reference.shape[0]:
            reference = np.hstack([np.ones((reference.shape[0], 1)), reference])   # shown with the bias node 1
        job.compare("every layer's output with torch's forward pass", engine, reference.reshape(-1),
                    [f"{layer.name}, entry {k + job.problem.index_base}" for k in range(engine.size)])
