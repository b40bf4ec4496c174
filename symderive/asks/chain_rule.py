"""ask: chain_rule — given the upstream gradient g = ∂l/∂y as a symbol, derive ∂l/∂x."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..backprop import CLOSED_MAX_CHARS, CLOSED_MAX_DEPTH, through_stack
from ..derivative import chain_rule, graph_names, refuse_labels, upstream_name
from ..errors import ExpressionError
from ..latex import dims, entry, matrix, partial, tex_name, too_large
from ..tensors import is_concrete
from ..yaml_positions import position
from .backprop import backward_steps, closed_or_delta_note, delta_form_element
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
    bp = stack(ctx, of, wrt, upstream, loss)
    if bp is not None and bp.depth > CLOSED_MAX_DEPTH:
        return _delta_form(ctx, bp, loss, closed_or_delta_note(bp))
    c = chain_rule(of, wrt, upstream, avoid={str(loss)} | ctx.declared_names())
    d = c.local
    upstream = c.upstream.name
    g_entry = entry(upstream, d.out_idx, ctx.base)
    lhs = partial(loss, (), wrt.name, d.wrt_idx, ctx.base)
    sums = " ".join(rf"\sum_{{{i.name}={ctx.base}}}^{{{ctx.show(i.upper + ctx.base)}}}" for i in d.out_idx)
    given = Step(rf"{g_entry} = {partial(loss, (), of.name, d.out_idx, ctx.base)}",
                 f"the given upstream gradient, {upstream} " + rf"$\in {dims(of.shape)}$")
    # Through a stack the closed formula is the answer only if it is short: fold it first, and write
    # the steps that lead to it only when it is kept (nyu24-1.2.2f printed and threw away 0.3 s of them).
    folding = []
    value = folded(c.value, of, wrt, folding, lhs, ctx)
    if bp is not None and len(ctx.show(value)) > CLOSED_MAX_CHARS:
        return _delta_form(ctx, bp, loss, closed_or_delta_note(bp, len(ctx.show(value))))
    steps = [
        given,
        Step(rf"{lhs} = {sums} {g_entry}\, {partial(of.name, d.out_idx, wrt.name, d.wrt_idx, ctx.base)}",
             "chain rule"),
        Step(rf"{partial(of.name, d.out_idx, wrt.name, d.wrt_idx, ctx.base)} = {ctx.show(d.value)}",
             "local derivative (contracted)"),
        Step(f"{lhs} = {ctx.show(c.summed)}", "substitute"),
        Step(f"{lhs} = {ctx.show(c.value)}",
             "contract the deltas; conditions on a summation index become its bounds"),
    ] if bp is None else [given] + backward_steps(bp, ctx, loss=loss) + [
        Step(f"{lhs} = {ctx.show(c.value)}", closed_or_delta_note(bp, 0))]
    steps += folding
    results = [
        Result("element", value, f"{lhs} = {ctx.show(value)}", Kind.ELEMENT,
               axes=tuple(("wrt", i) for i in d.wrt_idx)),
        Result("dimension", wrt.shape,
               rf"\frac{{\partial {tex_name(loss)}}}{{\partial {wrt.tex}}} \in {dims(wrt.shape)}", Kind.SHAPE),
    ]
    conventions = {"gradient_shape", "zero_outside"}
    if 1 <= wrt.rank <= 2:
        from ..course_forms import layer_backward
        label = rf"\frac{{\partial {tex_name(loss)}}}{{\partial {wrt.tex}}}"
        taken = ctx.declared_names() | graph_names(of, wrt) | {upstream, str(loss)}
        backward = layer_backward(of, wrt, c.upstream, d.wrt_idx, taken)
        step, result = (None, None) if backward is None else \
            matrix_result(value, d.wrt_idx, label, of, wrt, ctx, extra={upstream: of.shape}, steps=steps,
                          backward=backward)
        if step is None:
            step, result = matrix_result(value, d.wrt_idx, label, of, wrt, ctx, extra={upstream: of.shape},
                                         steps=steps, results=results)
        if step:
            steps.append(step)
            results.append(result)
    if ctx.flag("array", True) and is_concrete(of.shape) and is_concrete(wrt.shape):
        array = c.array()
        label = rf"\frac{{\partial {tex_name(loss)}}}{{\partial {wrt.tex}}}"
        printed = not too_large(array, ctx.base)
        shown = (f"{label} = {matrix(array, ctx.base)}" if printed else
                 rf"{label} \in \mathbb{{R}}^{{{array.rows} \times {array.cols}}}")
        steps.append(Step("", f"entries at the given sizes, in terms of {upstream} (the array is in the answer)"
                          if printed else "too large to print; given by the element formula above"))
        results.append(Result("array", array, shown, Kind.ENTRIES))
    return ctx.answer(results, steps, conventions=conventions)


def stack(ctx, of, wrt, upstream, loss):
    """The layer-by-layer derivation when ``wrt`` sits several layers below ``of`` (``through_stack``),
    the upstream gradient its seed, else None."""
    refuse_labels(of, wrt)
    return through_stack(of, wrt, upstream_name(of, wrt, upstream), avoid={str(loss)} | ctx.declared_names())


def _given(ctx, bp, loss):
    g = bp.seed
    idx = bp.of.free_indices({g.name, str(loss)})
    return Step(rf"{entry(g.name, idx, ctx.base)} = {partial(loss, (), bp.of.name, idx, ctx.base)}",
                f"the given upstream gradient, {g.name} " + rf"$\in {dims(bp.of.shape)}$")


def _delta_form(ctx, bp, loss, why):
    """The answer through a deep stack: the δ steps from the upstream gradient down, the last boxed."""
    steps = [_given(ctx, bp, loss)] + backward_steps(bp, ctx, loss=loss) + [Step("", why)]
    wrt = bp.wrt
    if ctx.flag("array", True) and is_concrete(bp.of.shape) and is_concrete(wrt.shape):
        steps.append(Step("", "no array: its entries are the δ form's at each index, from the δ steps"))
    results = [delta_form_element(bp, ctx, loss),
               Result("dimension", wrt.shape,
                      rf"\frac{{\partial {tex_name(loss)}}}{{\partial {wrt.tex}}} \in {dims(wrt.shape)}",
                      Kind.SHAPE)]
    return ctx.answer(results, steps, conventions={"gradient_shape", "zero_outside"})


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    from ..backprop import delta_values
    from ..derivative import chain_rule_avoid, upstream_name
    from ..tensors import flat_positions
    from ..verify.formulas import answer_indices, autograd_draws
    from ..verify.job import as_int, engine_value, entry_label, sample_positions, vjp
    from ..verify.report import MAX_ENTRIES
    of, wrt = job.ctx.tensor("of"), job.ctx.tensor("wrt")
    upstream = upstream_name(of, wrt, job.question.option("upstream"))
    formula, array, dimension = job.result(Kind.ELEMENT), job.result(Kind.ENTRIES), job.result(Kind.SHAPE)
    avoid = chain_rule_avoid(of, wrt, upstream, job.question.option("loss", "l")) | job.ctx.declared_names()
    bp = stack(job.ctx, of, wrt, upstream, job.question.option("loss", "l"))
    if bp is not None and formula == bp.gradient.value:        # the δ form: each δ from its step, top down
        wrt_names = [i.name for i in bp.wrt_idx]
    else:
        bp = None
        wrt_names = [i.name for i in answer_indices(of, wrt, formula, avoid)[1]]
    base = job.problem.index_base
    for sizes, values, forward, variable in autograd_draws(job, of, wrt, extra=[(upstream, of.shape)]):
        grad = vjp(forward, variable, values[upstream])
        wrt_shape = tuple(variable.shape)
        if dimension is not None:
            shape = tuple(as_int(n, sizes) for n in dimension)
            if shape != wrt_shape:
                job.shape_mismatch(f"the shape of dl/d{wrt.name}", shape, wrt_shape)
        if array is not None and not sizes:
            engine = [engine_value(v, values) for v in sp.Matrix(array)]
            job.compare(f"the gradient array dl/d{wrt.name} (random upstream {upstream})", engine, grad,
                        [entry_label(wrt.name, p, base) for p in flat_positions(wrt_shape)])
        if bp is not None:
            delta_values(bp, values, sizes)
        positions = sample_positions(wrt_shape, MAX_ENTRIES, job.rng)
        engine = [engine_value(formula, values, sizes, dict(zip(wrt_names, p))) for p in positions]
        job.compare(f"the element formula dl/d{wrt.name}" + (" (δ form, each δ from its step)" if bp else ""), engine,
                    [grad[p] for p in positions], [entry_label(wrt.name, p, base) for p in positions])


# What grading (symderive check) needs to read an answer to this ask, beyond the question's scope.
def grading(question, decls):
    """The upstream gradient as a tensor, the names it may go by, and the loss's names."""
    from ..checking.targets import all_tensors
    from ..derivative import upstream_name
    from ..tensors import Tensor
    spec = question.spec
    of = decls.lookup(str(spec["of"]).strip())
    wrt = decls.lookup(str(spec["wrt"]).strip())
    same = [n for n, t in all_tensors(decls).items() if tuple(t.shape) == tuple(of.shape)]
    return {"upstream": Tensor(upstream_name(of, wrt, spec.get("upstream")), of.shape),
            "upstream_of": tuple(dict.fromkeys([of.name] + same)),
            "losses": tuple(dict.fromkeys([str(spec.get("loss", "l")), "l", "L", "ell", "E", "J"]))}
