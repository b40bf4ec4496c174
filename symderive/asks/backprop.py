"""ask: backprop — the gradient of a loss through a stack of layers, one δ step per layer.

The forward layers keep their names; each δ step is the chain rule through the layers that
read that layer only (``symderive.backprop``), so the derivation grows with the depth and no
faster. The answer's element formula is the last step, written with the δ of the layer above.
"""
import sympy as sp

from ..answer import Kind, Result, Step
from ..backprop import backprop
from ..errors import ExpressionError
from ..latex import dims, entry, partial, tex_name
from ..yaml_positions import position

KEYS = {"of", "wrt", "forward"}


def _delta_entry(step, ctx):
    return entry(step.delta.name, step.idx, ctx.base)


def _shapes(bp):
    """Shapes by name of everything a step may name: leaves, layers, δ tensors, ŷ."""
    nodes = [bp.of] + list(bp.of.layer_inputs().values()) + list(bp.of.leaves().values()) + [bp.wrt]
    shapes = {n.name: n.shape for n in nodes if n.shape}
    shapes.update({s.delta.name: s.delta.shape for s in bp.steps if s.delta.shape})
    shapes.update({aux.name: aux.shape for aux, _ in bp.auxiliaries})
    return shapes


def vector_form(step, shapes, ctx):
    """The step in vectors and matrices (δ^z = δ^a ⊙ a ⊙ (1 − a), ∂L/∂W = δ^z xᵀ), or None.

    Checked like every matrix form, against the step's own index formula at random sizes and
    values; every name in the step is an independent input there, so what is checked is the
    rewrite itself. A form that still needs a sum (ŷ Σp − p) is left to the index formula."""
    from ..matrix_form import NotConvertible, check, latex_in_base, to_matrix, to_vector
    from .matrix_view import MATRIX_FORM_TOLERANCE
    if not 1 <= len(step.idx) <= 2:
        return None
    try:
        node = to_vector(step.value, step.idx[0]) if len(step.idx) == 1 else to_matrix(step.value, *step.idx)
        latex = latex_in_base(node, ctx.base)
        if r"\sum" in latex:
            return None
        sizes = sorted({s for shape in shapes.values() for n in shape for s in sp.sympify(n).free_symbols}, key=str)
        error = check(node, step.value, step.idx, shapes, sizes)
    except NotConvertible:
        return None
    except Exception:        # a form that cannot be evaluated is not shown: never an unchecked form
        return None
    return (latex, error) if error <= MATRIX_FORM_TOLERANCE else None


def _through(step):
    """Which layers the step's chain rule goes through, in words."""
    if len(step.readers) == 1:
        return f"chain rule through {step.readers[0]}, the layer that reads {step.layer.name}"
    return f"chain rule through {', '.join(step.readers)}, the layers that read {step.layer.name} (one term each)"


def backward_steps(bp, ctx, forward=True, upstream_note=None, loss=None):
    """The sheet's backward pass: the forward layers kept as names (with ``forward``), the named
    sub-expressions (ŷ), then one δ step per layer from the top down, each with its vector form
    when one checks out; the last step is the gradient by ``wrt``. ``loss`` names what is
    differentiated when it is not ``of`` (a chain rule's l). Shared by backprop, derivative and
    chain_rule (through a stack)."""
    of = bp.of
    loss_name = str(loss or of.name)
    steps = []
    if forward:
        for layer in [s.layer for s in reversed(bp.steps[:-1])] + [of]:
            if not layer.is_layer:
                continue
            idx = layer.free_indices()
            steps.append(Step(f"{entry(layer.name, idx, ctx.base)} = {ctx.show(layer.element(idx, expand=False))}",
                              f"forward ({layer.describe()}), kept as a name"))
    for aux, why in bp.auxiliaries:
        idx = aux.free_indices()
        steps.append(Step(f"{entry(aux.name, idx, ctx.base)} = {ctx.show(aux.element(idx, expand=False))}", why))
    if bp.out_idx:
        out = ", ".join(i.name for i in bp.out_idx)
        steps.append(Step("", f"each δ carries the output's indices {out} first: δ^z[{out}, …] = "
                              f"∂{of.name}[{out}]/∂z[…], from δ^{of.name}[{out}, c…] = δ({out}; c…)"))
    elif upstream_note:
        steps.append(Step("", upstream_note))
    loss = tex_name(loss_name)
    n_out = len(bp.out_idx)
    shapes, worst = _shapes(bp), None
    for step in bp.steps:
        gradient = step is bp.gradient
        lhs = partial(loss_name, step.idx[:n_out], step.layer.name,
                      step.idx[n_out:], ctx.base)
        shown = f"{lhs} = {ctx.show(step.value)}" if gradient else \
            f"{_delta_entry(step, ctx)} = {lhs} = {ctx.show(step.value)}"
        why = f"the gradient: {_through(step)}" if gradient else f"δ of {step.layer.name}: {_through(step)}"
        if step.value.has(sp.Heaviside):
            why += "; the mask $\\mathbf{1}\\{z > 0\\}$ is ReLU$'$ (0 at $z = 0$, as PyTorch)"
        form = None if n_out else vector_form(step, shapes, ctx)
        if form is not None:
            name = rf"\frac{{\partial {loss}}}{{\partial {step.layer.tex}}}" if gradient else step.delta.tex
            shown += rf", \quad {name} = {form[0]}"
            worst = max(worst or 0.0, form[1])
        steps.append(Step(shown, why))
    if worst is not None:
        steps.append(Step("", "the forms in vectors and matrices (numerator layout; ⊙ entry by entry) are checked "
                              f"against each step's index formula at random sizes and values, max error {worst:.1e}"))
    steps.append(Step("", f"{len(bp.steps) - 1} δ steps, {bp.size()} operations in all (SymPy count_ops); "
                          "each δ is defined by the step that names it"))
    if not bp.out_idx:          # a Jacobian's δ's carry the output's indices: the checker reads them as given
        _record_deltas(bp, ctx, loss)
    return steps


