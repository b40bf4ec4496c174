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
