"""ask: conv_transpose_matrix — the matrix T with vec(y) = T·vec(x) of a transposed convolution,
and T = Aᵀ for A the matrix of the convolution with the same weight, stride, padding and dilation
that maps y's shape back to x's: verified exactly at the given sizes (T read off the transposed
convolution's own scatter formula, A built from the convolution's forward sum) and proved at the
index level for all sizes (T[(o,i),(c,j)] = ∂y[o,i]/∂x[c,j] and A[(c,j),(o,i)] = ∂z'[c,j]/∂z[o,i]
have the same closed form)."""
import sympy as sp

from ..answer import Kind, Result, Status, Step
from ..errors import ExpressionError, ShapeError
from ..latex import entry
from ..yaml_positions import key_position

KEYS = {"of"}


def matching_conv(layer, input_name="z", name="u"):
    """The convolution A of the same weight, stride, padding and dilation on an input ``z`` of y's
    shape (without the batch axis): conv(z, w) has x's shape when output_padding < stride."""
    from ..layers import Conv
    from ..tensors import Tensor
    z = Tensor(input_name, tuple(layer.shape[1:] if layer.batch else layer.shape))
    return Conv(name, z, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.dims)


def scatter_matrix(layer):
    """T read off the transposed convolution's own formula (its contracted entry y[o, i…] is a sum of
    w[c, o, k]·x[c, j] terms), at concrete sizes."""
    from ..backward import matrix_from_chain_rule
    from ..contract import contract
    from ..indices import indices_for
    from ..tensors import Tensor
    idx = indices_for(layer.shape, layer.reserved_names(), ("i", "j", "p", "q", "r"))
    closed = contract(layer.element(idx))
    if layer.bias is not None:
        closed = closed - layer.bias.base[idx[0]]
    return matrix_from_chain_rule(closed, Tensor(layer.name, layer.shape), idx, layer.x, layer.weight)


def symbolic_twin(layer):
    """The same transposed convolution with every size and hyperparameter a symbol: channels C (in)
    and O (out), lengths L (or H, W), kernel K, stride S, padding P, dilation D, output padding Q."""
    from ..layers.conv_transpose import ConvTranspose
    from ..conv_matrix import symbolic_hyperparameters
    from ..tensors import Tensor, size_symbol
    spatial, kernel, stride, padding, dilation = symbolic_hyperparameters(layer.dims)
    extra = tuple(sp.Symbol("Q" + a, integer=True, nonnegative=True) for a in ([""] if layer.dims == 1
                                                                                else ["_1", "_2"]))
    C, O = size_symbol("C"), size_symbol("O")
    x, w = Tensor(layer.x.name, (C,) + spatial), Tensor(layer.weight.name, (C, O) + kernel)
    return ConvTranspose(layer.name, x, w, None, stride, padding, extra, dilation, layer.dims)


def prove_transpose_of_conv(layer):
    """(T element, A element, proved) for ``layer``'s sizes (symbolic or not): T[(o,i…),(c,j…)] =
    ∂y[o,i…]/∂x[c,j…] and A[(c,j…),(o,i…)] = ∂u[c,j…]/∂z[o,i…] for u = conv(z, w), in the same
    indices, compared term by term in normal form (``contract.same_terms``)."""
    from ..contract import contract, same_terms
    from ..derivative import derivative
    from ..indices import substitute
    conv = matching_conv(layer)
    t = derivative(layer, layer.x)
    a = derivative(conv, conv.x)
    # A's row is (c, j…) = T's column, A's column (o, i…) = T's row.
    renamed = substitute(a.value, {**dict(zip(a.out_idx, t.wrt_idx)), **dict(zip(a.wrt_idx, t.out_idx))})
    t_el, a_el = contract(t.value), contract(renamed)
    return t, t_el, a_el, same_terms(t_el, a_el)


