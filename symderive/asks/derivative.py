"""ask: derivative — ∂y/∂x element by element, its dimension, and (at concrete sizes) the array."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..backprop import CLOSED_MAX_CHARS, CLOSED_MAX_DEPTH, through_stack
from ..derivative import apply_signs, derivative, matrix_view, refuse_labels
from ..indices import substitute
from ..latex import MAX_PRINTED, dims, entry, matrix, partial, too_large
from ..page_fit import MATRIX_LINE, width
from ..tensors import flat_positions, is_concrete, numel
from .backprop import backward_steps, closed_or_delta_note, delta_form_element
from .matrix_view import differential_result, folded, matrix_result


KEYS = {"of", "wrt", "array", "given"}

def stack(ctx, of, wrt, at=None, signs=None):
    """The layer-by-layer derivation when ``wrt`` sits several layers below ``of`` (``through_stack``),
    else None; an entry of ``wrt`` or ``given`` signs (which the array needs) keep the closed route."""
    if at is not None or signs:
        return None
    refuse_labels(of, wrt)
    return through_stack(of, wrt, avoid=ctx.declared_names(), jacobian=True)


def solve(ctx):
    of = ctx.tensor("of")
    wrt, at = ctx.tensor_or_entry("wrt")
    signs = ctx.signs()           # read (and refused with their position) whatever wrt is
    bp = stack(ctx, of, wrt, at, signs)
    if bp is not None and bp.depth > CLOSED_MAX_DEPTH:
        return _delta_form(ctx, of, wrt, bp, closed_or_delta_note(bp))
    d = derivative(of, wrt, ctx.declared_names())     # no index named like a declared tensor
    if at is not None:
        return _one_entry(ctx, of, wrt, at, d)
    lhs = partial(of.name, d.out_idx, wrt.name, d.wrt_idx, ctx.base)
    y_entry = lhs.split("}{")[0][len(r"\frac{\partial "):]
    # Through a stack the closed formula is the answer only if it is short: fold it first, and write
    # the steps that lead to it only when it is kept (as chain_rule does).
    folding = []
    value = folded(d.value, of, wrt, folding, lhs, ctx)
    if bp is not None and len(ctx.show(value)) > CLOSED_MAX_CHARS:
        return _delta_form(ctx, of, wrt, bp, closed_or_delta_note(bp, len(ctx.show(value))))
    if bp is None:
        steps = [
            Step(f"{y_entry} = {ctx.show(d.element)}", "definition, written down to the variables"),
            Step(f"{lhs} = {ctx.show(d.raw)}",
                 rf"differentiate: $\partial {wrt.tex}_{{a}} / \partial {wrt.tex}_{{b}} = \delta_{{ab}}$ "
                 "per index"),
            Step(f"{lhs} = {ctx.show(d.value)}",
                 "contract each $\\delta$ against its sum, keeping the range conditions"),
        ]
    else:
        steps = backward_steps(bp, ctx) + [Step(f"{lhs} = {ctx.show(d.value)}", closed_or_delta_note(bp, 0))]
    steps += folding
    rows, cols = d.matrix_shape
    results = [
        Result("element", value, f"{lhs} = {ctx.show(value)}", Kind.ELEMENT,
               axes=tuple(("of", i) for i in d.out_idx) + tuple(("wrt", i) for i in d.wrt_idx)),
        _dimension(of, wrt),
    ]
    conventions = {"layout", "zero_outside"}
    if of.rank <= 1 and wrt.rank <= 1 and of.rank + wrt.rank >= 1 or of.rank == 0 and wrt.rank == 2:
        label = rf"\frac{{\partial {of.tex}}}{{\partial {wrt.tex}}}"
        from ..course_forms import loss_backward
        backward = loss_backward(of, wrt, d.wrt_idx, ctx.declared_names() | {i.name for i in d.wrt_idx}) \
            if of.rank == 0 else None
        step, result = (None, None) if backward is None else \
            matrix_result(value, d.out_idx + d.wrt_idx, label, of, wrt, ctx, steps=steps, backward=backward)
        if step is None:
            step, result = matrix_result(value, d.out_idx + d.wrt_idx, label, of, wrt, ctx, steps=steps,
                                         results=results)
        if step:
            steps.append(step)
            results.append(result)
    if of.rank == 2 and wrt.rank == 2:
        step, result = differential_result(value, d, of, wrt, ctx)
        if step:
            steps.append(step)
            results.append(result)
    if ctx.flag("array", True) and is_concrete(of.shape) and is_concrete(wrt.shape):
        array = d.array()
        if signs:
            array = array.applyfunc(lambda v: apply_signs(v, ctx.expanded_signs()))
            steps.append(Step("", _given_sentence(ctx, signs)))
        conventions.add("flatten")
        shown, why = array_latex(array, of, wrt, d, ctx)
        steps.append(Step("", why + " (the array is in the answer)"))
        results.append(Result("array", array, shown, Kind.ENTRIES))
    return ctx.answer(results, steps, conventions=conventions)


def _dimension(of, wrt):
    shape = tuple(of.shape) + tuple(wrt.shape)
    rows, cols = numel(of.shape), numel(wrt.shape)
    return Result("dimension", shape,
                  rf"\frac{{\partial {of.tex}}}{{\partial {wrt.tex}}} \in {dims(shape)}"
                  + (rf" \;\cong\; \mathbb{{R}}^{{{sp.latex(rows)} \times {sp.latex(cols)}}}"
                     if len(shape) != 2 else ""), Kind.SHAPE,
                  alt_shapes=((rows, cols),))              # the Jacobian as its flattened matrix


def _delta_form(ctx, of, wrt, bp, why):
    """The answer through a deep stack: the δ steps, the last one (by wrt) boxed."""
    steps = backward_steps(bp, ctx) + [Step("", why)]
    if ctx.flag("array", True) and is_concrete(of.shape) and is_concrete(wrt.shape):
        steps.append(Step("", "no array: its entries are the δ form's at each index, from the δ steps"))
    return ctx.answer([delta_form_element(bp, ctx), _dimension(of, wrt)], steps,
                      conventions={"layout", "zero_outside"})


def array_latex(array, of, wrt, d, ctx):
    """The Jacobian as one matrix, as one slice per output entry when it is too wide, or a summary."""
    vec = (rf"\frac{{\partial\, \mathrm{{vec}}({of.tex})}}{{\partial\, \mathrm{{vec}}({wrt.tex})}}"
           if len(of.shape) != 1 or len(wrt.shape) != 1 else
           rf"\frac{{\partial {of.tex}}}{{\partial {wrt.tex}}}")
    if not too_large(array, ctx.base):
        return (f"{vec} = {matrix(array, ctx.base)}",
                "entries read off the element formula; rows vec(y), columns vec(x), row-major")
    rows, cols = matrix_view(wrt.shape)
    if array.rows <= MAX_PRINTED and rows <= MAX_PRINTED and cols <= MAX_PRINTED:
        slices = []
        for r, pos in enumerate(flat_positions(of.shape)):
            label = rf"\frac{{\partial {entry(of.name, pos, ctx.base)}}}{{\partial {wrt.tex}}}"
            slices.append(f"{label} = {matrix(array[r, :].reshape(rows, cols), ctx.base)}")
        if all(width(s) <= MATRIX_LINE for s in slices):
                return (r"\begin{gathered}" + r" \\ ".join(slices) + r"\end{gathered}",
                    f"one slice per entry of {of.name}, each with the shape of {wrt.name}; "
                    "entries read off the element formula")
    nonzero = sum(1 for v in array if v != 0)
    return (rf"{vec} \in \mathbb{{R}}^{{{array.rows} \times {array.cols}}}",
            f"{nonzero} nonzero entries; too large or too wide to print, given by the element formula above")


def _one_entry(ctx, of, wrt, at, d):
    """∂y/∂x[at] for one entry of x: a tensor shaped like y, with given signs applied."""
    lhs_entry = partial(of.name, d.out_idx, wrt.name, at, ctx.base)
    value = substitute(d.value, dict(zip(d.wrt_idx, at)))
    y_entry = entry(of.name, d.out_idx, ctx.base)
    steps = [
        Step(f"{y_entry} = {ctx.show(d.element)}", "definition, written down to the variables"),
        Step(f"{lhs_entry} = {ctx.show(value)}", "differentiate and contract the deltas"
             + ("; the mask $\\mathbf{1}\\{z > 0\\}$ is ReLU$'$ (0 at $z = 0$, as PyTorch)"
                if value.has(sp.Heaviside) else "")),
    ]
    value = folded(value, of, wrt, steps, lhs_entry, ctx)
    results = [Result("element", value, f"{lhs_entry} = {ctx.show(value)}", Kind.ELEMENT,
                      axes=tuple(("of", i) for i in d.out_idx))]
    if is_concrete(of.shape) and is_concrete(wrt.shape):
        column = flat_positions(wrt.shape).index(tuple(int(a) for a in at))
        values = d.array()[:, column]
        signs = ctx.signs()
        if signs:
            values = values.applyfunc(lambda v: apply_signs(v, ctx.expanded_signs()))
            steps.append(Step("", _given_sentence(ctx, signs)))
        rows, cols = matrix_view(of.shape)
        array = values.reshape(rows, cols)
        label = rf"\frac{{\partial {of.tex}}}{{\partial {entry(wrt.name, at, ctx.base)}}}"
        steps.append(Step(f"{label} = {matrix(array, ctx.base)}", "at each entry of " + of.name))
        results.append(Result("array", array, f"{label} = {matrix(array, ctx.base)}", Kind.ENTRIES))
    return ctx.answer(results, steps, conventions={"zero_outside"})


def _given_sentence(ctx, signs):
    shown_signs = ", ".join(ctx.show(e) + (" > 0" if v > 0 else " < 0") for e, v in signs.items())
    return f"given ${shown_signs}$: the ReLU mask " + r"$\mathbf{1}\{z > 0\}$ is 1 where $z > 0$ and 0 where $z < 0$"


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    import numpy as np
    from ..backprop import delta_values
    from ..tensors import flat_positions
    from ..verify.formulas import answer_indices, autograd_draws, compare_pairs
    from ..verify.job import (Mismatch, as_int, engine_value, entry_label, flat_index, jacobian_rows, sampled_rows,
                              sparse_values)
    of = job.ctx.tensor("of")
    wrt, at = job.ctx.tensor_or_entry("wrt")
    signs = job.ctx.signs() if job.question.option("given") else {}
    formula, array, dimension = job.result(Kind.ELEMENT), job.result(Kind.ENTRIES), job.result(Kind.SHAPE)
    bp = stack(job.ctx, of, wrt, at, signs)
    if bp is not None and formula == bp.gradient.value:        # the δ form: each δ from its step, top down
        out_idx, wrt_idx = bp.out_idx, bp.wrt_idx
    else:
        bp = None
        out_idx, wrt_idx = answer_indices(of, wrt, formula, job.ctx.declared_names())
    out_names, wrt_names = [i.name for i in out_idx], [i.name for i in wrt_idx]
    base = job.problem.index_base
    for sizes, values, forward, variable in autograd_draws(job, of, wrt, signs=signs):
        try:
            of_shape = tuple(job.graph(sizes, values).num(n) for n in of.shape)
        except Mismatch:
            return
        wrt_shape = tuple(variable.shape)
        n_out = int(np.prod(of_shape, dtype=int))
        if at is None:
            rows = sampled_rows(n_out, job.rng)
            J = jacobian_rows(forward, variable, rows)           # rows of the numel(y) x numel(x) Jacobian
            if dimension is not None:
                shape = tuple(as_int(n, sizes) for n in dimension)
                if shape != of_shape + wrt_shape:
                    job.shape_mismatch("the dimension of the Jacobian", shape, of_shape + wrt_shape)
            if bp is not None:
                delta_values(bp, values, sizes)
            if array is not None and not sizes:
                dense = sparse_values(sp.SparseMatrix(array), values, rows)
                job.compare("the Jacobian array", dense, J,
                            [f"row {r + base}, column {c + base}" for r in rows for c in range(J.shape[1])])
            compare_pairs(job, f"the element formula d{of.name}/d{wrt.name}", formula, values, sizes,
                          out_names + wrt_names, [flat_positions(of_shape)[r] for r in rows], J, of, wrt)
        else:
            column = flat_index(tuple(int(a) for a in at), wrt_shape)
            rows = list(range(n_out))
            J = jacobian_rows(forward, variable, rows)[:, column]
            entry = entry_label(wrt.name, tuple(int(a) for a in at), base)
            if array is not None and not sizes:
                engine = [engine_value(v, values) for v in sp.Matrix(array)]
                job.compare(f"d{of.name}/d{entry} (array" + (", given signs)" if signs else ")"), engine, J,
                            [entry_label(of.name, p, base) for p in flat_positions(of_shape)])
            positions = flat_positions(of_shape)
            engine = [engine_value(formula, values, sizes, dict(zip(out_names, p))) for p in positions]
            job.compare(f"the element formula d{of.name}/d{entry}", engine, J,
                        [entry_label(of.name, p, base) for p in positions])
