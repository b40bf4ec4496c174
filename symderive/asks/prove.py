"""ask: prove — lhs = rhs for all sizes (with the rewrites), or verified at sizes, or checked
numerically, or failed with a counterexample. Never claims more than was done."""
import sympy as sp

from ..answer import Kind, Result, Status, Step
from ..errors import ExpressionError, SymderiveError
from ..expressions import free_index_names, infer_index_ranges, parse, parse_equation
from ..indices import for_display, make_index
from ..prove import Claim, prove_claim
from ..yaml_positions import key_position, locate, position

KEYS = {"lhs", "rhs", "constraints", "fold", "check_sizes"}


def _located(text, action):
    try:
        return action()
    except SymderiveError as exc:
        raise locate(exc, text) from None


def solve(ctx):
    lhs_text, rhs_text = str(ctx.require("lhs")), str(ctx.require("rhs"))
    scope = ctx.decls.scope()
    free_names = sorted(_located(lhs_text, lambda: free_index_names(lhs_text, scope))
                        | _located(rhs_text, lambda: free_index_names(rhs_text, scope)))
    sizes = {**infer_index_ranges(rhs_text, free_names, scope), **infer_index_ranges(lhs_text, free_names, scope)}
    missing = [n for n in free_names if n not in sizes]
    if missing:
        raise ExpressionError(f"'{missing[0]}' is not declared; as an index it must appear alone as a "
                              f"subscript of a declared tensor", *position(ctx.require("lhs")))
    free = tuple(make_index(n, sizes[n]) for n in free_names)
    inner = scope.child(**dict(zip(free_names, free)))
    lhs = _located(ctx.require("lhs"), lambda: parse(ctx.require("lhs"), inner))
    rhs = _located(ctx.require("rhs"), lambda: parse(ctx.require("rhs"), inner))
    constraints = []
    for text in ctx.option("constraints", []) or []:
        left, right = _located(text, lambda: parse_equation(text, scope))
        constraints.append((left, right, f"${ctx.show(left)} = {ctx.show(right)}$"))
    layers = _layers_used(ctx, lhs, rhs)
    fold_names = ctx.option("fold")
    if fold_names is None:
        fold_names = [n for n in _names_in(rhs) if n in layers and layers[n].shape]
    for name in fold_names:
        if name not in layers:
            raise ExpressionError(f"fold: '{name}' is not a layer used in the claim", *position(name))
    check_sizes = ctx.option("check_sizes", [2, 3, 4])
    if not isinstance(check_sizes, list) or not check_sizes or not all(
            isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 8 for n in check_sizes):
        raise ExpressionError("check_sizes is a non-empty list of sizes from 1 to 8",
                              *key_position(ctx.question.spec, "check_sizes"))
    shapes = tuple(node.shape for node in (ctx.decls.lookup(n) for n in _names_in(lhs) + _names_in(rhs))
                   if node is not None)
    claim = Claim(lhs, rhs, free, layers, constraints, tuple(fold_names), tuple(ctx.decls.sizes.values()),
                  shapes)
    outcome = prove_claim(claim, check_sizes=tuple(check_sizes))
    steps = [Step(_show_step(ctx, r.expr, n), r.why) for n, r in enumerate(outcome.steps)]
    statement = rf"{ctx.show(lhs)} = {ctx.show(rhs)}"
    detail = outcome.detail
    if outcome.counterexample:
        steps.append(Step(_counterexample_latex(ctx, outcome.counterexample), "counterexample"))
        detail += " " + _counterexample_text(ctx, outcome.counterexample)
    results = [Result("claim", sp.Eq(lhs, rhs, evaluate=False),
                      statement + (r"\quad\text{is false}" if outcome.status is Status.FAILED else ""),
                      Kind.CLAIM)]
    return ctx.answer(results, steps, status=outcome.status, detail=detail)


def _names_in(expr):
    names = [e.base.label.name for e in expr.atoms(sp.Indexed)]
    names += [s.name for s in expr.atoms(sp.Symbol)]
    return list(dict.fromkeys(names))


def _layers_used(ctx, lhs, rhs):
    """Every layer the claim mentions (also inside diff(...)), and the layers they depend on."""
    found = {}
    for expr in (lhs, rhs):
        for name in _names_in(expr):
            node = ctx.decls.lookup(name)
            if node is not None and node.is_layer:
                found[name] = node
                found.update(node.layer_inputs())
    return found


