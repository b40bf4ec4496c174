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
