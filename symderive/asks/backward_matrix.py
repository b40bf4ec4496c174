"""ask: backward_matrix — B with ∂L/∂vec(x) = B·∂L/∂vec(y), derived by the chain rule; B = Aᵀ
verified exactly at the given sizes and proved at the index level for all sizes."""
import sympy as sp

from ..answer import Kind, Result, Status, Step
from ..derivative import chain_rule
from ..latex import partial
from .conv_matrix import matrix_result


KEYS = {"of"}

def solve(ctx):
    # imported here, not at the top: loading a problem file (list) must not import NumPy
    from ..backward import check_transpose, prove_transpose
    from ..conv_matrix import size_names, symbolic_twin
    layer = ctx.tensor("of")
    c = chain_rule(layer, layer.x, "g")
    b, a, equal, difference = check_transpose(layer)
    lhs = partial("L", (), layer.x.name, c.local.wrt_idx, ctx.base)
    steps = [
        Step(f"{lhs} = {ctx.show(c.value)}", "chain rule with g = ∂L/∂y, deltas contracted"),
        Step(r"B[i, j] = \text{coefficient of } g_j \text{ in } \partial L/\partial x_i",
             "definition of B: ∂L/∂vec(x) = B · vec(g)"),
    ]
    result, why = matrix_result(b.matrix, layer, ctx, "B", "B", layer.x.shape, layer.shape, label="B")
    steps.append(Step("", why + f"; {b.matrix.nnz} nonzeros, read off the closed form above"))
    results = [result]
    if not equal:
        row, col, mine, theirs = difference
        steps.append(Step(rf"B_{{{row + ctx.base},{col + ctx.base}}} = {sp.latex(mine)} \neq "
                          rf"(A^T)_{{{row + ctx.base},{col + ctx.base}}} = {sp.latex(theirs)}",
                          "counterexample at the given sizes"))
        return ctx.answer(results, steps, status=Status.FAILED,
                          detail="B = A^T does not hold at the given sizes.")
    steps.append(Step(r"B = A^T", f"checked exactly at the given sizes: all {b.matrix.nnz} "
                                  "nonzeros of B equal those of A^T, A built from the forward sum"))
    twin = symbolic_twin(layer)
    a_el, b_el, proved = prove_transpose(twin)
    sizes = size_names(twin)
    if proved:
        steps.append(Step(rf"A[j, i] = \frac{{\partial y_j}}{{\partial x_i}} = {ctx.show(a_el)}",
                          f"for all sizes ({sizes} symbolic): y is linear in x"))
        steps.append(Step(rf"B[i, j] = \frac{{\partial}}{{\partial g_j}} \frac{{\partial L}}{{\partial x_i}}"
                          rf" = {ctx.show(b_el)}",
                          "the chain-rule sum differentiated by g_j, deltas contracted"))
        steps.append(Step(r"B[i, j] = A[j, i]", "the two closed forms agree term by term"))
        status, detail = Status.PROVED, (f"At the index level, for all sizes ({sizes}); "
                                         "also verified exactly at the given sizes.")
    else:
        status, detail = (Status.VERIFIED,
                          "Verified exactly at the given sizes only; the index-level proof did not close.")
    results.append(Result("identity", True, r"B = A^{T}", Kind.FACT))
    return ctx.answer(results, steps, status=status, detail=detail,
                      conventions={"flatten", "zero_outside"})


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    import numpy as np
    from ..verify.formulas import conv_setup
    from ..verify.job import jacobian_rows, sampled_rows, sparse_values, vjp
    B = job.result(Kind.ENTRIES)
    base = job.problem.index_base
    setup = conv_setup(job)
    if setup is None:
        return
    layer, sizes, values, forward, variable, y_shape = setup
    n_y = int(np.prod(y_shape, dtype=int))
    if B is None:
        job.reason = "the answer has no matrix B"
        return
    if tuple(B.shape) != (variable.numel(), n_y):
        job.shape_mismatch("the shape of B", B.shape, (variable.numel(), n_y))
        return
    columns = sampled_rows(n_y, job.rng)
    # Column j of B is dL/dvec(x) for the upstream gradient g = e_j: one backward pass each.
    J = jacobian_rows(forward, variable, columns)
    dense = sparse_values(B.T, values, columns)
    job.compare("B's columns with dL/dx from autograd's backward pass with g = e_j"
                + (f" ({len(columns)} random j)" if len(columns) < n_y else ""), dense, J,
                [f"B[{c + base}, {r + base}]" for r in columns for c in range(J.shape[1])])
    g = job.random(y_shape)
    full = sparse_values(B, values) @ g.reshape(-1)
    job.compare("B g with autograd's dL/dx for a random g", full, vjp(forward, variable, g),
                [f"row {r + base}" for r in range(len(full))])
