"""Shared by the derivative asks: fold intermediate layers back into their names, and give
the matrix form of a result (checked numerically against the element formula)."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..assumptions import rows_sum_to_one
from ..errors import ExpressionError
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
    leaves = list(of.leaves().values()) if of.is_layer else []
    facts_used = []
    if leaves:
        new, facts_used = rows_sum_to_one(value, leaves)
        if facts_used:
            value = new
            steps.append(Step(f"{lhs} = {ctx.show(value)}",
                              "use the declared facts: " + "; ".join(f.why for f in facts_used)))
    definitions = intermediate_definitions(of, wrt)
    new = factor_sum_bodies(combine_sums(fold(value, definitions) if definitions else value))
    factored = sp.factor_terms(new)
    if sp.count_ops(factored) < sp.count_ops(new):
        new = factored
    from ..course_forms import one_minus_tanh_squared
    new = one_minus_tanh_squared(new)            # −(t − 1)(t + 1) → 1 − tanh², as courses write it
    if new != value:
        names = [tex_name(str(d[0].base.label if isinstance(d[0], sp.Indexed) else d[0])) for d in definitions
                 if new.has(d[0].base if isinstance(d[0], sp.Indexed) else d[0])]
        shown, several = ", ".join(f"${n}$" for n in names), len(names) > 1
        why = (f"write the intermediate quantit{'ies' if several else 'y'} {shown} by name instead of "
               f"{'their definitions' if several else 'its definition'}") if names else \
            "collect the sums and factor their terms"
        steps.append(Step(f"{lhs} = {ctx.show(new)}", why))
    return new


def course_form(value, free, of, wrt, avoid=()):
    """(named value, matrix form node, [Named], {label: number of classes}) of ``value`` written
    with the intermediates a course names (ŷ, P, the one-hot y, 1 − tanh²; see course_forms.py),
    or None when it has no matrix form. The node is not checked here: ``check`` it."""
    from ..assumptions import tensor_facts
    from ..course_forms import (Named, course_signs, loss_intermediates, merge_sums, name_one_hot, name_softmax,
                                one_minus_tanh_squared, picked_by_label, sigmoid_derivative, standardized)
    from ..matrix_form import NotConvertible, to_matrix, to_vector, untransposed
    layers = dict(of.layer_inputs())
    if of.is_layer:
        layers[of.name] = of
    taken = set(avoid) | {n for n in layers} | set(of.leaves()) | {wrt.name} | {i.name for i in free}
    named, labels, pickers = [], {}, []
    for layer in layers.values():
        labels.update({name: d[1] for name, d in layer.domains().items() if d[0] == "labels"})
    for name, leaf in of.leaves().items():
        if "labels" in tensor_facts(leaf):
            labels[name] = tensor_facts(leaf)["labels"]
    for softmax, target, scores, label in loss_intermediates(layers, taken):
        new = name_softmax(value, scores, softmax.tensor)
        if new != value:
            named.append(softmax)
            value = new
        if target is not None:
            new = name_one_hot(value, label, target.tensor)
            if new != value or any(s.tensor is softmax.tensor for s in named):
                pickers.append((label, target))
            if new != value:
                named.append(target)
                value = new
    value, standardized_layers = standardized(value, layers)
    for layer in standardized_layers:
        k = layer.free_indices()
        # in its mean and variance (layers the grader defines too), not written down to x: a μ left to chance
        # under a written-out x̂ made a correct answer in x̂ read as wrong
        named.append(Named(layer, k, layer.element(k, expand=False),
                           f"${layer.tex}$ is its input standardized, so the input is its mean plus its scale "
                           f"times ${layer.tex}$, and the entries of ${layer.tex}$ sum to 0"))
    value = one_minus_tanh_squared(value)
    predictions = tuple(n.tensor.base for n in named if n.tensor.name not in {t.tensor.name for _, t in pickers})
    value = course_signs(value, predictions)
    value = sigmoid_derivative(value, layers)        # a(1 − a) of a = σ(z) → σ'(z)
    symmetric = symmetric_names(of, wrt)

    def convert(v):
        from .. import matrix_form
        matrix_form.TOTALS[0] = bool(standardized_layers)          # Σ_n g beside vectors: batch norm's form
        try:
            return untransposed(to_matrix(v, *free) if len(free) == 2 else to_vector(v, free[0]), symmetric)
        finally:
            matrix_form.TOTALS[0] = False
    try:
        return value, convert(value), named, labels
    except NotConvertible:
        pass
    if standardized_layers:                         # per channel: the course writes it entry by entry
        from ..matrix_form import Entries
        return value, Entries(value, tuple(free)), named, labels
    for label, target in pickers:                  # U_{p,o} = Σ_j U_{p,j} y_j, to join Σ_j U_{p,j} ŷ_j
        picked = course_signs(merge_sums(picked_by_label(value, label, target.tensor, taken)), predictions)
        try:
            node = convert(picked)
        except NotConvertible:
            continue
        return picked, node, named + ([target] if target not in named else []), labels
    if len(free) == 2 and wrt.rank == 2:           # a hinge through a linear map: c Aᵀ M with M the mask
        from ..course_forms import named_mask
        found = named_mask(value, free, wrt.shape[1], set(of.leaves()) - {wrt.name}, taken)
        if found is not None:
            masked, mask = found
            try:
                node = convert(masked)
            except NotConvertible:
                return None
            inner = _mask_form(mask, pickers, predictions, taken)
            if inner is not None:                  # Xᵀ (((P − Y) W₂ᵀ) ⊙ 1{Z > 0}): M written out
                targets = [target for _, target in pickers if target not in named]
                return value, _substituted(node, mask.tensor.name, inner), named + targets, labels
            return masked, node, named + [mask], labels
    return None


def _mask_form(mask, pickers, predictions, taken):
    """The matrix form of a mask M's own definition, when it has one (the δ of a ReLU layer,
    ((P − Y) W₂ᵀ) ⊙ 1{Z > 0}), else None: then M stays a name, defined on its own line."""
    from ..course_forms import course_signs, merge_sums, picked_by_label
    from ..matrix_form import NotConvertible, to_matrix
    n, q = mask.idx
    candidates = [mask.element] + [course_signs(merge_sums(picked_by_label(mask.element, label, target.tensor,
                                                                           taken)), predictions)
                                   for label, target in pickers]
    from ..simplify import pull_out_of_sums
    for element in candidates:
        try:
            return to_matrix(pull_out_of_sums(element), n, q)
        except NotConvertible:
            continue
    return None


def _substituted(node, name, inner):
    """``node`` with the matrix called ``name`` replaced by ``inner``."""
    from dataclasses import fields, replace
    from ..matrix_form import Matrix, Node
    if isinstance(node, Matrix) and node.name == name and not node.transpose:
        return inner
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            changes[f.name] = _substituted(value, name, inner)
        elif isinstance(value, tuple) and any(isinstance(v, Node) for v in value):
            changes[f.name] = tuple(_substituted(v, name, inner) if isinstance(v, Node) else v for v in value)
    return replace(node, **changes) if changes else node


def matrix_result(value, free, label, of, wrt, ctx, extra=None, convert=None, steps=None, results=None,
                  backward=None):
    """(Step, Result) of the vector/matrix form of ``value`` over ``free`` indices, or (None, None).
    ``convert(value, *free)`` builds the form when an ask has rules of its own (hessian's Xᵀ diag(a) X).
    ``backward`` (a ``course_forms.BackwardForm``) is a layer kind's backward pass as a course writes it:
    its intermediates (δ, dP, dS) become steps in matrix notation and the form is its gradient.
    Without either, the form names what a course names (``course_form``); the element formula with
    those names is then added to ``steps`` and, boxed beside the element formula in declared names,
    to ``results`` (key ``course element``), and the names are recorded on ``ctx.intermediates`` (the
    answer's, for the checker: a student's ŷ is read as its definition)."""
    # imported here, not at the top: loading a problem file (list) must not import NumPy
    from ..matrix_form import NotConvertible, check, latex_in_base, tidy_node, to_matrix, to_vector, untransposed
    symmetric = symmetric_names(of, wrt)
    named, labels, named_value = [], {}, value
    try:
        if backward is not None:
            named, named_value = list(backward.named), backward.gradient
            node = form_of(named_value, free)
        elif convert:
            node = convert(value, *free)
        else:
            found = course_form(value, free, of, wrt, ctx.declared_names())
            if found is None:
                raise NotConvertible("no form")
            named_value, node, named, labels = found
    except NotConvertible:
        return None, None
    from ..matrix_form import Entries
    entries_only = isinstance(node, Entries)
    node = node if entries_only else tidy_node(node)
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
        error = check(node, value, free, {**_leaf_shapes(of, wrt), **(extra or {})}, sizes,
                      derived[::-1] + [n.derived() for n in named], symmetric=symmetric, classes=labels)
    except Exception:  # a form we cannot evaluate is not shown: never print an unchecked form
        return None, None
    if error > MATRIX_FORM_TOLERANCE:
        return None, None
    if backward is not None:
        shown = _backward_steps(named, derived[::-1], {**_leaf_shapes(of, wrt), **(extra or {})}, sizes, ctx)
        if shown is None:                         # an intermediate whose form disagrees: show none of them
            return None, None
        if steps is not None:
            steps.extend(shown)
            steps.append(Step(f"{_element_lhs(label, of, wrt, free, ctx.base)} = {ctx.show(named_value)}",
                              f"the backward pass of the {(backward.layer or of).describe()} as courses write it, "
                              "in the intermediates above"))
        _record_in_order(named, ctx)
    else:
        _course_names(named, named_value, value, label, of, wrt, free, ctx, steps, results)
    if entries_only:                    # the course element above is the form; there is no matrix notation
        return None, None
    latex = f"{label} = {latex_in_base(node, ctx.base)}"
    why = (f"in matrix notation (numerator layout); checked against the element formula at random sizes "
           f"and values, max error {error:.1e}")
    return Step(latex, why), Result("matrix form", latex_in_base(node, ctx.base), latex, Kind.MATRIX_FORM)


def _record_in_order(named, ctx):
    """Record a backward pass's intermediates for the checker, each written out in declared names (each
    may use the ones before it: dS uses dP and P), so that a student's dS or P reads as what it stands for."""
    from dataclasses import replace
    from ..course_forms import expand_intermediates
    recorded = {}
    for n in named:
        if n.tensor.name not in ctx.declared_names():
            record = n.record()
            recorded[n.tensor.name] = replace(record, element=expand_intermediates(record.element, recorded))
    ctx.intermediates.update(recorded)


