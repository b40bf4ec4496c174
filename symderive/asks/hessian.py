"""ask: hessian — the second derivative ∂²L/∂x_p∂x_q of a scalar L (a loss) by a vector or a
matrix: the element formula (the gradient differentiated once more, deltas contracted, layers
recognised), its dimension, the matrix form (c·Xᵀ diag(a) X for a sum of outer products of
rows of X, the form of Newton's method for logistic regression), its symmetry, positive
semidefiniteness where the form shows it, and at concrete sizes the array.

A matrix variable W is flattened row-major, as PyTorch flattens: H is numel(W) × numel(W),
entry (vec index of W[a, b], vec index of W[c, d]) = ∂²L/∂W_ab ∂W_cd.
"""
from dataclasses import dataclass

import sympy as sp

from ..answer import Kind, Result, Step
from ..assumptions import Fact, derived_facts, use_facts
from ..contract import contract
from ..derivative import WRT_LETTERS, derivative, entries_matrix, graph_names, intermediate_definitions, _shapes_of
from ..derivative import tidy as tidy_value
from ..errors import ExpressionError
from ..indices import indices_for, names_in
from ..latex import dims, entry as entry_latex, matrix, too_large
from ..tensors import is_concrete, numel
from ..simplify import cancel_exponentials, fold, pull_out_of_sums
from ..yaml_positions import position
from .matrix_view import folded, matrix_result

KEYS = {"of", "wrt", "array", "constraints"}


@dataclass
class Hessian:
    """∂²of/∂wrt[p…]∂wrt[q…]: the first derivative (index p…) differentiated by wrt[q…]."""
    first: object          # derivative.ElementDerivative
    second_idx: tuple      # q…
    raw: sp.Expr           # differentiated, deltas not contracted
    value: sp.Expr         # contracted

    @property
    def first_idx(self):
        return self.first.wrt_idx

    def array(self):
        """numel(x) × numel(x), rows and columns vec(x) row-major."""
        wrt = self.first.wrt
        return entries_matrix(self.value, self.first_idx, wrt.shape, self.second_idx, wrt.shape,
                              _shapes_of(self.first.of, wrt))


def hessian(of, wrt):
    """The Hessian of a scalar ``of`` by ``wrt``, element by element.

    >>> import symderive as sd
    >>> x = sd.tensor('x', 3)
    >>> h = hessian(sd.sum_of_squares(x, name='L'), x)
    >>> h.value
    2*KroneckerDelta(p, q)
    """
    first = derivative(of, wrt)
    first.value = cancel_exponentials(first.value)
    taken = names_in(first.value) | graph_names(of, wrt) | {i.name for i in first.wrt_idx}
    second_idx = indices_for(wrt.shape, taken, WRT_LETTERS)
    variable = wrt.base[second_idx] if wrt.shape else wrt.base
    raw = sp.diff(first.value, variable).replace(lambda e: isinstance(e, sp.Sum) and e.function == 0,
                                                 lambda e: sp.S.Zero)
    return Hessian(first, second_idx, raw, cancel_exponentials(tidy_value(contract(raw))))


