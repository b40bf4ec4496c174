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