def _show_step(ctx, expr, n):
    return ctx.show(expr) if n == 0 else "= " + ctx.show(expr)


def _counterexample_latex(ctx, counter):
    parts = [f"{k} = {v}" for k, v in counter["sizes"].items()]
    parts += [f"{k} = {v + ctx.base}" for k, v in counter["indices"].items()]
    inputs = list(counter["inputs"].items())[:8]
    parts += [f"{ctx.show(k)} = {sp.latex(v)}" for k, v in inputs]
    more = r",\ \dots" if len(counter["inputs"]) > 8 else ""
    return (r"\text{at } " + r",\ ".join(parts) + more + r":\quad \text{lhs} = "
            + sp.latex(sp.Float(counter["lhs"], 10)) + r" \neq \text{rhs} = " + sp.latex(sp.Float(counter["rhs"], 10)))


def _counterexample_text(ctx, counter):
    """The counterexample in one line of plain text, for the terminal and JSON."""
    parts = [f"{k} = {v}" for k, v in counter["sizes"].items()]
    parts += [f"{k} = {v + ctx.base}" for k, v in counter["indices"].items()]
    parts += [f"{sp.sstr(for_display(k, ctx.base))} = {v}" for k, v in counter["inputs"].items()]
    return (f"Counterexample: {', '.join(parts)}: lhs = {sp.Float(counter['lhs'], 8)}, "
            f"rhs = {sp.Float(counter['rhs'], 8)}.")


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    """Both sides of the claim in torch at random inputs meeting the constraints: layer entries
    from the layers' torch ops, diff(f, x[i]) by autograd, then lhs against rhs."""
    from ..torch_ops import to_torch
    from ..verify.job import as_int, free_indices, sample_positions
    from ..verify.report import FORMULA_DRAWS
    from ..expressions import parse_equation
    claim = job.result(Kind.CLAIM)
    lhs, rhs = claim.lhs, claim.rhs
    # SymPy does not count the variable of a derivative as free: ∂q_i/∂z_j has j free all the same.
    in_variables = [v for e in (lhs, rhs) for d in e.atoms(sp.Derivative) for v in d.variables]
    idx_of = {i.name: i for e in [lhs, rhs] + in_variables for i in sp.sympify(e).free_symbols
              if isinstance(i, sp.Idx)}
    free = sorted(free_indices(lhs) | free_indices(rhs) | {n for v in in_variables for n in free_indices(v)})
    constraints = [parse_equation(text, job.ctx.decls.scope()) for text in job.question.option("constraints") or []]
    names = {a.base.label.name for e in (lhs, rhs) for a in e.atoms(sp.Indexed)} | \
        {s.name for e in (lhs, rhs) for s in e.free_symbols if isinstance(s, sp.Symbol) and not s.is_integer}
    nodes = [n for n in (job.decls.lookup(name) for name in sorted(names)) if n is not None]
    job.autograd = bool(lhs.atoms(sp.Derivative) | rhs.atoms(sp.Derivative))
    for sizes in job.draw_sizes(nodes, FORMULA_DRAWS):
        values = job.values(nodes, sizes)
        env = {s: int(v) for s, v in sizes.items()}
        written = [_sums_of_derivatives_written_out(sp.sympify(e), env) for e in (lhs, rhs)]
        derivatives = sorted(set().union(*[e.atoms(sp.Derivative) for e in written]), key=sp.default_sort_key)
        placeholders = {d: sp.Symbol(f"_derivative_{k}") for k, d in enumerate(derivatives)}
        sides = [e.xreplace(placeholders) for e in written]
        _meet_constraints(job, constraints, values, env)
        graph = job.graph(sizes, values)
        shape = [as_int(idx_of[n].upper, sizes) + 1 for n in free]
        positions = sample_positions(tuple(shape), 60, job.rng)
        left, right = [], []
        for pos in positions:
            where = {**env, **dict(zip(free, pos))}
            known = {placeholders[d].name: _autograd_value(job, d, sizes, values, where) for d in derivatives}

            def lookup(atom, graph=graph, known=known):
                if isinstance(atom, sp.Symbol) and atom.name in known:
                    return known[atom.name]
                return _graph_entry(job, graph, atom)

            left.append(float(to_torch(sides[0], lookup, where)))
            right.append(float(to_torch(sides[1], lookup, where)))
        job.compare("the two sides of the claim, each computed by PyTorch"
                    + (" (diff by autograd)" if derivatives else ""), left, right,
                    [", ".join(f"{n} = {v + job.problem.index_base}" for n, v in zip(free, pos)) or "the claim"
                     for pos in positions], sides=("lhs", "rhs"))


