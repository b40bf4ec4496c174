"""ask: rnn_recurrence — a one-unit recurrence a⟨t⟩ = g(a⟨t−1⟩) (inputs fixed): the derivative
∂a⟨t⟩/∂a⟨t−1⟩ symbolically, the trajectory from a⟨0⟩, its fixed point a* = g(a*) solved (exactly
when a candidate satisfies it exactly, else with SymPy's nsolve), the derivative d there, and the
verdict for long sequences: backpropagation through T steps multiplies T factors that approach d,
so |d| < 1 vanishing, |d| > 1 exploding, |d| = 1 neither."""
import sympy as sp

from ..answer import Result, Step
from ..errors import ExpressionError
from ..numeric_network import approx_latex, digits_option, integer_option, number_option, tensor_value
from ..yaml_positions import position

KEYS = {"state", "update", "initial", "steps", "digits"}
#: Exact values longer than this (LaTeX characters) are shown as decimals only.
MAX_EXACT = 60
#: Sequence lengths at which |d|^T is shown.
HORIZONS = (10, 50)
PREV, NOW, STAR = sp.Symbol(r"a^{\langle t-1\rangle}"), sp.Symbol(r"a^{\langle t\rangle}"), sp.Symbol("a^*")
VERDICTS = {
    -1: ("vanishing", "<", "|d| < 1: backpropagating through T steps multiplies T factors that approach d, "
                           "so the gradient shrinks geometrically, like $|d|^T$"),
    1: ("exploding", ">", "|d| > 1: the product of T factors that approach d grows geometrically, like $|d|^T$"),
    0: ("neither", "=", "|d| = 1: the product of the factors neither shrinks nor grows"),
}


def shown(value, digits):
    """'= exact ≈ decimal', '= exact' for a rational, '≈ decimal' when inexact or too long."""
    value = sp.sympify(value)
    if value.is_Rational:
        return f"= {sp.latex(value)}"
    approx = approx_latex(value, digits)
    exact = sp.latex(value)
    if value.is_Float or len(exact) > MAX_EXACT:
        return rf"\approx {approx}"
    return rf"= {exact} \approx {approx}"