def solve(ctx):
    of, wrt = ctx.tensor("of"), ctx.tensor("wrt")
    if of.shape:
        raise ExpressionError(f"hessian: '{of.name}' must be a scalar (a loss); it has shape "
                              f"{tuple(of.shape)}", *position(ctx.require("of")))
    if wrt.name == of.name or wrt.name not in graph_names(of):
        raise ExpressionError(f"hessian: '{of.name}' does not depend on '{wrt.name}'", *position(ctx.require("wrt")))
    h = hessian(of, wrt)
    p, q = h.first_idx, h.second_idx
    facts = derived_facts(of.layer_inputs()) + declared_facts(ctx)
    x = wrt.tex
    grad_lhs = rf"\frac{{\partial {of.tex}}}{{\partial {entry_latex(wrt.name, p, ctx.base)}}}"
    lhs = (rf"\frac{{\partial^2 {of.tex}}}{{\partial {entry_latex(wrt.name, p, ctx.base)}\, "
           rf"\partial {entry_latex(wrt.name, q, ctx.base)}}}")
    steps = [Step(f"{of.tex} = {ctx.show(h.first.element)}", "definition, written down to the variables")]
    gradient = folded(h.first.value, of, wrt, [], grad_lhs, ctx)
    gradient, used = use_facts(gradient, facts)
    gradient = sp.factor_terms(sp.expand(gradient)) if used else gradient
    steps.append(Step(f"{grad_lhs} = {ctx.show(gradient)}", "the gradient (as for ask: derivative): differentiate, "
                                                            "contract the deltas, recognise the layers"
                      + "".join("; " + f.why for f in used)))
    definitions = intermediate_definitions(of, wrt)
    shown = [fold(e, definitions) if definitions else e for e in (h.raw, h.value)]
    named = " (the layers written by their names)" if any(a != b for a, b in zip(shown, (h.raw, h.value))) else ""
    steps.append(Step(_in_lines(lhs, shown[0], ctx),
                      rf"differentiate once more, by ${entry_latex(wrt.name, q, ctx.base)}$ "
                      rf"($\partial {x}_{{a}} / \partial {x}_{{b}} = \delta_{{ab}}$)" + named))
    steps.append(Step(_in_lines(lhs, shown[1], ctx), "contract each $\\delta$ against its sum" + named))
    value = folded(h.value, of, wrt, steps, lhs, ctx)
    pulled = pull_out_of_sums(value)
    if pulled != value and sp.count_ops(pulled) <= sp.count_ops(value):
        value = pulled
        steps.append(Step(f"{lhs} = {ctx.show(value)}", "pull constant factors out of the sums"))
    value, used = use_facts(value, facts)
    if used:
        value = sp.factor_terms(sp.expand(value))
        steps.append(Step(f"{lhs} = {ctx.show(value)}", "pull factors out of the sums and use "
                          + "; ".join(f.why for f in used)))
    signed = course_signs(value)
    if signed != value:
        value = signed
        steps.append(Step(f"{lhs} = {ctx.show(value)}",
                          "move the minus signs out of the factors (1 − h, not h − 1)"))
    n = numel(wrt.shape)
    results = [
        Result("element", value, f"{lhs} = {ctx.show(value)}", Kind.ELEMENT,
               axes=tuple(("wrt", i) for i in p) + tuple(("wrt", i) for i in q)),
        Result("dimension", tuple(wrt.shape) * 2,
               rf"\nabla^2_{{{x}}} {of.tex} \in {dims(tuple(wrt.shape) * 2)}"
               + (rf" \;\cong\; \mathbb{{R}}^{{{sp.latex(n)} \times {sp.latex(n)}}}" if len(wrt.shape) != 1 else ""),
               Kind.SHAPE, alt_shapes=((n, n),)),
    ]
    conventions = {"zero_outside"} | ({"flatten"} if len(wrt.shape) > 1 else set())
    symmetric = _symmetric(value, p, q)
    if symmetric:
        results.append(Result("symmetric", True, rf"{lhs} = \frac{{\partial^2 {of.tex}}}{{\partial "
                                                 rf"{entry_latex(wrt.name, q, ctx.base)}\, \partial "
                                                 rf"{entry_latex(wrt.name, p, ctx.base)}}}", Kind.FACT,
                              key="symmetric"))
        steps.append(Step("", "the element formula is unchanged when the two indices are swapped: the Hessian is "
                              "symmetric, for all sizes"))
    if len(wrt.shape) == 1:
        label = rf"\nabla^2_{{{x}}} {of.tex}"
        step, result = matrix_result(value, (p[0], q[0]), label, of, wrt, ctx, convert=_gram_or_matrix)
        if step:
            steps.append(step)
            results.append(result)
            psd = _psd_reason(value, p[0], q[0], of, wrt, ctx)
            if psd:
                steps.append(Step(psd[0], psd[1]))
                results.append(Result("positive semidefinite", True, psd[0], Kind.FACT, key="psd"))
    if ctx.flag("array", True) and is_concrete(of.shape) and is_concrete(wrt.shape):
        array = Hessian(h.first, q, h.raw, value).array()      # read off the formula as shown
        shown = (rf"\nabla^2_{{\mathrm{{vec}}({x})}} {of.tex} = {matrix(array, ctx.base)}" if not too_large(array)
                 else rf"\nabla^2_{{\mathrm{{vec}}({x})}} {of.tex} \in \mathbb{{R}}^{{{array.rows} \times "
                      rf"{array.cols}}}")
        steps.append(Step("", "entries read off the element formula; rows and columns "
                              + (f"vec({wrt.name}), row-major" if len(wrt.shape) > 1 else f"the entries of {wrt.name}")
                              + (" (the array is in the answer)" if not too_large(array) else
                                 "; too large to print, given by the element formula above")))
        results.append(Result("array", array, shown, Kind.ENTRIES))
    return ctx.answer(results, steps, conventions=conventions)


