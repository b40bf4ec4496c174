"""ask: value — an exact value, then decimals to a stated number of significant digits."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..expressions import literal_digits

#: Exact values with longer numerators or denominators are shown as decimals only.
MAX_EXACT_DIGITS = 200
from ..yaml_positions import position


KEYS = {"expr", "digits"}

def solve(ctx):
    expr = ctx.expression("expr")
    digits = ctx.option("digits", 4)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 50:
        raise ExpressionError("'digits' must be a whole number from 1 to 50", *position(digits))
    exact = sp.simplify(expr.doit()) if expr.free_symbols == set() else expr.doit()
    steps = [Step(ctx.show(expr), "as stated")]
    huge = [n for n in exact.atoms(sp.Rational) if literal_digits(n) > MAX_EXACT_DIGITS]
    if huge:
        approx = sp.N(exact, digits)
        steps.append(Step("", f"the exact value is a fraction with about {int(max(map(literal_digits, huge)))} "
                              f"digits; only its decimal value is shown"))
        return ctx.answer([Result("decimal", approx, rf"\approx {sp.latex(approx)}", Kind.DECIMAL)], steps)
    results = [Result("exact", exact, ctx.show(exact), Kind.VALUE)]
    if exact.is_number and not exact.is_Integer:
        approx = sp.N(exact, digits)
        steps.append(Step(rf"{ctx.show(exact)} \approx {sp.latex(approx)}", f"{digits} significant digits"))
        results.append(Result("decimal", approx, rf"\approx {sp.latex(approx)}", Kind.DECIMAL))
    return ctx.answer(results, steps)
