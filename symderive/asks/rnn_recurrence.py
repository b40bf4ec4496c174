"""ask: rnn_recurrence — a one-unit recurrence a⟨t⟩ = g(a⟨t−1⟩) (inputs fixed): the derivative
∂a⟨t⟩/∂a⟨t−1⟩ symbolically, the trajectory from a⟨0⟩, its fixed point a* = g(a*) solved (exactly
when a candidate satisfies it exactly, else with SymPy's nsolve), the derivative d there, and the
verdict for long sequences: backpropagation through T steps multiplies T factors that approach d,
so |d| < 1 vanishing, |d| > 1 exploding, |d| = 1 neither."""
import sympy as sp

from ..answer import Kind, Result, Status, Step
from ..errors import ExpressionError
from ..numeric_network import approx_latex, digits_option, integer_option, number_option, tensor_value
from ..yaml_positions import position

KEYS = {"state", "update", "initial", "steps", "digits"}
USES_VALUES = True

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
    trajectory, approx, factors = trajectory_of(g, dg, a, initial, count, digits)
    rows = [rf"a^{{\langle {t}\rangle}} {shown(v, digits, n)}" for t, (v, n) in enumerate(zip(trajectory, approx))]
    steps.append(Step(r",\quad ".join(rows), f"iterating from a⟨0⟩ = {initial}"))
    fixed, exact = fixed_point(g, a, trajectory, approx, digits)
    stays = exact and all(exactly_equal(v, fixed, n - fixed) for v, n in zip(trajectory, approx))
    how = ("it satisfies a* = g(a*) exactly" if exact else
           f"solved with SymPy's nsolve (Newton's method, started at a⟨{count}⟩); a* − g(a*) = 0 to "
           f"{digits + 10} digits")
    where = "the trajectory stays there" if stays else \
        f"the trajectory approaches it (a⟨{count}⟩ − a* ≈ {sp.N(approx[-1] - fixed, 2)})"
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
    product_approx = sp.Mul(*[n for _, n in factors])
    product = sp.Mul(*[f for f, _ in factors]) if all(f is not None for f, _ in factors) else product_approx
    steps.append(Step(rf"\prod_{{t=1}}^{{{count}}} \frac{{\partial a^{{\langle t\rangle}}}}"
                      rf"{{\partial a^{{\langle t-1\rangle}}}} {shown(product, digits, product_approx)}",
                      f"the product along the first {count} steps of the trajectory"))
    results = [
        Result("derivative", derivative, d_formula, Kind.VALUE, key="derivative"),
        Result("trajectory", tuple(trajectory[1:]), r",\ ".join(rows[1:4]) + (r",\ \dots" if len(rows) > 4 else ""),
               Kind.TUPLE),
        Result("fixed point", fixed, f"a^* {shown(fixed, digits)}", Kind.VALUE, key="fixed point"),
        Result("derivative at the fixed point", d, f"d {shown(d, digits)}", Kind.VALUE, key="slope at the fixed point"),
        Result("verdict", verdict, rf"\text{{{verdict}}}\ (|d| {relation} 1)", Kind.WORD),
    ]
    if exact:
        return ctx.answer(results, steps)
    return ctx.answer(results, steps, status=Status.NUMERIC,
                      detail=f"The fixed point is solved numerically (nsolve) to {digits} significant digits; "
                             "the derivative there and the verdict rest on that value.")


#: Activations an exact trajectory value may nest; later values are decimals only. SymPy's
#: automatic evaluation of tanh(tanh(...)) costs about 2.5 times more with each level.
MAX_NESTING = 6


def trajectory_of(g, dg, a, initial, count, digits):
    """The trajectory a⟨0⟩, ..., a⟨count⟩, exact (unsimplified) while its values nest at most
    MAX_NESTING activations and decimals after that, its decimal values iterated alongside, and
    the (exact or decimal) factors g'(a⟨t−1⟩) with their decimals. Each step adds a digit of
    precision: an exploding map amplifies rounding by at most |g'| per step.

    >>> x = sp.Symbol("x")
    >>> exact, approx, _ = trajectory_of(sp.tanh(x), 1 - sp.tanh(x) ** 2, x, 0, 2, 4)
    >>> exact, approx
    ([0, 0, 0], [0, 0, 0])
    >>> exact, _, _ = trajectory_of(sp.tanh(x / 2), 1 - sp.tanh(x / 2) ** 2, x, 1, 8, 4)
    >>> [v.is_Float for v in exact]
    [False, False, False, False, False, False, False, True, True]
    """
    precision = digits + 25 + count
    trajectory, approx, factors = [sp.sympify(initial)], [sp.N(initial, precision)], []
    for _ in range(count):
        previous, decimal = trajectory[-1], approx[-1]
        exact = not previous.is_Float
        factors.append((dg.subs(a, previous) if exact else None, sp.N(dg.subs(a, decimal), precision)))
        approx.append(sp.N(g.subs(a, decimal), precision))
        value = g.subs(a, previous) if exact else approx[-1]
        trajectory.append(approx[-1] if exact and nesting(value) > MAX_NESTING else value)
    return trajectory, approx, factors