def _course_names(named, named_value, value, label, of, wrt, free, ctx, steps, results):
    """The names a course form introduces: the definition of each name the form makes up (the mask M) and
    the element formula with the names, as steps and (boxed) as the ``course element`` result; each name
    recorded on ``ctx.intermediates`` for the checker."""
    if steps is not None:
        for n in named:
            if n.defined:                            # a name the form introduces (the mask M): its definition
                from ..latex import entry
                steps.append(Step(f"{entry(n.tensor.name, n.idx, ctx.base)} = {ctx.show(n.element)}",
                                  n.why + " (with a positive margin, the entry $q = y_n$ is $-\\sum_{j \\neq y_n}$ of "
                                  "the steps, as CS231n writes it)"
                                  if n.element.has(sp.KroneckerDelta) else n.why))
    for n in named:
        if n.tensor.name not in ctx.declared_names():
            ctx.intermediates[n.tensor.name] = n.record()
    if steps is not None and named_value != value:
        element_latex = f"{_element_lhs(label, of, wrt, free, ctx.base)} = {ctx.show(named_value)}"
        steps.append(Step(element_latex, "name the intermediates as courses do: "
                          + "; ".join(f"${n.tensor.tex}$ as defined above" if n.defined else n.why for n in named)
                          if named else _rewrites(named_value)))
        if results is not None and named:
            axes = next((r.axes for r in results if r.kind is Kind.ELEMENT), ())
            results.append(Result("element, course names", named_value, element_latex, Kind.ELEMENT,
                                  key="course element", axes=axes))


