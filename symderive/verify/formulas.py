"""Helpers shared by the cross-checks of the index-formula asks (derivative, chain_rule, backprop, hessian,
conv_matrix, backward_matrix, backward_conv): the engine's index names, the function
wrt -> of in torch, and element formulas against rows of an autograd Jacobian."""
from ..derivative import derivative, derivative_indices
from ..tensors import flat_positions
from ..torch_ops import VerifyError
from .job import Mismatch, as_int, engine_value, entry_label, flat_index, free_indices
from .report import FORMULA_DRAWS, MAX_ENTRIES


def answer_indices(of, wrt, formula, avoid=()):
    """The index symbols of ∂of/∂wrt as the engine names them: (output indices, wrt indices).

    Read off the element expression the derivative starts from (cheap); the full derivative is
    recomputed only if the answer's formula uses other free indices."""
    try:
        out_idx, _, wrt_idx = derivative_indices(of, wrt, avoid)
        if free_indices(formula) <= {i.name for i in out_idx + wrt_idx}:
            return out_idx, wrt_idx
    except Exception:      # the engine's internals changed: ask it the slow way
        pass
    d = derivative(of, wrt, avoid)
    return d.out_idx, d.wrt_idx


def compare_pairs(job, what, formula, values, sizes, names, out_positions, J, of, wrt):
    """An element formula at (output, input) index pairs against rows of the autograd Jacobian:
    row k of ``J`` belongs to the output position ``out_positions[k]``."""
    wrt_shape = tuple(as_int(n, sizes) for n in wrt.shape)
    pairs = [(k, p, q) for k, p in enumerate(out_positions) for q in flat_positions(wrt_shape)]
    if len(pairs) > MAX_ENTRIES:
        pairs = [pairs[i] for i in sorted(job.rng.choice(len(pairs), MAX_ENTRIES, replace=False))]
    engine = [engine_value(formula, values, sizes, dict(zip(names, p + q))) for _, p, q in pairs]
    base = job.problem.index_base
    job.compare(f"{what} at (output, input) index pairs", engine, [J[k, flat_index(q, wrt_shape)] for k, _, q in pairs],
                [f"{entry_label(of.name, p, base)} by {entry_label(wrt.name, q, base)}" for _, p, q in pairs])


def conv_setup(job):
    """For the convolution asks: (layer, sizes, values, x -> y in torch, x as a torch leaf, y's shape),
    or None when a shape already disagrees."""
    layer = job.ctx.tensor("of")
    job.autograd = True
    (sizes,) = job.draw_sizes([layer], 1)
    try:
        values, forward, variable = differentiable_setup(job, layer, layer.x, sizes)
        y_shape = tuple(job.graph(sizes, values).get(layer).shape)
    except Mismatch:
        return None
    return layer, sizes, values, forward, variable, y_shape


def signs_ok(job, graph, signs):
    for entry, sign in signs.items():
        node = job.decls.lookup(entry.base.label.name)
        value = float(graph.get(node)[tuple(int(i) for i in entry.indices)])
        if value * sign <= 0:
            return False
    return True


def differentiable_setup(job, of, wrt, sizes, extra=(), signs=None):
    """Random values (meeting the sign conditions, if any) and the function wrt -> of in torch."""
    extra = list(extra) + ([(wrt.name, wrt.shape)] if wrt.is_layer else [])
    for _ in range(1000 if signs else 1):
        values = job.values([of, wrt], sizes, extra)
        if not signs or signs_ok(job, job.graph(sizes, values, override={wrt.name} if wrt.is_layer else ()),
                                  signs):
            break
    else:
        raise VerifyError("could not draw random inputs that meet the given sign conditions")

    def forward(v):
        graph = job.graph(sizes, values, override={wrt.name})
        graph.cache[wrt.name] = v
        return graph.get(of)

    variable = job.graph(sizes, values).leaf(wrt.name, requires_grad=True)
    return values, forward, variable


def autograd_draws(job, of, wrt, extra=(), signs=None):
    """The cross-check loop of the gradient asks (derivative, chain_rule, backprop, hessian): for each
    drawn set of sizes, (sizes, values, wrt -> of in torch, wrt as a torch leaf); it stops at a shape
    that already disagrees (reported as such by ``differentiable_setup``)."""
    job.autograd = True
    for sizes in job.draw_sizes([of, wrt], FORMULA_DRAWS):
        try:
            values, forward, variable = differentiable_setup(job, of, wrt, sizes, extra, signs)
        except Mismatch:
            return
        yield sizes, values, forward, variable