def solve(ctx):
    # imported here, not at the top: loading a problem file (list) must not import NumPy
    from ..conv_matrix import concrete_layer, conv_matrix, size_names
    from ..layers.conv_transpose import ConvTranspose
    from .conv_matrix import matrix_result
    layer = ctx.tensor("of")
    if not isinstance(layer, ConvTranspose):
        raise ExpressionError(f"'{layer.name}' is a {layer.kind}, not a transposed convolution "
                              "(conv_transpose1d or conv_transpose2d)", *key_position(ctx.question.spec, "of"))
    if layer.groups != 1:
        raise ExpressionError(f"conv_transpose_matrix: '{layer.name}' has groups {layer.groups}; the matrix and "
                              "its proof T = Aᵀ are for groups=1 only", *key_position(ctx.question.spec, "of"))
    if layer.batch:
        raise ExpressionError(f"the matrix of '{layer.name}' acts on one example: declare its input "
                              "without the batch axis", *key_position(ctx.question.spec, "of"))
    conv = matching_conv(layer)
    try:
        concrete_layer(conv)
    except ShapeError as exc:
        raise ExpressionError(exc.message, *key_position(ctx.question.spec, "of")) from None
    if tuple(sp.sympify(n) for n in conv.shape) != tuple(sp.sympify(n) for n in layer.x.shape):
        raise ExpressionError(
            f"the convolution with the same stride, padding and dilation maps {layer.name}'s shape to "
            f"{conv.shape}, not {layer.x.name}'s {layer.x.shape} (output_padding ≥ stride), so no A has "
            "T = Aᵀ", *key_position(ctx.question.spec, "of"))
    T = scatter_matrix(layer)
    A = conv_matrix(conv)
    equal = T.equals(A.transpose())
    t, t_el, a_el, proved_here = prove_transpose_of_conv(layer)
    at = f"({','.join(i.name for i in t.out_idx)}),({','.join(i.name for i in t.wrt_idx)})"
    z_shape = r" \times ".join(map(sp.latex, conv.x.shape))
    steps = [
        Step(f"{entry(layer.name, t.out_idx, ctx.base)} = {ctx.show(t.element)}",
             "the transposed convolution: x[c, j] is scattered to y[o, s·j + d·k − p] with weight w[c, o, k]"),
        Step(f"T_{{{at}}} = {ctx.show(t_el)}", f"T = ∂vec({layer.name})/∂vec({layer.x.name}), read off the "
                                                "formula (y is linear in x)"),
        Step(rf"u = \mathrm{{conv{layer.dims}d}}(z, {layer.weight.tex}), \quad "
             rf"z \in \mathbb{{R}}^{{{z_shape}}}",
             "the convolution with the same weight, stride, padding and dilation; it maps "
             f"{layer.name}'s shape back to {layer.x.name}'s; A = ∂vec(u)/∂vec(z)"),
    ]
    result, why = matrix_result(T, layer, ctx, "T", "B", layer.shape, layer.x.shape)
    steps.append(Step("", why + f"; {T.nnz} nonzeros, read off the transposed convolution's own formula"))
    results = [result,
               Result("element", t.value, f"T_{{{at}}} = {ctx.show(t_el)}", Kind.ELEMENT,
                      axes=tuple(("of", i) for i in t.out_idx) + tuple(("wrt", i) for i in t.wrt_idx))]
    if not equal:
        row, col, mine, theirs = T.first_difference(A.transpose())
        steps.append(Step(rf"T_{{{row + ctx.base},{col + ctx.base}}} = {sp.latex(mine)} \neq "
                          rf"(A^T)_{{{row + ctx.base},{col + ctx.base}}} = {sp.latex(theirs)}",
                          "counterexample at the given sizes"))
        return ctx.answer(results, steps, status=Status.FAILED, detail="T = A^T does not hold at the given sizes.")
    steps.append(Step(r"T = A^T", f"checked exactly at the given sizes: all {T.nnz} nonzeros of T equal "
                                  "those of Aᵀ, A built from the convolution's forward sum"))
    twin = symbolic_twin(layer)
    t2, t_sym, a_sym, proved = prove_transpose_of_conv(twin)
    sizes = size_names(matching_conv(twin))
    if proved:
        rows, cols = (",".join(i.name for i in ids) for ids in (t2.out_idx, t2.wrt_idx))
        steps.append(Step(r"\left\lfloor \frac{(L-1)S + Q}{S} \right\rfloor + 1 = L",
                          "with output_padding Q < stride S the convolution maps the transposed one's output "
                          "length (L−1)S − 2P + D(K−1) + Q + 1 back to L, so A has the shape of Tᵀ"))
        steps.append(Step(rf"T_{{({rows}),({cols})}} = \frac{{\partial y}}{{\partial x}} = {ctx.show(t_sym)}",
                          f"for all sizes ({sizes} symbolic)"))
        steps.append(Step(rf"A_{{({cols}),({rows})}} = \frac{{\partial u}}{{\partial z}} = {ctx.show(a_sym)}",
                          "the convolution's derivative, its row and column indices swapped"))
        steps.append(Step(r"T = A^T", "the two closed forms agree term by term"))
        status, detail = Status.PROVED, (f"At the index level, for all sizes ({sizes}) with output_padding < stride; "
                                         "also verified exactly at the given sizes.")
    else:
        status, detail = Status.VERIFIED, ("Verified exactly at the given sizes only; the index-level proof "
                                           "did not close" + (" (at the given sizes it did)" if proved_here else "")
                                           + ".")
    results.append(Result("identity", True, r"T = A^{T}", Kind.FACT))
    return ctx.answer(results, steps, status=status, detail=detail, conventions={"flatten", "zero_outside"})


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    from .conv_matrix import check_matrix
    layer = job.ctx.tensor("of")
    check_matrix(job, layer, layer.x, "T", f"torch.nn.functional.conv_transpose{layer.dims}d")
