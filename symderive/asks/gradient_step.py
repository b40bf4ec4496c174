"""ask: gradient_step — one step of gradient descent on one example (batch size 1):
W' = W − η ∂E/∂W for each parameter, after the forward and backward passes of
forward_backward, exact and as decimals."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..latex import matrix, tex_name
from ..numeric_network import number_option, option_at, tidy
from ..yaml_positions import position
from .forward_backward import parameter_order, passes

KEYS = {"network", "digits", "learning_rate", "update"}


def solve(ctx):
    rate = number_option(ctx, "learning_rate")
    if not rate.is_positive:
        raise ExpressionError("'learning_rate' must be a positive number", *option_at(ctx, "learning_rate"))
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


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
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
