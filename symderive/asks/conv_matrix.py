"""ask: conv_matrix — the matrix A with vec(y) = A·vec(x), or X with vec(y) = X·vec(w) (im2col)."""
from ..answer import Result, Step
from ..conv_matrix import conv_matrix, im2col_matrix, structure_latex
from ..derivative import derivative
from ..errors import ExpressionError
from ..latex import entry, matrix, too_large
from ..yaml_positions import position


def matrix_result(sparse, layer, ctx, name):
    """(latex, why) for a sparse symbol matrix: in full when small, else its structure."""
    dense = sparse.to_sympy()
    if not too_large(dense):
        return f"{name} = {matrix(dense, ctx.base)}", "built entry by entry from the index arithmetic"
    lines = structure_latex(layer, sparse)
    return (f"{name} \\in \\mathbb{{R}}^{{{sparse.shape[0]} \\times {sparse.shape[1]}}}:\\ "
            + r",\ ".join(lines), "too large to print in full; the element formula gives every entry")


def solve(ctx):
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
    position = f"({','.join(i.name for i in d.out_idx)}),({','.join(i.name for i in d.wrt_idx)})"
    steps = [
        Step(f"{entry(layer.name, d.out_idx, ctx.base)} = {ctx.show(d.element)}", "the convolution"),
        Step(rf"{name} = \frac{{\partial\, \mathrm{{vec}}({layer.name})}}{{\partial\, \mathrm{{vec}}({wrt.name})}}",
             f"{layer.name} is linear in {wrt.name}" + (" (the bias does not depend on it)"
                                                       if layer.bias is not None else "")),
        Step(f"{name}_{{{position}}} = {ctx.show(d.value)}",
             f"entry formula: the contracted derivative; row ({', '.join(i.name for i in d.out_idx)}) is "
             f"the position of {layer.name}'s entry in vec({layer.name}), column likewise in vec({wrt.name})"),
    ]
    shown, why = matrix_result(sparse, layer, ctx, name)
    steps.append(Step("", why + f"; {sparse.nnz} nonzero entries"))
    results = [Result("matrix", sparse.to_sympy(), shown),
               Result("element", d.value, f"{name}_{{{position}}} = {ctx.show(d.value)}")]
    return ctx.answer(results, steps, conventions={"flatten", "zero_outside", "layout"})
