"""ask: forward_backward — a numeric forward pass and backpropagation with given values: through a
small fully connected ``network:`` stack (every layer's output, the loss, the gradient of the loss
by every layer's output (δ) and by every weight), or through the declared layers named by ``of:``
(any kinds, any graph: the gradient of ``of`` by every layer and every tensor, inputs included),
exact and then as decimals."""
from ..answer import Kind, Result, Step
import sympy as sp

from ..latex import tex_name
from ..errors import ExpressionError
from ..numeric_graph import check_graph, graph_pass, graph_results
from ..numeric_network import NumericNetwork, digits_option
from ..yaml_positions import key_position

KEYS = {"network", "digits", "of", "upstream", "loss"}
USES_VALUES = True



def through_layers(ctx):
    """True when the question names declared layers (``of:``) instead of a ``network:`` stack."""
    if ("network" in ctx.question.spec) == ("of" in ctx.question.spec):
        raise ExpressionError(f"ask '{ctx.question.ask}' needs either 'network:' (a stack) or 'of:' (declared "
                              f"layers)", ctx.question.line, None)
    if "upstream" in ctx.question.spec and "network" in ctx.question.spec:
        raise ExpressionError("'upstream' is for a pass through declared layers (of:); a network: stack has "
                              "a loss", *key_position(ctx.question.spec, "upstream"))
    return "of" in ctx.question.spec


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
    if through_layers(ctx):
        graph, done = graph_pass(ctx, backward=True)
        return ctx.answer(*graph_results(ctx, graph, done, True, digits_option(ctx)))
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
    if done.input_grad is not None:
        results.append(result(network, f"d{network.loss_name}/d{network.input.name}", done.input_grad,
                              rf"\frac{{\partial {loss}}}{{\partial {tex_name(network.input.name)}}}"))
    for name in parameter_order(network, done):
        results.append(result(network, f"d{network.loss_name}/d{name}", done.param_grads[name],
                              rf"\frac{{\partial {loss}}}{{\partial {tex_name(name)}}}"))
    if done.definitions:
        results.append(Result("where", ", ".join(f"{s} = {m}" for s, m in done.definitions), r",\quad ".join(
            rf"{tex_name(str(s))} = {network.shown(m)}" for s, m in done.definitions), Kind.TEXT))
    answer = ctx.answer(results, steps)
    answer.abbreviations = {s: network.full(m) for s, m in done.definitions}    # so the checker reads τ_k
    return answer


def parameter_order(network, done):
    """The parameters with gradients, in the order the layers use them."""
    order = [t.name for layer in network.net.layers for t in layer.value_tensors()]
    return [name for name in dict.fromkeys(order) if name in done.param_grads]


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    if "of" in job.question.spec:
        return check_graph(job, backward=True)
    from ..verify.numeric import floats, numeric_pass
    network, outputs, loss, params = numeric_pass(job)
    job.autograd, job.random_inputs = True, False
    base = job.problem.index_base
    for name, out in outputs.items():
        if job.result(name) is None:                 # the input is given, not computed
            continue
        engine, reference = floats(job.result(name)), out.detach().reshape(-1).tolist()
        if network.bias_node and len(engine) == len(reference) + 1:
            reference = [1.0] + reference            # shown with the bias node 1 in front
        job.compare("every layer's output with torch's forward pass", engine, reference,
                    [f"{name}[{k + base}]" for k in range(len(engine))])
    job.compare("the loss", floats(job.result(network.loss_name)), [float(loss.detach())], [network.loss_name])
    for name, out in list(outputs.items()) + list(params.items()):
        engine = job.result(f"d{network.loss_name}/d{name}")
        if out.grad is None:
            continue
        if engine is not None:
            job.compare("the gradients by every layer's output and every weight with autograd's", floats(engine),
                        out.grad.reshape(-1).tolist(),
                        [f"d{network.loss_name}/d{name}, entry {k + base}" for k in range(out.numel())])