def nesting(expr):
    """How many function applications are nested in ``expr`` (its depth in functions).

    >>> nesting(sp.tanh(sp.tanh(1) / 2)), nesting(sp.Rational(1, 2))
    (2, 0)
    """
    if not isinstance(expr, sp.Basic) or not expr.args:
        return 0
    inner = max(nesting(arg) for arg in expr.args)
    return inner + (1 if isinstance(expr, sp.Function) else 0)


def shown(value, digits, approx=None):
    """'= exact ≈ decimal', '= exact' for a rational, '≈ decimal' when inexact or too long
    (``approx``, when given, is the value's decimal: the exact one may be slow to evaluate)."""
    value = sp.sympify(value)
    if value.is_Rational:
        return f"= {sp.latex(value)}"
    decimal = approx_latex(value if approx is None else approx, digits)
    if value.is_Float or sp.count_ops(value) > MAX_EXACT:
        return rf"\approx {decimal}"
    exact = sp.latex(value)
    if len(exact) > MAX_EXACT:
        return rf"\approx {decimal}"
    return rf"= {exact} \approx {decimal}"


#: Simple numbers tried as exact fixed points.
SIMPLE_CANDIDATES = (0, 1, -1, sp.S.Half, -sp.S.Half)
#: Precision (decimal digits) of the numeric screen that precedes every exact test.
SCREEN_DIGITS = 30


def exactly_equal(x, y, near=None):
    """x == y exactly, tested numerically first (``near``: the decimal value of x − y, if known) so
    that SymPy's simplify (slow on nested activations) only runs on values that agree to SCREEN_DIGITS.

    >>> exactly_equal(sp.tanh(0), 0), exactly_equal(sp.tanh(sp.tanh(1) / 2), 0)
    (True, False)
    """
    difference = sp.sympify(x) - sp.sympify(y)
    if difference == 0:
        return True
    near = sp.N(difference if near is None else near, SCREEN_DIGITS)
    if not near.is_number or abs(near) > sp.Float(10) ** (5 - SCREEN_DIGITS):
        return False
    return sp.simplify(difference) == 0