def solve(ctx):
    digits = digits_option(ctx)
    state = ctx.tensor("state")
    if state.rank != 0 or state.is_layer:
        raise ExpressionError(f"'state' must name a scalar tensor (declare it as {state.name}: [])",
                              *position(ctx.option("state")))
    a, text = state.base, ctx.require("update")
    general = ctx.expression("update")
    if a not in general.free_symbols:
        raise ExpressionError(f"the update does not use the state '{state.name}'", *position(text))
    count = integer_option(ctx, "steps", 5, 1, 50)
    initial = number_option(ctx, "initial", 0)

    # (i) the derivative, symbolically, then with the declared values.
    derivative = sp.diff(general, a)
    in_output = derivative.subs(general, NOW)
    named = {a: PREV}
    d_tex = rf"\frac{{\partial {sp.latex(NOW)}}}{{\partial {sp.latex(PREV)}}}"
    d_formula = f"{d_tex} = {sp.latex(derivative.xreplace(named))}" + (
        f" = {sp.latex(in_output)}" if in_output != derivative else "")
    steps = [Step(rf"{sp.latex(NOW)} = {sp.latex(general.xreplace(named))}", "the recurrence (inputs fixed)"),
             Step(d_formula, "chain rule: the weight times the activation's derivative"
                  + (", written with the output" if in_output != derivative else ""))]
    values = {}
    for symbol in general.free_symbols - {a}:
        tensor = ctx.decls.lookup(str(symbol))
        if tensor is not None and not tensor.is_layer and tensor.value_spec is not None:
            values[symbol] = tensor_value(ctx, tensor)
    g = general.xreplace(values)
    missing = g.free_symbols - {a}
    if missing:
        raise ExpressionError(f"the update needs a value for {', '.join(sorted(map(str, missing)))} "
                              f"(declare it with a value, e.g. b: {{value: 0}})", *position(text))
    dg = sp.diff(g, a)
    if values:
        listed = ", ".join(f"${sp.latex(s)} = {sp.latex(v)}$" for s, v in sorted(values.items(), key=str))
        steps.append(Step(rf"{sp.latex(NOW)} = {sp.latex(g.xreplace(named))}, \qquad "
                          rf"{d_tex} = {sp.latex(dg.xreplace(named))}", f"with {listed}"))

    # (ii) the trajectory, the fixed point, the derivative there and the verdict.
    trajectory, factors = [initial], []
    for _ in range(count):
        factors.append(sp.simplify(dg.subs(a, trajectory[-1])))
        trajectory.append(sp.simplify(g.subs(a, trajectory[-1])))
    rows = [rf"a^{{\langle {t}\rangle}} {shown(v, digits)}" for t, v in enumerate(trajectory)]
    steps.append(Step(r",\quad ".join(rows), f"iterating from a⟨0⟩ = {initial}"))
    fixed, exact = fixed_point(g, a, trajectory, digits)
    stays = exact and all(sp.simplify(v - fixed) == 0 for v in trajectory)
    how = ("it satisfies a* = g(a*) exactly" if exact else
           f"solved with SymPy's nsolve (Newton's method, started at a⟨{count}⟩); a* − g(a*) = 0 to "
           f"{digits + 10} digits")
    where = "the trajectory stays there" if stays else \
        f"the trajectory approaches it (a⟨{count}⟩ − a* ≈ {sp.N(trajectory[-1] - fixed, 2)})"
    steps.append(Step(rf"a^* = {sp.latex(g.subs(a, STAR))} \ \Rightarrow\ a^* {shown(fixed, digits)}",
                      f"the fixed point: {how}; {where}"))
    d = sp.simplify(dg.subs(a, fixed)) if exact else sp.N(dg.subs(a, fixed), digits + 15)
    steps.append(Step(rf"d = \left.{d_tex}\right|_{{a^*}} = {sp.latex(dg.subs(a, STAR))} {shown(d, digits)}",
                      "the derivative at the fixed point"))
    magnitude = abs(d)
    if exact:
        compare = int(sp.sign(sp.simplify(magnitude - 1)))
    else:
        compare = 0 if abs(magnitude - 1) < sp.Float(10) ** (-(digits + 10)) else (1 if magnitude > 1 else -1)
    verdict, relation, reason = VERDICTS[compare]
    steps.append(Step(r",\quad ".join(rf"|d|^{{{T}}} {shown(magnitude ** T, 3)}" for T in HORIZONS), reason))
    product = sp.simplify(sp.Mul(*factors))
    steps.append(Step(rf"\prod_{{t=1}}^{{{count}}} \frac{{\partial a^{{\langle t\rangle}}}}"
                      rf"{{\partial a^{{\langle t-1\rangle}}}} {shown(product, digits)}",
                      f"the product along the first {count} steps of the trajectory"))
    results = [
        Result("derivative", derivative, d_formula),
        Result("trajectory", tuple(trajectory[1:]), r",\ ".join(rows[1:4]) + (r",\ \dots" if len(rows) > 4 else "")),
        Result("fixed point", fixed, f"a^* {shown(fixed, digits)}"),
        Result("derivative at the fixed point", d, f"d {shown(d, digits)}"),
        Result("verdict", verdict, rf"\text{{{verdict}}}\ (|d| {relation} 1)"),
    ]
    detail = "" if exact else f"The fixed point is solved numerically (nsolve) to {digits} significant digits."
    return ctx.answer(results, steps, detail=detail)


def fixed_point(g, a, trajectory, digits):
    """(a*, exact?): a point of the trajectory or a simple number that satisfies a = g(a) exactly,
    else the root of g(a) − a that nsolve finds from the trajectory's last point."""
    for candidate in trajectory:
        if sp.simplify(g.subs(a, candidate) - candidate) == 0:
            return candidate, True
    numeric = g.rewrite(sp.exp) - a
    precision = digits + 15
    try:
        root = sp.nsolve(numeric, a, sp.N(trajectory[-1], precision), prec=precision)
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise ExpressionError(f"could not solve a = g(a) numerically from a⟨{len(trajectory) - 1}⟩: "
                              f"{exc}") from None
    guess = sp.nsimplify(sp.N(root, digits + 10))
    if sp.count_ops(guess) < 10 and sp.simplify(g.subs(a, guess) - guess) == 0:
        return guess, True
    residual = abs(sp.N(numeric.subs(a, root), precision))
    if residual > sp.Float(10) ** (-(digits + 10)):
        raise ExpressionError(f"nsolve did not converge: g(a) − a = {sp.N(residual, 3)} at {sp.N(root, digits)}")
    return root, False