def _sums_of_derivatives_written_out(expr, sizes):
    """Each sum whose body holds a derivative, written out term by term at these sizes (Σ_i ∂q_i/∂z_j
    becomes ∂q_0/∂z_j + ∂q_1/∂z_j + …), so that every derivative autograd takes has concrete indices
    apart from the claim's free ones. The derivatives themselves are left for autograd."""
    subs = {s: sp.Integer(v) for s, v in sizes.items()}

    def out(total):
        body = total.function
        for var, lo, hi in reversed(total.limits):
            lo, hi = int(sp.sympify(lo).xreplace(subs)), int(sp.sympify(hi).xreplace(subs))
            body = sp.Add(*[body.xreplace({var: sp.Integer(k)}) for k in range(lo, hi + 1)])
        return body

    return expr.replace(lambda e: isinstance(e, sp.Sum) and e.has(sp.Derivative), out)


def _graph_entry(job, graph, atom):
    """The torch value of a tensor or layer entry (zero outside its range) or of a scalar."""
    from ..torch_ops import VerifyError
    import torch
    name = atom.base.label.name if isinstance(atom, sp.Indexed) else atom.name
    node = job.decls.lookup(name)
    if node is None:
        raise VerifyError(f"'{name}' is not a declared tensor or layer")
    value = graph.get(node)
    if not isinstance(atom, sp.Indexed):
        return value
    idx = tuple(int(i) for i in atom.indices)
    if not all(0 <= i < n for i, n in zip(idx, value.shape)):
        return torch.zeros((), dtype=torch.float64)
    return value[idx]


def _autograd_value(job, derivative, sizes, values, env):
    """diff(f, v) at the index values ``env``: f computed in torch with v's tensor as a leaf."""
    from ..torch_ops import VerifyError, integer_value, to_torch
    import torch
    (variable, count), = derivative.variable_count
    if count != 1:
        raise VerifyError("only first derivatives are cross-checked")
    name = variable.base.label.name if isinstance(variable, sp.Indexed) else variable.name
    node = job.decls.lookup(name)
    forward = job.graph(sizes, values).get(node).detach().numpy()
    graph = job.graph(sizes, {**values, name: forward}, override={name})
    leaf = graph.leaf(name, requires_grad=True)
    f = to_torch(derivative.expr, lambda atom: _graph_entry(job, graph, atom), env)
    if not f.requires_grad:
        return 0.0
    (grad,) = torch.autograd.grad(f, leaf, allow_unused=True)
    if grad is None:
        return 0.0
    if not isinstance(variable, sp.Indexed):
        return float(grad)
    return float(grad[tuple(integer_value(i, env) for i in variable.indices)])


def _meet_constraints(job, constraints, values, env):
    """Make the random inputs meet linear constraints such as sum_i p[i] = 1, by solving each for
    the last entry of the first tensor it names."""
    from ..torch_ops import VerifyError
    from ..verify.job import engine_value
    for left, right in constraints:
        atoms = sorted(left.atoms(sp.Indexed) | right.atoms(sp.Indexed), key=sp.default_sort_key)
        if not atoms:
            continue
        name = atoms[0].base.label.name
        if name not in values:
            raise VerifyError(f"cannot meet the constraint {left} = {right}: '{name}' is not an input")
        array = values[name]
        last = tuple(n - 1 for n in array.shape)

        def residual(v):
            array[last] = v
            return engine_value(left - right, values, None, env)

        at0, at1 = residual(0.0), residual(1.0)
        if abs(at1 - at0) < 1e-12:
            raise VerifyError(f"cannot meet the constraint {left} = {right} by its last entry of '{name}'")
        residual(-at0 / (at1 - at0))
        if abs(residual(array[last])) > 1e-9:
            raise VerifyError(f"the constraint {left} = {right} is not linear in '{name}': random inputs "
                              "cannot be drawn to meet it")


# What grading (symderive check) needs to read an answer to this ask, beyond the question's scope.
def grading(question, decls):
    """The claim's constraints (e.g. sum_i p_i = 1), which a correct answer may rely on."""
    return {"constraints": [parse_equation(text, decls.scope()) for text in question.spec.get("constraints", []) or []]}
