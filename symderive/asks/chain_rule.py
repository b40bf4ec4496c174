"""ask: chain_rule — given the upstream gradient g = ∂l/∂y as a symbol, derive ∂l/∂x."""
from ..answer import Kind, Result, Step
from ..derivative import chain_rule, graph_names
from ..errors import ExpressionError
from ..latex import dims, entry, matrix, partial, too_large
from ..tensors import is_concrete
from ..yaml_positions import position
from .matrix_view import folded, matrix_result


KEYS = {"of", "wrt", "upstream", "loss", "array"}

def solve(ctx):
    of, wrt = ctx.tensor("of"), ctx.tensor("wrt")
    upstream = ctx.option("upstream")
    if upstream is not None and (not isinstance(upstream, str) or not upstream.isidentifier()):
        raise ExpressionError("'upstream' names the symbol for the gradient dl/dy, e.g. g",
                              *position(upstream))
    if upstream is not None and upstream in graph_names(of, wrt):
        raise ExpressionError(f"'upstream' {upstream} is already the name of a tensor, layer or size",
                              *position(upstream))
    loss = ctx.option("loss", "l")
    c = chain_rule(of, wrt, upstream, avoid={str(loss)})
    d = c.local
    upstream = c.upstream.name
    g_entry = entry(upstream, d.out_idx, ctx.base)
    lhs = partial(loss, (), wrt.name, d.wrt_idx, ctx.base)
    sums = " ".join(rf"\sum_{{{i.name}={ctx.base}}}^{{{ctx.show(i.upper + ctx.base)}}}" for i in d.out_idx)
    steps = [
        Step(rf"{g_entry} = {partial(loss, (), of.name, d.out_idx, ctx.base)}",
             f"the given upstream gradient, {upstream} " + rf"$\in {dims(of.shape)}$"),
        Step(rf"{lhs} = {sums} {g_entry}\, {partial(of.name, d.out_idx, wrt.name, d.wrt_idx, ctx.base)}",
             "chain rule"),
        Step(rf"{partial(of.name, d.out_idx, wrt.name, d.wrt_idx, ctx.base)} = {ctx.show(d.value)}",
             "local derivative (contracted)"),
        Step(f"{lhs} = {ctx.show(c.summed)}", "substitute"),
        Step(f"{lhs} = {ctx.show(c.value)}",
             "contract the deltas; conditions on a summation index become its bounds"),
    ]
    value = folded(c.value, of, wrt, steps, lhs, ctx)
    results = [
        Result("element", value, f"{lhs} = {ctx.show(value)}", Kind.ELEMENT,
               axes=tuple(("wrt", i) for i in d.wrt_idx)),
        Result("dimension", wrt.shape,
               rf"\frac{{\partial {loss}}}{{\partial {wrt.tex}}} \in {dims(wrt.shape)}", Kind.SHAPE),
    ]
    conventions = {"gradient_shape", "zero_outside"}
    if 1 <= wrt.rank <= 2:
        step, result = matrix_result(value, d.wrt_idx, rf"\frac{{\partial {loss}}}{{\partial {wrt.tex}}}",
                                     of, wrt, ctx, extra={upstream: of.shape})
        if step:
            steps.append(step)
            results.append(result)
    if ctx.flag("array", True) and is_concrete(of.shape) and is_concrete(wrt.shape):
        array = c.array()
        label = rf"\frac{{\partial {loss}}}{{\partial {wrt.tex}}}"
        shown = (f"{label} = {matrix(array, ctx.base)}" if not too_large(array) else
                 rf"{label} \in \mathbb{{R}}^{{{array.rows} \times {array.cols}}}")
        steps.append(Step("", f"entries at the given sizes, in terms of {upstream} (the array is in the answer)"
                          if not too_large(array)
                          else "too large to print; given by the element formula above"))
        results.append(Result("array", array, shown, Kind.ENTRIES))
    return ctx.answer(results, steps, conventions=conventions)
