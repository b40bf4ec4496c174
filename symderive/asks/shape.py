"""ask: shape — the output shape of a layer, with the size formula worked out per axis."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..latex import dims
from ..layers import Conv, Pool

FORMULA = (r"n_{\text{out}} = \left\lfloor \frac{n + 2P - D(K-1) - 1}{S} \right\rfloor + 1")


KEYS = {"of"}

def axis_steps(layer):
    """One step per spatial axis of a convolution or pooling layer."""
    if not isinstance(layer, (Conv, Pool)):
        return []
    spatial_in = layer.x.shape[layer.x.rank - layer.dims:]
    dilation = getattr(layer, "dilation", (1,) * layer.dims)
    names = ["length"] if layer.dims == 1 else ["height", "width"]
    steps = [Step(FORMULA, f"output size of {layer.describe()} (PyTorch, floor)")]
    out_spatial = layer.shape[len(layer.shape) - layer.dims:]
    for name, n, k, s, p, d, out in zip(names, spatial_in, layer.kernel, layer.stride, layer.padding,
                                        dilation, out_spatial):
        filled = (rf"\left\lfloor \frac{{{sp.latex(n)} + 2 \cdot {sp.latex(p)} - {sp.latex(d)}"
                  rf"\,({sp.latex(k)} - 1) - 1}}{{{sp.latex(s)}}} \right\rfloor + 1")
        steps.append(Step(rf"n_{{\text{{{name}}}}} = {filled} = {sp.latex(out)}",
                          f"{name}: n = {n}, K = {k}, S = {s}, P = {p}, D = {d}"))
    if getattr(layer, "channels", False):
        steps.append(Step(rf"C_{{\text{{out}}}} = {sp.latex(layer.shape[0])}",
                          "one output channel per filter"))
    return steps


def solve(ctx):
    layer = ctx.tensor("of")
    results = [Result("shape", tuple(layer.shape), rf"{layer.tex} \in {dims(layer.shape)}", Kind.SHAPE)]
    return ctx.answer(results, axis_steps(layer))


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    from ..verify.job import Mismatch, as_int
    from ..verify.report import SHAPE_DRAWS
    layer = job.ctx.tensor("of")
    engine_shape = job.result(Kind.SHAPE)
    if not layer.is_layer:
        job.reason = "a declared tensor's shape is given, not derived"
        return
    for sizes in job.draw_sizes([layer], SHAPE_DRAWS):
        graph = job.graph(sizes, job.values([layer], sizes))
        try:
            torch_shape = tuple(graph.get(layer).shape)
        except Mismatch:
            return
        shape = tuple(as_int(n, sizes) for n in engine_shape)
        if None in shape or len(shape) != len(torch_shape):
            job.shape_mismatch(f"shape of {layer.name}", shape, torch_shape)
            return
        where = ", ".join(f"{s.name} = {v}" for s, v in sizes.items())
        job.compare(f"the shape of {layer.name} with the shape torch produces", shape, torch_shape,
                    labels=[f"axis {k + 1}" + (f" at {where}" if where else "") for k in range(len(shape))])