def fixed_point(g, a, trajectory, approx, digits):
    """(a*, exact?): a point of the trajectory that satisfies a = g(a) exactly; else the root of
    g(a) − a that nsolve finds from the trajectory's last point, replaced by a simple number
    (0, ±1, ±1/2) or the simplest nearby rational when that is exactly a fixed point and agrees
    with the root. When Newton's method fails (a multiple root, as tanh(a) = a at 0), an exact
    simple fixed point that the trajectory is approaching.

    >>> x = sp.Symbol("x")
    >>> fixed_point(sp.tanh(x / 2), x, [1, sp.tanh(sp.S.Half)], [1, sp.N(sp.tanh(sp.S.Half), 40)], 4)
    (0, True)
    >>> fixed_point(sp.tanh(x), x, [1, sp.tanh(1)], [1, sp.N(sp.tanh(1), 40)], 4)
    (0, True)
    """
    for k in range(len(trajectory) - 1):        # g(a⟨k⟩) = a⟨k+1⟩
        if not trajectory[k + 1].is_Float and exactly_equal(trajectory[k + 1], trajectory[k],
                                                             approx[k + 1] - approx[k]):
            return trajectory[k], True
    precision = digits + 15
    numeric = g.rewrite(sp.exp) - a
    root, problem = None, None
    try:
        root = sp.nsolve(numeric, a, sp.N(approx[-1], precision), prec=precision)
        residual = abs(sp.N(numeric.subs(a, root), precision))
        if residual > sp.Float(10) ** (-(digits + 10)):
            root, problem = None, f"nsolve did not converge: g(a) − a = {sp.N(residual, 3)} at {sp.N(root, digits)}"
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        problem = f"could not solve a = g(a) numerically from a⟨{len(trajectory) - 1}⟩: {exc}"
    if root is not None:
        close = sp.Float(10) ** -(digits + 8)
        rational = sp.nsimplify(sp.N(root, digits + 10), tolerance=close, rational=True)
        for candidate in (*SIMPLE_CANDIDATES, rational):
            candidate = sp.sympify(candidate)
            if sp.count_ops(candidate) < 10 and abs(candidate - root) < close \
                    and exactly_equal(g.subs(a, candidate), candidate):
                return candidate, True
        return root, False
    approaching = [c for c in map(sp.sympify, SIMPLE_CANDIDATES) if exactly_equal(g.subs(a, c), c)
                   and len(approx) > 1 and all(abs(approx[k + 1] - c) < abs(approx[k] - c)
                                               for k in range(len(approx) - 1))]
    if approaching:
        return min(approaching, key=lambda c: abs(approx[-1] - c)), True
    raise ExpressionError(problem)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    import numpy as np
    from ..torch_ops import to_torch
    from ..verify.job import EngineValues, engine_value
    import torch
    ctx = job.ctx
    state = ctx.tensor("state")
    update = ctx.expression("update")
    job.autograd = True
    values = {}
    for symbol in update.free_symbols - {state.base}:
        tensor = ctx.decls.lookup(str(symbol))
        if tensor is not None and not tensor.is_layer and tensor.value_spec is not None:
            values[str(symbol)] = float(sp.N(tensor_value(ctx, tensor), 30))
        else:
            values[str(symbol)] = float(job.random(()))

    def g(a):
        return to_torch(update, lambda atom: a if atom.name == state.name else values[atom.name])

    def slope(a):
        a = torch.tensor(float(a), dtype=torch.float64, requires_grad=True)
        (d,) = torch.autograd.grad(g(a), a)
        return float(d)

    points = [float(v) for v in job.random((3,))]
    engine = [engine_value(job.result("derivative"),
                           EngineValues({**values, state.name: np.array(p)}, ctx.decls.lookup, {})) for p in points]
    job.compare("the derivative with autograd's at random states", engine, [slope(p) for p in points],
                [f"{state.name} = {p:.3g}" for p in points])
    a = torch.tensor(float(sp.N(number_option(ctx, "initial", 0), 30)), dtype=torch.float64)
    trajectory = []
    for _ in range(integer_option(ctx, "steps", 5, 1, 50)):
        a = g(a)
        trajectory.append(float(a))
    job.compare("the trajectory with the recurrence iterated in torch",
                [float(sp.N(v, 30)) for v in job.result(Kind.TUPLE)], trajectory,
                [f"step {t + 1}" for t in range(len(trajectory))])
    fixed = job.result("fixed point")
    if fixed is None:
        return
    star = float(sp.N(fixed, 30))
    d = job.result("slope at the fixed point")
    if not isinstance(sp.sympify(fixed), sp.Float):       # exact: it must be a fixed point to 1e-9
        job.compare("the fixed point a* with g(a*) in torch", [star],
                    [float(g(torch.tensor(star, dtype=torch.float64)))], ["a*"])
        if d is not None:
            job.compare("the derivative at the fixed point with autograd's", [float(sp.N(d, 30))], [slope(star)], ["d"])
    else:                                                 # a rounded decimal: agreement to its digits only
        digits = job.question.option("digits", 4)
        rounding = 10.0 ** (1 - digits)
        pairs = [("a*", star, float(g(torch.tensor(star, dtype=torch.float64))))]
        pairs += [("d", float(sp.N(d, 30)), slope(star))] if d is not None else []
        for name, mine, theirs in pairs:
            if abs(mine - theirs) > rounding * max(1.0, abs(theirs)):
                job.mismatch = f"{name} = {mine:.10g}, but torch gives {theirs:.10g} (beyond its {digits} digits)"
        job.also.append(f"the fixed point and the derivative there, given as {digits}-digit decimals, "
                           "agree with torch to those digits")
    size = abs(slope(star))
    expected = "neither" if abs(size - 1) <= 1e-9 else "vanishing" if size < 1 else "exploding"
    if job.result(Kind.WORD) is not None:
        job.also.append("the verdict matches autograd's |d| at the fixed point")
        if job.result(Kind.WORD) != expected:
            job.mismatch = f"the verdict '{job.result(Kind.WORD)}', but autograd's |d| = {size:.6g} means '{expected}'"


# What grading (symderive check) needs to read an answer to this ask, beyond the question's scope.
def grading(question, decls):
    """The state and the update, so that an answer may write g(a) for the update."""
    from ..expressions import parse
    state = decls.lookup(str(question.spec["state"]).strip())
    return {"state": (state.base, parse(str(question.spec["update"]), decls.scope()))}
