"""ask: gradient_step — one step of gradient descent: W' = W − η ∂E/∂W for each parameter, after
the forward and backward passes of forward_backward (a network: stack on one example, or the
declared layers named by of:, whose loss may average over a batch), exact and as decimals."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..latex import matrix, tex_name
from ..numeric_network import number_option, option_at, tidy
from ..yaml_positions import position
from ..numeric_graph import graph_pass, graph_results
from .forward_backward import parameter_order, passes, through_layers

KEYS = {"network", "digits", "learning_rate", "update", "of"}
USES_VALUES = True



def solve(ctx):
    rate = number_option(ctx, "learning_rate")
    if not rate.is_positive:
        raise ExpressionError("'learning_rate' must be a positive number", *option_at(ctx, "learning_rate"))
    if through_layers(ctx):
        return _step_through_layers(ctx, rate)
    network, done, steps = passes(ctx)
    names = parameter_order(network, done)
    update = ctx.option("update", names)
    if not isinstance(update, list) or not update:
        raise ExpressionError("'update' is a list of the parameters to update, e.g. [W, B]", *position(update))
    for name in update:
        if name not in done.param_grads:
            raise ExpressionError(f"'{name}' is not a parameter of the network (parameters: "
                                  f"{', '.join(names)})", *position(name))
    steps.append(Step(rf"\eta = {network.shown(rate)}",
                      "the learning rate; batch size 1: the gradient of this one example"))
    results = []
    for name in update:
        old = network.weights[name]
        grad = done.param_grads[name]
        new = (old - rate * grad).applyfunc(tidy)
        tex = tex_name(name)
        steps.append(Step(rf"{tex}' = {tex} - \eta\, \frac{{\partial {tex_name(network.loss_name)}}}{{\partial {tex}}}"
                          rf" = {matrix(old)} - {sp.latex(rate)}\, {matrix(grad)}", f"gradient descent on {name}"))
        results.append(Result(f"{name}'", network.full(new), rf"{tex}' = {network.shown(new)}", Kind.ENTRIES,
                              key=f"{name}'"))
    return ctx.answer(results, steps)


def _step_through_layers(ctx, rate):
    """The step for declared layers: ``update`` must list the parameters (the inputs are tensors too,
    and are not updated)."""
    from ..numeric_graph import equated
    from ..numeric_network import digits_option
    graph, done = graph_pass(ctx, backward=True)
    if graph.tops[0].shape:
        raise ExpressionError("gradient_step needs a scalar loss as 'of'", *position(ctx.option("of")))
    update = ctx.require("update")
    names = [leaf.name for leaf in graph.leaves if leaf.name not in graph.domains]
    if not isinstance(update, list) or not update:
        raise ExpressionError("'update' is a list of the parameters to update, e.g. [W, b]", *position(update))
    _, steps = graph_results(ctx, graph, done, True, digits_option(ctx))
    steps.append(Step(rf"\eta = {sp.latex(rate)}", "the learning rate"))
    results = []
    for name in update:
        if name not in names:
            raise ExpressionError(f"'{name}' is not a tensor the loss depends on (those are: {', '.join(names)})",
                                  *position(name))
        old, grad = done.values[name], done.grads[name]
        new = (old - rate * grad).applyfunc(tidy) if hasattr(old, "applyfunc") else tidy(old - rate * grad)
        tex = tex_name(name)
        top = tex_name(graph.tops[0].name)
        steps.append(Step(rf"{tex}' = {tex} - \eta\, \frac{{\partial {top}}}{{\partial {tex}}}",
                          f"gradient descent on {name}"))
        results.append(Result(f"{name}'", new, equated(rf"{tex}'", new, digits_option(ctx)),
                              Kind.ENTRIES if hasattr(new, "shape") else Kind.VALUE, key=f"{name}'"))
    return ctx.answer(results, steps)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    if "of" in job.question.spec:
        return _check_through_layers(job)
    from ..verify.numeric import floats, numeric_pass
    import torch
    from ..expressions import parse
    network, outputs, loss, params = numeric_pass(job)
    job.autograd, job.random_inputs = True, False
    rate = float(parse(job.question.option("learning_rate"), job.ctx.decls.scope()))
    update = job.question.option("update", list(params))
    torch.optim.SGD([params[name] for name in update], lr=rate).step()
    for name in update:
        job.compare("W - rate dE/dW with one step of torch.optim.SGD", floats(job.result(f"{name}'")),
                    params[name].detach().reshape(-1).tolist(),
                    [f"{name}', entry {k + job.problem.index_base}" for k in range(params[name].numel())])


def _check_through_layers(job):
    """torch.optim.SGD's step on the same layers, after autograd's backward."""
    import numpy as np
    import torch
    from ..expressions import parse
    from ..numeric_graph import NumericGraph, of_names
    graph = NumericGraph(job.ctx, of_names(job.ctx, many=False), job.ctx.require("of"))
    job.random_inputs, job.autograd = False, True
    values = {leaf.name: np.array(_floats(graph.inputs[leaf.name])).reshape(tuple(int(s) for s in leaf.shape))
              for leaf in graph.leaves}
    torch_graph = job.graph({}, values)
    update = list(job.question.option("update"))
    params = {name: torch_graph.leaf(name, requires_grad=True) for name in update}
    torch_graph.get(graph.tops[0]).backward()
    rate = float(parse(job.question.option("learning_rate"), job.ctx.decls.scope()))
    torch.optim.SGD(list(params.values()), lr=rate).step()
    for name in update:
        engine = _floats(job.result(f"{name}'"))
        job.compare("W - rate dE/dW with one step of torch.optim.SGD", engine, params[name].detach().reshape(-1),
                    [f"{name}', entry {k + job.problem.index_base}" for k in range(len(engine))])


def _floats(value):
    if hasattr(value, "tolist") and not isinstance(value, sp.MatrixBase):
        return [float(v) for v in sp.flatten(value.tolist())]
    return [float(v) for v in value] if isinstance(value, sp.MatrixBase) else [float(value)]