def declared_facts(ctx):
    """The question's ``constraints:`` (["Sum(p[i], (i, 1, N)) == 1"]: a one-hot or probability
    target) as facts the derivation may use, each located in the file when it is malformed."""
    from ..errors import SymderiveError
    from ..expressions import parse_equation
    from ..yaml_positions import locate
    texts = ctx.option("constraints", []) or []
    if not isinstance(texts, list):
        raise ExpressionError("'constraints' is a list of equations such as 'Sum(p[i], (i, 1, N)) == 1'",
                              *position(texts))
    facts = []
    for text in texts:
        try:
            left, right = parse_equation(text, ctx.decls.scope())
        except SymderiveError as exc:
            raise locate(exc, text) from None
        facts.append(Fact(left, right, f"the constraint ${ctx.show(left)} = {ctx.show(right)}$"))
    return facts


def course_signs(expr):
    """c · Σ (…)(h − 1)(…) written c' · Σ (…)(1 − h)(…): each factor of a sum's body that is a sum
    of terms is negated when that leaves fewer negative terms (or a positive constant), and the
    sign goes to the coefficient.

    >>> h, n = sp.IndexedBase('h'), sp.Symbol('n', integer=True)
    >>> course_signs(-sp.Sum((h[n] - 1) * h[n], (n, 0, 3)) / 2)
    Sum((1 - h[n])*h[n], (n, 0, 3))/2
    """
    def negatives(e):
        terms = sp.Add.make_args(e)
        constant = sp.Add(*[t for t in terms if t.is_number])
        return (sum(1 for t in terms if t.could_extract_minus_sign()), bool(constant.is_negative))

    def flip(term):
        factors = sp.Mul.make_args(term)
        sums = [f for f in factors if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            return term
        sign, body = 1, []
        for f in sp.Mul.make_args(sums[0].function):
            if isinstance(f, sp.Add) and negatives(-f) < negatives(f):
                sign, f = -sign, sp.expand(-f)
            body.append(f)
        if sign == 1:
            return term
        rest = sp.Mul(*[f for f in factors if f is not sums[0]])
        return -rest * sp.Sum(sp.Mul(*body), *sums[0].limits)

    return sp.Add(*[flip(t) for t in sp.Add.make_args(expr)])


#: A line of a long display holds terms up to about this many LaTeX characters.
LINE = 170


def _in_lines(lhs, expr, ctx):
    """``lhs = expr``, its terms over several lines when it is long (a second derivative before
    contraction is a sum of many terms), in an aligned display; a long term c·Σ_j (a + b + …)
    is opened into its own terms too.

    >>> class Ctx:
    ...     show = staticmethod(sp.latex)
    >>> _in_lines('H', sp.Symbol('a') + sp.Symbol('b'), Ctx())
    'H = a + b'
    """
    whole = f"{lhs} = {ctx.show(expr)}"
    if len(whole) <= 2 * LINE:
        return whole
    pieces = _pieces(expr, ctx)
    lines, line = [], ""
    for piece in pieces:
        if line and len(line) + len(piece) > LINE and not piece.startswith(r" \Big)"):
            lines.append(line)
            line = piece.lstrip()
        else:
            line += piece if line else piece.lstrip().removeprefix("+ ")
    lines.append(line)
    return (r"\begin{aligned} " + lhs + " &= " + lines[0] + "".join(r" \\ &\qquad " + l for l in lines[1:])
            + r" \end{aligned}")


def _pieces(expr, ctx, depth=0):
    r"""LaTeX pieces whose concatenation is ``expr``: its terms, each with its sign (" + t", " - t"),
    a product with a sum of terms as c \Big( terms \Big), a long Σ_j (terms) opened likewise."""
    factors = sp.Mul.make_args(expr)
    adds = [f for f in factors if isinstance(f, sp.Add)]
    sums = [f for f in factors if isinstance(f, sp.Sum) and isinstance(f.function, sp.Add)]
    if isinstance(expr, sp.Add):
        out = []
        for term in expr.args:
            inner = _pieces(term, ctx, depth + 1) if len(ctx.show(term)) > LINE and depth < 3 else [ctx.show(term)]
            first = inner[0].lstrip()
            out.append((" " + first) if first.startswith("-") else " + " + first.removeprefix("+ "))
            out += inner[1:]
        return out
    if len(adds) == 1 or (not adds and len(sums) == 1):
        group = adds[0] if adds else sums[0]
        outside = sp.Mul(*[f for f in factors if f is not group])
        head = "-" if outside == -1 else "" if outside == 1 else ctx.show(outside) + " "
        if isinstance(group, sp.Sum):
            marker = sp.Symbol("MARKER")
            # the marker as the sheet prints it: display names turn MARKER into M_{ARKER}
            head += ctx.show(sp.Sum(marker, *group.limits)).replace(ctx.show(marker), "").rstrip()
            group = group.function
        inner = _pieces(group, ctx, depth + 1)
        return [head + r" \Big(" + inner[0].lstrip().removeprefix("+ ")] + inner[1:] + [r" \Big)"]
    return [ctx.show(expr)]


def _symmetric(value, p, q):
    """True when swapping the two index groups leaves the formula unchanged (after renaming sums)."""
    from ..simplify import canonical_sums
    swap = {**dict(zip(p, q)), **dict(zip(q, p))}
    difference = sp.expand(canonical_sums(value.xreplace(swap)) - canonical_sums(value))

    def on_the_diagonal(term):
        """δ_ab f(a, b) = δ_ab f(a, a)."""
        for delta in term.atoms(sp.KroneckerDelta):
            a, b = delta.args
            if b in term.free_symbols:
                term = term.xreplace({b: a})
        return term

    return sp.expand(sp.Add(*[on_the_diagonal(t) for t in sp.Add.make_args(difference)])) == 0


# Matrix form ------------------------------------------------------------------------------

def _gram(term, p, q):
    """c · Σ_n a_n X[n, p] X[n, q] (n from 0) as (c, a_n, n, last n, X's name), or None."""
    factors = sp.Mul.make_args(term)
    sums = [f for f in factors if isinstance(f, sp.Sum)]
    coeff = sp.Mul(*[f for f in factors if not isinstance(f, sp.Sum)])
    if len(sums) != 1 or coeff.has(p) or coeff.has(q) or len(sums[0].limits) != 1:
        return None
    n, lo, hi = sums[0].limits[0]
    rows = [f for f in sp.Mul.make_args(sums[0].function) if isinstance(f, sp.Indexed) and len(f.indices) == 2
            and f.indices[0] == n and f.indices[1] in (p, q)]
    if len(rows) != 2 or rows[0].base != rows[1].base or {rows[0].indices[1], rows[1].indices[1]} != {p, q}:
        return None
    weight = sums[0].function / (rows[0] * rows[1])
    if weight.has(p) or weight.has(q) or lo != 0:
        return None
    if not weight.has(n):
        coeff, weight = coeff * weight, sp.S.One
    return coeff, weight, n, hi, rows[0].base.label.name


def _gram_or_matrix(value, p, q):
    """Each term c · Σ_n a_n X_np X_nq as c Xᵀ diag(a) X (Xᵀ X when a = 1); other terms by the
    general rules of ``matrix_form.to_matrix``."""
    from ..matrix_form import Diag, Matrix, Product, Sum, to_matrix, to_vector
    terms = sp.Add.make_args(sp.expand(value, deep=False, mul=True, multinomial=False, power_exp=False,
                                       power_base=False, log=False)) if not _gram(value, p, q) else (value,)
    nodes = []
    for term in terms:
        found = _gram(term, p, q)
        if found is None:
            nodes.append(to_matrix(term, p, q))
            continue
        coeff, weight, n, _, name = found
        middle = () if weight == 1 else (Diag(to_vector(weight, n)),)
        nodes.append(Product(coeff, (Matrix(name, True),) + middle + (Matrix(name),), "matmul"))
    return nodes[0] if len(nodes) == 1 else Sum(tuple(nodes))


def _psd_reason(value, p, q, of, wrt, ctx):
    """(LaTeX, why) when the Hessian is c Σ_n a_n X_np X_nq with c ≥ 0 and every a_n > 0 by
    construction: then zᵀ H z = c Σ_n a_n (Σ_p X_np z_p)² ≥ 0 for every z, and H is positive
    semidefinite. None when the form does not show it (which proves nothing either way)."""
    found = _gram(value, p, q)
    if found is None:
        return None
    coeff, weight, n, last, name = found
    if not (coeff.is_nonnegative or _positive(coeff)):
        return None
    if weight != 1 and not _positive(_written_out(weight, of, wrt)):
        return None
    z = sp.IndexedBase("z")
    row = sp.Sum(sp.IndexedBase(name)[n, p] * z[p], (p, 0, p.upper))
    quadratic = coeff * sp.Sum(weight * row ** 2, (n, 0, last))
    why = ("every term is a square times a positive weight"
           + ("" if weight == 1 else rf" (${ctx.show(weight)} > 0$ for every input: with $\sigma$ and $\tanh$ "
                                     "written in exponentials, SymPy's sign rules show it)")
           + ": the Hessian is positive semidefinite, for all sizes and inputs")
    return rf"z^{{T}} \nabla^2_{{{wrt.tex}}} {of.tex}\, z = {ctx.show(quadratic)} \geq 0", why


def _written_out(expr, of, wrt):
    from ..layers import expand_layers
    layers = {n: l for n, l in of.layer_inputs().items() if n != wrt.name}
    return expand_layers(expr, layers)


def _positive(expr):
    """Positive for every real input: σ and tanh written in exponentials, then SymPy's sign rules."""
    from ..simplify import in_exponentials
    try:
        e = sp.factor(sp.together(in_exponentials(expr)))
        if e.is_positive:
            return True
        return sp.simplify(e).is_positive is True
    except (TypeError, ValueError, NotImplementedError):
        return False


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    """The element formula and the array against torch.autograd.functional.hessian, float64."""
    import torch
    from ..tensors import flat_positions
    from ..verify.formulas import autograd_draws
    from ..verify.job import as_int, engine_value, entry_label, sparse_values
    from ..verify.report import MAX_ENTRIES
    of, wrt = job.ctx.tensor("of"), job.ctx.tensor("wrt")
    formula, array, dimension = job.result(Kind.ELEMENT), job.result(Kind.ENTRIES), job.result(Kind.SHAPE)
    from .prove import _meet_constraints
    from ..expressions import parse_equation
    constraints = [parse_equation(text, job.ctx.decls.scope()) for text in job.question.option("constraints") or []]
    h = hessian(of, wrt)
    names = [i.name for i in h.first_idx + h.second_idx]
    base = job.problem.index_base
    for sizes, values, forward, variable in autograd_draws(job, of, wrt):
        _meet_constraints(job, constraints, values, {s: int(v) for s, v in sizes.items()})
        shape = tuple(variable.shape)
        H = torch.autograd.functional.hessian(forward, variable.detach()).reshape(
            int(variable.numel()), int(variable.numel())).numpy()
        if dimension is not None:
            engine_shape = tuple(as_int(n, sizes) for n in dimension)
            if engine_shape != shape * 2:
                job.shape_mismatch("the dimension of the Hessian", engine_shape, shape * 2)
        positions = flat_positions(shape)
        pairs = [(r, c) for r in range(len(positions)) for c in range(len(positions))]
        if len(pairs) > MAX_ENTRIES:
            pairs = [pairs[i] for i in sorted(job.rng.choice(len(pairs), MAX_ENTRIES, replace=False))]
        labels = [f"{entry_label(wrt.name, positions[r], base)}, {entry_label(wrt.name, positions[c], base)}"
                  for r, c in pairs]
        engine = [engine_value(formula, values, sizes, dict(zip(names, positions[r] + positions[c])))
                  for r, c in pairs]
        job.compare("the element formula of the Hessian", engine, [H[r, c] for r, c in pairs], labels)
        if array is not None and not sizes:
            job.compare("the Hessian array", sparse_values(sp.SparseMatrix(array), values), H.reshape(-1))