def solve(ctx):
    of, wrt = ctx.tensor("of"), ctx.tensor("wrt")
    if not of.is_layer or of.shape:
        raise ExpressionError(f"'of' must name a scalar loss layer; {of.name} "
                              + ("has shape " + "×".join(map(str, of.shape)) if of.is_layer else "is not a layer"),
                              *position(ctx.option("of")))
    try:
        bp = backprop(of, wrt)
    except ValueError as exc:
        raise ExpressionError(str(exc), *position(ctx.option("wrt"))) from None
    steps = backward_steps(bp, ctx, forward=ctx.flag("forward", True))
    loss = tex_name(of.name)
    last = bp.gradient
    lhs = partial(of.name, (), wrt.name, last.idx, ctx.base)
    results = [
        Result("element", last.value, f"{lhs} = {ctx.show(last.value)}", Kind.ELEMENT,
               axes=tuple(("wrt", i) for i in last.idx)),
        Result("dimension", wrt.shape, rf"\frac{{\partial {loss}}}{{\partial {wrt.tex}}} \in {dims(wrt.shape)}",
               Kind.SHAPE),
    ]
    return ctx.answer(results, steps, conventions={"gradient_shape", "zero_outside"})


def _record_deltas(bp, ctx, loss):
    """The names the steps define, for the checker (``course_forms.Intermediate``): each named sub-expression
    (ŷ) and each δ, top down, so that an answer written out without the δ's is graded too."""
    from ..course_forms import Intermediate
    for aux, why in bp.auxiliaries:
        idx = aux.free_indices()
        ctx.intermediates[aux.name] = Intermediate(aux.name, aux.tex, tuple(aux.shape), tuple(idx),
                                                   aux.element(idx, expand=False), f"${aux.tex}$: {why}")
    for step in bp.steps[:-1]:
        ctx.intermediates[step.delta.name] = Intermediate(
            step.delta.name, step.delta.tex, tuple(step.layer.shape), tuple(step.idx), step.value,
            rf"${step.delta.tex} = \partial {loss} / \partial {step.layer.tex}$", computed=True)


# The --verify cross-check (torch and the verify helpers are imported when it runs): the δ-form
# formula, with every δ computed from its own step top down (NumPy), against torch autograd.
def check(job):
    from ..backprop import delta_values
    from ..verify.formulas import autograd_draws
    from ..verify.job import as_int, engine_value, entry_label, sample_positions, vjp
    from ..verify.report import MAX_ENTRIES
    of, wrt = job.ctx.tensor("of"), job.ctx.tensor("wrt")
    formula, dimension = job.result(Kind.ELEMENT), job.result(Kind.SHAPE)
    bp = backprop(of, wrt)
    names = [i.name for i in bp.wrt_idx]
    base = job.problem.index_base
    for sizes, values, forward, variable in autograd_draws(job, of, wrt):
        grad = vjp(forward, variable, 1.0)
        wrt_shape = tuple(variable.shape)
        if dimension is not None:
            shape = tuple(as_int(n, sizes) for n in dimension)
            if shape != wrt_shape:
                job.shape_mismatch(f"the shape of d{of.name}/d{wrt.name}", shape, wrt_shape)
        delta_values(bp, values, sizes)
        positions = sample_positions(wrt_shape, MAX_ENTRIES, job.rng)
        engine = [engine_value(formula, values, sizes, dict(zip(names, p))) for p in positions]
        job.compare(f"the δ-form formula d{of.name}/d{wrt.name}, each δ from its step", engine,
                    [grad[p] for p in positions], [entry_label(wrt.name, p, base) for p in positions])


def delta_form_element(bp, ctx, loss=None):
    """The answer in δ form: the last step, written with the δ of the layers above it (each
    defined by its own step on the sheet), as an element Result."""
    last = bp.gradient
    loss = str(loss or bp.of.name)
    lhs = partial(loss, bp.out_idx, bp.wrt.name, bp.wrt_idx, ctx.base)
    return Result("element", last.value, f"{lhs} = {ctx.show(last.value)}", Kind.ELEMENT,
                  axes=tuple(("of", i) for i in bp.out_idx) + tuple(("wrt", i) for i in bp.wrt_idx))


def closed_or_delta_note(bp, closed_chars=None):
    """Why the answer is the closed formula or the δ form (``through_stack``'s rule, on the sheet)."""
    from ..backprop import CLOSED_MAX_CHARS, CLOSED_MAX_DEPTH
    if closed_chars is None:
        return (f"the answer is the δ form: through {bp.depth} layers (more than {CLOSED_MAX_DEPTH}) the "
                "stack written out as one closed formula grows about 3× a layer; each δ is defined by its "
                "step above, computed from the top down")
    if closed_chars > CLOSED_MAX_CHARS:
        return (f"the answer is the δ form: the closed formula is {closed_chars} characters long (over "
                f"{CLOSED_MAX_CHARS}); each δ is defined by its step above, computed from the top down")
    return ("the δ steps expanded into one closed formula (the stack written out and differentiated once, "
            f"affordable through {bp.depth} layers); it equals the δ form")
