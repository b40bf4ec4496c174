"""ask: value — an exact value, then decimals to a stated number of significant digits."""
import sympy as sp

from ..answer import Result, Step
from ..errors import ExpressionError
from ..yaml_positions import position


def solve(ctx):
    expr = ctx.expression("expr")
    digits = ctx.option("digits", 4)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 50:
        raise ExpressionError("'digits' must be a whole number from 1 to 50", *position(digits))
    exact = sp.simplify(expr.doit()) if expr.free_symbols == set() else expr.doit()
    steps = [Step(ctx.show(expr), "as stated")]
    results = [Result("exact", exact, ctx.show(exact))]
    if exact.is_number and not exact.is_Integer:
        approx = sp.N(exact, digits)
        steps.append(Step(rf"{ctx.show(exact)} \approx {sp.latex(approx)}", f"{digits} significant digits"))
        results.append(Result("decimal", approx, rf"\approx {sp.latex(approx)}"))
    return ctx.answer(results, steps)