def _rewrites(value):
    """What the course-form rewrites without names did to ``value``, in words."""
    from ..functions import sigmoid_prime
    said = []
    if value.has(sigmoid_prime):
        said.append("write $a(1 - a)$ of a sigmoid layer $a = \\sigma(z)$ as $\\sigma'(z)$")
    if value.has(sp.tanh):
        said.append("write $-(t - 1)(t + 1)$ as $1 - \\tanh^2$")
    return "; ".join(said) or "write the terms as a course does"


def form_of(expr, free):
    """The vector (one free index) or matrix (two) whose entry is ``expr``."""
    from ..matrix_form import to_matrix, to_vector
    return to_matrix(expr, *free) if len(free) == 2 else to_vector(expr, free[0])


def _intermediate_form(expr, idx):
    """The form of a backward pass's intermediate: as any other, or the row sums of a matrix (D)."""
    from ..matrix_form import NotConvertible, row_sum
    try:
        return form_of(expr, idx)
    except NotConvertible:
        if len(idx) != 1:
            raise
        return row_sum(expr, idx[0])


def _backward_steps(named, derived, tensors, sizes, ctx):
    """One step per intermediate of a backward pass: its entry and its matrix form, the form checked
    against the entry (with the layers and the intermediates before it computed from their own
    definitions). None when a form disagrees with its entry."""
    from ..latex import entry
    from ..matrix_form import Matrix, NotConvertible, Vector, check, latex_in_base, tidy_node
    out, before = [], list(derived)
    for n in named:
        lhs = entry(n.tensor.name, n.idx, ctx.base)
        shown = f"{lhs} = {ctx.show(n.element)}"
        try:
            node = tidy_node(_intermediate_form(n.element, n.idx)) if 1 <= len(n.idx) <= 2 else None
        except NotConvertible:
            node = None
        if isinstance(node, (Matrix, Vector)):           # a new name for a layer or for rows of a tensor: the
            node = None                                   # element formula says which (a block is no whole matrix)
        if node is not None:
            try:
                error = check(node, n.element, n.idx, tensors, sizes, before)
            except Exception:  # a form we cannot evaluate is not shown: never print an unchecked form
                error = None
            if error is None or error > MATRIX_FORM_TOLERANCE:
                return None
            shown += rf", \quad {tex_name(n.tensor.name)} = {latex_in_base(node, ctx.base)}"
        out.append(Step(shown, n.why))
        before.append(n.derived())
    return out


def _element_lhs(label, of, wrt, free, base):
    """∂J/∂U_{p,q} from the matrix form's label ∂J/∂U and the free indices (the output's first)."""
    from ..latex import entry
    n_out = len(free) - wrt.rank
    numerator = entry(of.name, free[:n_out], base) if n_out else label[len(r"\frac{\partial "):label.index("}{")]
    return rf"\frac{{\partial {numerator}}}{{\partial {entry(wrt.name, free[n_out:], base)}}}"


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
    # graded as a claim: dX a tensor of X's shape, dY_ij the sum over (p, q) of the derivative times dX_pq
    shaped = sp.IndexedBase(sp.Symbol(dx.name, real=True), shape=tuple(wrt.shape))
    claim = sp.Sum(value * shaped[p, q], (p, 0, wrt.shape[0] - 1), (q, 0, wrt.shape[1] - 1))
    return step, Result("differential", result.value, result.latex, result.kind, claim=claim,
                        axes=(("of", i), ("of", j)))
