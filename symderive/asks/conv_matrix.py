"""ask: conv_matrix — the matrix A with vec(y) = A·vec(x), or X with vec(y) = X·vec(w) (im2col)."""
from ..answer import Kind, Result, Step
from ..derivative import derivative
from ..errors import ExpressionError
from ..latex import entry, matrix, too_large
from ..yaml_positions import position

#: At most this many blocks are printed; beyond it a matrix is described, not shown.
MAX_BLOCKS = 16


KEYS = {"of", "matrix", "name"}

def matrix_result(sparse, layer, ctx, name, kind, row_shape, col_shape, label="matrix"):
    """The Result (ENTRIES) of a sparse symbol matrix, and why it is shown so: whole when small, else by
    blocks (each labelled with its place, for grading too), else summarised."""
    from ..conv_matrix import blocks, structure_latex
    dense = sparse.to_sympy()
    size = rf"{name} \in \mathbb{{R}}^{{{sparse.shape[0]} \times {sparse.shape[1]}}}"
    if not too_large(dense):
        return Result(label, dense, f"{name} = {matrix(dense, ctx.base)}", Kind.ENTRIES), \
            "built entry by entry from the index arithmetic"
    found, (r, c), (nr, nc) = blocks(sparse, row_shape, col_shape)
    if found and len(found) <= MAX_BLOCKS:
        def block_label(rl, cl):
            parts = [",".join(str(v + ctx.base) for v in rl), ",".join(str(v + ctx.base) for v in cl)]
            return f"{name}^{{({';'.join(p for p in parts if p)})}}"
        shown = [f"{block_label(rl, cl)} = {matrix(b, ctx.base)}" for rl, cl, b, _ in found]
        places = tuple((name, tuple(v + ctx.base for v in rl + cl), at[0], at[1], r, c) for rl, cl, _, at in found)
        why = (f"{nr} × {nc} blocks of size {r} × {c}, grouped by the leading indices of the rows' and "
               f"columns' tensors" + (f"; the {len(found)} nonzero ones are shown, the other "
                                       f"{nr * nc - len(found)} are zero" if len(found) < nr * nc else "")
               + "; "
               + structure_latex(kind, layer, sparse))
        latex = size + r",\quad \begin{gathered}" + r" \\ ".join(shown) + r"\end{gathered}"
        return Result(label, dense, latex, Kind.ENTRIES, blocks=places), why
    return Result(label, dense, size, Kind.ENTRIES), \
        (f"too large to print: {sparse.nnz} nonzeros in {nr} × {nc} blocks of size {r} × {c}; "
         + structure_latex(kind, layer, sparse) + "; the element formula gives every entry")


def solve(ctx):
    # imported here, not at the top: loading a problem file (list) must not import NumPy
    from ..conv_matrix import conv_matrix, im2col_matrix
    layer = ctx.tensor("of")
    which = ctx.option("matrix", "A")
    if which not in ("A", "im2col"):
        raise ExpressionError("'matrix' is A (vec(y) = A vec(x)) or im2col (vec(y) = X vec(w))",
                              *position(which))
    wrt = layer.x if which == "A" else layer.weight
    name = ctx.option("name", which if which == "A" else "X")
    if not isinstance(name, str) or not name.isidentifier():
        raise ExpressionError("'name' is the matrix's name, e.g. F", *position(name))
    sparse = conv_matrix(layer) if which == "A" else im2col_matrix(layer)
    d = derivative(layer, wrt)
    at = f"({','.join(i.name for i in d.out_idx)}),({','.join(i.name for i in d.wrt_idx)})"
    steps = [
        Step(f"{entry(layer.name, d.out_idx, ctx.base)} = {ctx.show(d.element)}", "the convolution"),
        Step(rf"{name} = \frac{{\partial\, \mathrm{{vec}}({layer.tex})}}{{\partial\, \mathrm{{vec}}({wrt.tex})}}",
             f"{layer.name} is linear in {wrt.name}" + (" (the bias does not depend on it)"
                                                       if layer.bias is not None else "")),
        Step(f"{name}_{{{at}}} = {ctx.show(d.value)}",
             f"entry formula: the contracted derivative; row ({', '.join(i.name for i in d.out_idx)}) is "
             f"the position of {layer.name}'s entry in vec({layer.name}), column likewise in vec({wrt.name})"),
    ]
    result, why = matrix_result(sparse, layer, ctx, name, "A" if which == "A" else "X",
                                layer.shape, wrt.shape)
    steps.append(Step("", why + f"; {sparse.nnz} nonzero entries"))
    results = [result,
               Result("element", d.value, f"{name}_{{{at}}} = {ctx.show(d.value)}", Kind.ELEMENT,
                      axes=tuple(("of", i) for i in d.out_idx) + tuple(("wrt", i) for i in d.wrt_idx))]
    return ctx.answer(results, steps, conventions={"flatten", "zero_outside", "layout"})


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    layer = job.ctx.tensor("of")
    which = job.question.option("matrix", "A")
    check_matrix(job, layer, layer.x if which == "A" else layer.weight,
                 job.question.option("name", "A" if which == "A" else "X"))


def check_matrix(job, layer, wrt, name, op=""):
    """The answer's matrix (``Kind.ENTRIES``) and entry formula (``Kind.ELEMENT``) against the
    Jacobian d vec(layer)/d vec(wrt) from autograd (``op`` names the torch function, if any)."""
    import numpy as np
    from ..tensors import flat_positions
    from ..verify.formulas import answer_indices, compare_pairs, differentiable_setup
    from ..verify.job import Mismatch, jacobian_rows, sampled_rows, sparse_values
    matrix, formula = job.result(Kind.ENTRIES), job.result(Kind.ELEMENT)
    names = [i.name for idx in answer_indices(layer, wrt, formula) for i in idx]
    base = job.problem.index_base
    job.autograd = True
    (sizes,) = job.draw_sizes([layer], 1)
    try:
        values, forward, variable = differentiable_setup(job, layer, wrt, sizes)
        of_shape = tuple(job.graph(sizes, values).get(layer).shape)
    except Mismatch:
        return
    rows = sampled_rows(int(np.prod(of_shape, dtype=int)), job.rng)
    J = jacobian_rows(forward, variable, rows)
    if matrix is not None:
        if tuple(matrix.shape) != (int(np.prod(of_shape, dtype=int)), variable.numel()):
            job.shape_mismatch(f"the shape of {name}", matrix.shape, (int(np.prod(of_shape)), variable.numel()))
            return
        job.compare(f"{name} with the Jacobian d vec({layer.name})/d vec({wrt.name})" + (f" of {op}" if op else "")
                    + " from autograd" + (f" ({len(rows)} random rows)" if len(rows) < matrix.rows else ""),
                    sparse_values(matrix, values, rows), J,
                    [f"row {r + base}, column {c + base}" for r in rows for c in range(J.shape[1])])
    if formula is not None:
        compare_pairs(job, f"the entry formula of {name}", formula, values, sizes, names,
                      [flat_positions(of_shape)[r] for r in rows], J, layer, wrt)
