"""ask: element — the closed index formula for one entry of a layer, and its dimension."""
from ..answer import Kind, Result, Step
from ..latex import dims, entry
from .shape import axis_steps


KEYS = {"of"}

def solve(ctx):
    layer = ctx.tensor("of")
    idx = layer.free_indices()
    lhs = entry(layer.name, idx, ctx.base)
    steps = axis_steps(layer)
    definition = layer.element(idx, expand=False) if layer.is_layer else layer.element(idx)
    steps.append(Step(f"{lhs} = {ctx.show(definition)}",
                      f"definition ({layer.describe()})" if layer.is_layer else "declared tensor"))
    expanded = layer.element(idx, expand=True) if layer.is_layer else definition
    if expanded != definition:
        steps.append(Step(f"{lhs} = {ctx.show(expanded)}", "substituting the inner layers"))
    ranges = ", ".join(rf"{i.name} \in \{{{ctx.base}, \dots, {ctx.show(i.upper + ctx.base)}\}}"
                       for i in idx)
    results = [Result("dimension", layer.shape, rf"{layer.tex} \in {dims(layer.shape)}", Kind.SHAPE),
               Result("element", expanded, rf"{lhs} = {ctx.show(expanded)}" +
                      (rf", \quad {ranges}" if ranges else ""),
                      Kind.ELEMENT, axes=tuple(("of", i) for i in idx))]
    conventions = {"zero_outside"} if getattr(layer, "padding", None) and any(
        p != 0 for p in layer.padding) else set()
    return ctx.answer(results, steps, conventions=conventions)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    from ..verify.job import Mismatch, as_int, engine_value, entry_label, sample_positions
    from ..verify.report import FORMULA_DRAWS, MAX_ENTRIES
    layer = job.ctx.tensor("of")
    formula = job.result(Kind.ELEMENT)
    if not layer.is_layer:
        job.reason = "a declared tensor has no formula to compare"
        return
    idx = layer.free_indices()
    base = job.problem.index_base
    for sizes in job.draw_sizes([layer], FORMULA_DRAWS):
        values = job.values([layer], sizes)
        try:
            out = job.graph(sizes, values).get(layer).detach().numpy()
        except Mismatch:
            return
        shape = tuple(as_int(n, sizes) for n in layer.shape)
        dimension = job.result(Kind.SHAPE)
        if dimension is not None and tuple(as_int(n, sizes) for n in dimension) != tuple(out.shape):
            job.shape_mismatch(f"the dimension of {layer.name}", [as_int(n, sizes) for n in dimension], out.shape)
            return
        positions = sample_positions(shape, MAX_ENTRIES, job.rng)
        engine = [engine_value(formula, values, sizes, dict(zip((i.name for i in idx), pos)))
                  for pos in positions]
        job.compare(f"the element formula of {layer.name} with the "
                    "forward pass", engine, [out[pos] for pos in positions],
                    [entry_label(layer.name, pos, base) for pos in positions])
