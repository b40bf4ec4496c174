"""Cross-checks of numeric networks (``numeric_network``) and RNN recurrences: autograd through
the same layers with the given values."""
import numpy as np
import sympy as sp

from ..layers import torch_module
from ..torch_ops import VerifyError, to_torch
from .job import EngineValues, engine_value
from ..answer import Kind
from .registry import checks


def _numeric_pass(job):
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

    biases = {layer.bias_tensor.name for layer in network.linear_layers() if layer.bias_tensor is not None}
    params = {name: leaf(v, name in biases) for name, v in network.weights.items()}
    x = leaf(network.x0, True).detach()
    outputs = {}
    for layer in network.net.layers:
        if layer.kind == "Linear":
            bias = params[layer.bias_tensor.name] if layer.bias_tensor is not None else None
            x = linear_with_weights(x, params[layer.weight.name], bias, network.bias_node)
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


def _floats(value):
    """Floats of an exact answer (a number or a matrix, row-major)."""
    if isinstance(value, sp.MatrixBase):
        return [float(sp.N(v, 30)) for v in value]
    return [float(sp.N(value, 30))]


@checks("forward_backward")
def check_forward_backward(job):
    network, outputs, loss, params = _numeric_pass(job)
    job.autograd, job.random_inputs = True, False
    base = job.problem.index_base
    for name, out in outputs.items():
        engine, reference = _floats(job.result(name)), out.detach().reshape(-1).tolist()
        if network.bias_node and len(engine) == len(reference) + 1:
            reference = [1.0] + reference            # shown with the bias node 1 in front
        job.compare("every layer's output with torch's forward pass", engine, reference,
                    [f"{name}[{k + base}]" for k in range(len(engine))])
    job.compare("the loss", _floats(job.result(network.loss_name)), [float(loss.detach())], [network.loss_name])
    for name, out in list(outputs.items()) + list(params.items()):
        engine = job.result(f"d{network.loss_name}/d{name}")
        if engine is not None:
            job.compare("the gradients by every layer's output and every weight with autograd's", _floats(engine),
                        out.grad.reshape(-1).tolist(),
                        [f"d{network.loss_name}/d{name}, entry {k + base}" for k in range(out.numel())])


@checks("gradient_step")
def check_gradient_step(job):
    import torch
    from ..expressions import parse
    network, outputs, loss, params = _numeric_pass(job)
    job.autograd, job.random_inputs = True, False
    rate = float(parse(job.question.option("learning_rate"), job.ctx.decls.scope()))
    update = job.question.option("update", list(params))
    torch.optim.SGD([params[name] for name in update], lr=rate).step()
    for name in update:
        job.compare("W - rate dE/dW with one step of torch.optim.SGD", _floats(job.result(f"{name}'")),
                    params[name].detach().reshape(-1).tolist(),
                    [f"{name}', entry {k + job.problem.index_base}" for k in range(params[name].numel())])


@checks("rnn_recurrence")
def check_rnn_recurrence(job):
    import torch
    from ..asks.rnn_recurrence import integer_option, number_option
    from ..numeric_network import tensor_value
    ctx = job.ctx
    state = ctx.tensor("state")
    update = ctx.expression("update")
    job.autograd = True
    values = {}
    for symbol in update.free_symbols - {state.base}:
        tensor = ctx.decls.lookup(str(symbol))
        if tensor is not None and not tensor.is_layer and tensor.value_spec is not None:
            values[str(symbol)] = float(sp.N(tensor_value(ctx, tensor), 30))
        else:
            values[str(symbol)] = float(job.random(()))

    def g(a):
        return to_torch(update, lambda atom: a if atom.name == state.name else values[atom.name])

    def slope(a):
        a = torch.tensor(float(a), dtype=torch.float64, requires_grad=True)
        (d,) = torch.autograd.grad(g(a), a)
        return float(d)

    points = [float(v) for v in job.random((3,))]
    engine = [engine_value(job.result("derivative"),
                           EngineValues({**values, state.name: np.array(p)}, ctx.decls.lookup, {})) for p in points]
    job.compare("the derivative with autograd's at random states", engine, [slope(p) for p in points],
                [f"{state.name} = {p:.3g}" for p in points])
    a = torch.tensor(float(sp.N(number_option(ctx, "initial", 0), 30)), dtype=torch.float64)
    trajectory = []
    for _ in range(integer_option(ctx, "steps", 5, 1, 50)):
        a = g(a)
        trajectory.append(float(a))
    job.compare("the trajectory with the recurrence iterated in torch",
                [float(sp.N(v, 30)) for v in job.result(Kind.TUPLE)], trajectory,
                [f"step {t + 1}" for t in range(len(trajectory))])
    fixed = job.result("fixed point")
    if fixed is None:
        return
    star = float(sp.N(fixed, 30))
    d = job.result("slope at the fixed point")
    if not isinstance(sp.sympify(fixed), sp.Float):       # exact: it must be a fixed point to 1e-9
        job.compare("the fixed point a* with g(a*) in torch", [star],
                    [float(g(torch.tensor(star, dtype=torch.float64)))], ["a*"])
        if d is not None:
            job.compare("the derivative at the fixed point with autograd's", [float(sp.N(d, 30))], [slope(star)], ["d"])
    else:                                                 # a rounded decimal: agreement to its digits only
        digits = job.question.option("digits", 4)
        rounding = 10.0 ** (1 - digits)
        pairs = [("a*", star, float(g(torch.tensor(star, dtype=torch.float64))))]
        pairs += [("d", float(sp.N(d, 30)), slope(star))] if d is not None else []
        for name, mine, theirs in pairs:
            if abs(mine - theirs) > rounding * max(1.0, abs(theirs)):
                job.mismatch = f"{name} = {mine:.10g}, but torch gives {theirs:.10g} (beyond its {digits} digits)"
        job.also.append(f"the fixed point and the derivative there, given as {digits}-digit decimals, "
                           "agree with torch to those digits")
    size = abs(slope(star))
    expected = "neither" if abs(size - 1) <= 1e-9 else "vanishing" if size < 1 else "exploding"
    if job.result(Kind.WORD) is not None:
        job.also.append("the verdict matches autograd's |d| at the fixed point")
        if job.result(Kind.WORD) != expected:
            job.mismatch = f"the verdict '{job.result(Kind.WORD)}', but autograd's |d| = {size:.6g} means '{expected}'"
