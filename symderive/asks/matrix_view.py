"""Shared by the derivative asks: fold intermediate layers back into their names, and give
the matrix form of a result (checked numerically against the element formula)."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..matrix_functions import symmetric_entries
from ..derivative import intermediate_definitions
from ..latex import tex_name
from ..simplify import combine_sums, factor_sum_bodies, fold

#: A matrix form must agree with the element formula to this absolute error.
MATRIX_FORM_TOLERANCE = 1e-9


#: How a derivative by a matrix declared symmetric is meant (stated on the sheet).
SYMMETRIC_CONVENTION = (
    "{name} is symmetric (declared); the derivative by it is taken entry by entry as if its entries were "
    "independent (the unconstrained gradient $G$, what autograd gives), then evaluated at a symmetric "
    "{name}. The gradient among symmetric matrices only is $G + G^{{T}} - \\operatorname{{diag}}(G)$ "
    "(Matrix Cookbook, section 2.8)")


def symmetric_names(of, wrt):
    """The matrices around ``of`` declared symmetric, and their inverses (also symmetric), by the
    names their entries carry. The variable may be one of them: see ``SYMMETRIC_CONVENTION``."""
    names = {name for name, leaf in of.leaves().items() if leaf.symmetric}
    if getattr(wrt, "symmetric", False):
        names.add(wrt.name)
    return names | {f"{name}^{{-1}}" for name in names}


def folded(value, of, wrt, steps, lhs, ctx):
    """``value`` with intermediate layers recognised; adds a step when that changed something."""
    symmetric = symmetric_names(of, wrt)
    if getattr(wrt, "symmetric", False):
        steps.append(Step(f"{lhs} = {ctx.show(value)}", SYMMETRIC_CONVENTION.format(name=f"${wrt.tex}$")))
    if symmetric:
        new = symmetric_entries(value, symmetric)
        if new != value:
            value = new
            declared = sorted(n for n in symmetric if not n.endswith("^{-1}"))
            steps.append(Step(f"{lhs} = {ctx.show(value)}", f"{', '.join(declared)} "
                              f"{'is' if len(declared) == 1 else 'are'} symmetric (declared): "
                              "$A_{ji} = A_{ij}$"))
    definitions = intermediate_definitions(of, wrt)
    new = factor_sum_bodies(combine_sums(fold(value, definitions) if definitions else value))
    factored = sp.factor_terms(new)
    if sp.count_ops(factored) < sp.count_ops(new):
        new = factored
    if new != value:
        names = [tex_name(str(d[0].base.label if isinstance(d[0], sp.Indexed) else d[0])) for d in definitions
                 if new.has(d[0].base if isinstance(d[0], sp.Indexed) else d[0])]
        shown, several = ", ".join(f"${n}$" for n in names), len(names) > 1
        why = (f"write the intermediate quantit{'ies' if several else 'y'} {shown} by name instead of "
               f"{'their definitions' if several else 'its definition'}") if names else \
            "collect the sums and factor their terms"
        steps.append(Step(f"{lhs} = {ctx.show(new)}", why))
    return new


def matrix_result(value, free, label, of, wrt, ctx, extra=None, convert=None):
    """(Step, Result) of the vector/matrix form of ``value`` over ``free`` indices, or (None, None).
    ``convert(value, *free)`` builds the form when an ask has rules of its own (hessian's Xᵀ diag(a) X)."""
    # imported here, not at the top: loading a problem file (list) must not import NumPy
    from ..matrix_form import NotConvertible, check, latex_in_base, to_matrix, to_vector, untransposed
    symmetric = symmetric_names(of, wrt)
    try:
        node = convert(value, *free) if convert else \
            untransposed(to_matrix(value, *free) if len(free) == 2 else to_vector(value, free[0]), symmetric)
    except NotConvertible:
        return None, None
    tensors = {}
    for node_ in [of, wrt] + list(of.layer_inputs().values()) + list(of.leaves().values()):
        if node_.shape:
            tensors[node_.name] = node_.shape
    tensors.update(extra or {})
    sizes = sorted({s for shape in tensors.values() for n in shape for s in sp.sympify(n).free_symbols},
                   key=str)
    derived = []
    layers = dict(of.layer_inputs())
    if of.is_layer:
        layers[of.name] = of                     # the form may name the output itself (h ⊙ (1 − h))
    for name, layer in layers.items():
        if name != wrt.name:
            idx = layer.free_indices()
            derived.append((name, layer.shape, layer.element(idx, expand=True), idx))
    try:
        # The folded formula is evaluated with each named layer's value computed from its own
        # definition (folding is an exact rewrite), which is much cheaper than expanding it.
        error = check(node, value, free, {**_leaf_shapes(of, wrt), **(extra or {})}, sizes, derived[::-1],
                      symmetric=symmetric)
    except Exception:  # a form we cannot evaluate is not shown: never print an unchecked form
        return None, None
    if error > MATRIX_FORM_TOLERANCE:
        return None, None
    latex = f"{label} = {latex_in_base(node, ctx.base)}"
    why = (f"in matrix notation (numerator layout); checked against the element formula at random sizes "
           f"and values, max error {error:.1e}")
    return Step(latex, why), Result("matrix form", latex_in_base(node, ctx.base), latex, Kind.MATRIX_FORM)


def _leaf_shapes(of, wrt):
    shapes = {name: leaf.shape for name, leaf in of.leaves().items() if leaf.shape}
    if wrt.is_layer and wrt.shape:
        shapes[wrt.name] = wrt.shape
    return shapes


def differential_result(value, d, of, wrt, ctx):
    """(Step, Result) of the differential dY = c L (dX) R of a matrix by a matrix, or (None, None).
    It is checked like a matrix form: Σ_pq (∂Y_ij/∂X_pq) dX_pq against it at a random dX."""
    from ..matrix_form import Differential, NotConvertible, differential_form
    (i, j), (p, q) = d.out_idx, d.wrt_idx
    dx = Differential("d" + wrt.name, wrt.tex)
    try:
        node = differential_form(value, i, j, p, q, dx)
    except NotConvertible:
        return None, None
    contracted = sp.Sum(value * sp.IndexedBase(sp.Symbol(dx.name, real=True))[p, q],
                        (p, 0, wrt.shape[0] - 1), (q, 0, wrt.shape[1] - 1))
    step, result = matrix_result(contracted, (i, j), rf"\mathrm{{d}}{of.tex}", of, wrt, ctx,
                                 extra={dx.name: wrt.shape}, convert=lambda *_: node)
    if step is None:
        return None, None
    step = Step(step.latex, step.why.replace("in matrix notation (numerator layout)",
                                             "the differential, in matrix notation"))
    return step, Result("differential", result.value, result.latex, result.kind)
