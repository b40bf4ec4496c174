"""ask: same_padding — the padding P that keeps a convolution's (or pooling's) output the size of
its input: the equation (n + 2P − D(K − 1) − 1)/S + 1 = n solved for P with SymPy, per axis,
then checked with PyTorch's size formula (with the floor)."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError, ShapeError
from ..layers.conv import NetConv
from ..layers.pool import NetPool
from ..network import question_network
from ..shapes import conv_output_size
from ..yaml_positions import key_position, position
from .parameter_count import name_tex

KEYS = {"network", "of"}

n, K, S, P, D = sp.symbols("n K S P D")
EQUATION = sp.Eq((n + 2 * P - D * (K - 1) - 1) / S + 1, n)


def solve(ctx):
    network = question_network(ctx)
    if network.shape is None:
        raise ExpressionError("ask 'same_padding' needs the network's 'input' shape",
                              *key_position(ctx.question.spec, "network"))
    of = ctx.option("of")
    if of is None:
        row = next((r for r in network.rows() if isinstance(r.layer, (NetConv, NetPool))), None)
        if row is None:
            raise ExpressionError("the network has no convolution or pooling layer",
                                  *key_position(ctx.question.spec, "network"))
    else:
        row = network.find(str(of).strip(), of)
        if not isinstance(row.layer, (NetConv, NetPool)):
            raise ExpressionError(f"layer '{of}' is a {row.layer.describe()}: 'same' padding is for a "
                                  f"convolution or pooling layer", *position(of))
    layer, shape = row.layer, row.shape_in
    general = sp.solve(EQUATION, P)
    if len(general) != 1:
        raise ShapeError("the size equation has no unique solution for P")
    general = sp.factor(general[0])
    steps = [
        Step(sp.latex(EQUATION), "“same”: the output size equals the input size n along each axis "
                                 "(the floor is dropped: the division must be exact)"),
        Step(rf"P = {sp.latex(general)}", "solved for P (SymPy)"),
    ]
    names = ["length"] if layer.dims == 1 else ["height", "width"]
    values, sides = [], []
    for name, size, k, s, d in zip(names, shape.spatial, layer.kernel, layer.stride, layer.dilation):
        value = sp.simplify(general.subs({n: size, K: k, S: s, D: d}))
        steps.append(Step(rf"P_{{\text{{{name}}}}} = {sp.latex(general.subs({K: k, S: s, D: d}))}"
                          + ("" if value == general.subs({K: k, S: s, D: d}) else f" = {sp.latex(value)}"),
                          f"{name}: n = {size}, K = {k}, S = {s}, D = {d}"
                          + (" (with stride 1, P = D(K − 1)/2 does not depend on n)" if s == 1 else "")))
        values.append(value)
        if value.is_number and (not value.is_integer or value < 0):
            total = 2 * value
            if total.is_integer and total >= 0:
                sides.append(f"{name}: no equal padding on both sides works; pad {total} in all, "
                             f"{sp.floor(total / 2)} on one side and {sp.ceiling(total / 2)} on the other")
            else:
                sides.append(f"{name}: no whole padding keeps the size {size}")
    if sides:
        raise ShapeError(f"layer '{layer.name}': " + "; ".join(sides),
                         *key_position(ctx.question.spec, "of" if of is not None else "network"))
    padded = tuple(conv_output_size(size, k, s, p, d) for size, k, s, p, d in
                   zip(shape.spatial, layer.kernel, layer.stride, values, layer.dilation))
    out_shape = shape.with_(spatial=padded, channels=getattr(layer, "out_channels", shape.channels))
    steps.append(Step(rf"{name_tex(layer.name)}:\quad {out_shape.latex()}",
                      f"check with PyTorch's size formula (with the floor) and padding "
                      f"{', '.join(map(str, values))}: the height and width are kept; the depth is the number "
                      f"of filters" if isinstance(layer, NetConv) else "check with the size formula"))
    same = all(sp.simplify(a - b) == 0 for a, b in zip(padded, shape.spatial))
    if not same:
        raise ShapeError(f"layer '{layer.name}': with padding {values} the output is {out_shape.text()}, "
                         f"not the input's size", *key_position(ctx.question.spec, "network"))
    shown = sp.latex(values[0]) if len(set(values)) == 1 else ", ".join(
        rf"{sp.latex(v)}\ \text{{({name})}}" for v, name in zip(values, names))
    one = len(set(values)) == 1
    results = [Result("padding", values[0] if one else tuple(values),
                      rf"P = {shown}\ \text{{on each side}}", Kind.VALUE if one else Kind.TUPLE, key="padding"),
               Result("output shape", out_shape.dims(), rf"{name_tex(layer.name)}:\ {out_shape.latex()}",
                      Kind.SHAPE)]
    return ctx.answer(results, steps)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    from ..layers import torch_module
    from ..verify.job import as_int, random_sizes
    from ..verify.report import FORMULA_DRAWS
    from ..verify.stacks import in_layout, net_input_shape, net_symbols, run_network
    import copy
    import torch
    from ..layers.conv import NetConv
    from ..layers.pool import NetPool
    network = question_network(job.ctx)
    of = job.question.option("of")
    row = next(r for r in network.rows() if (r.layer.name == str(of).strip() if of is not None
                                             else isinstance(r.layer, (NetConv, NetPool))))
    padding = job.result("padding")
    layer = copy.copy(row.layer)
    layer.padding = tuple(padding) if isinstance(padding, tuple) else (padding,) * row.layer.dims
    for sizes in random_sizes(job, net_symbols(network), FORMULA_DRAWS, lambda z: run_network(job, network, z)):
        num = lambda v: as_int(v, sizes)  # noqa: E731
        if any(num(p) is None for p in layer.padding):
            job.mismatch = f"the padding {padding} is not a whole number"
            return
        shape = net_input_shape(row.shape_in, sizes)
        with torch.no_grad():
            out = torch_module(layer, num).eval()(torch.zeros(shape, dtype=torch.float64))
        engine = tuple(as_int(v, sizes) for v in job.result(Kind.SHAPE))
        job.compare(f"the output shape with padding {padding} with torch's", engine,
                    in_layout(tuple(out.shape), row.shape_out.layout), [f"axis {a}" for a in row.shape_out.layout])
        job.compare("the input's spatial size with torch's output size (same padding)",
                    list(shape[2:]), list(out.shape[2:]), [f"spatial axis {k + 1}" for k in range(len(shape) - 2)])
