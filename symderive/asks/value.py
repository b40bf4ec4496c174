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


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    import math
    from ..torch_ops import to_torch
    expr = job.ctx.expression("expr")
    if expr.free_symbols or expr.atoms(sp.Indexed):
        job.reason = "the value depends on tensor entries, so it is not a number"
        return
    job.random_inputs = False
    reference = float(to_torch(expr, _no_lookup))
    exact, decimal = job.result(Kind.VALUE), job.result(Kind.DECIMAL)
    if exact is not None:
        job.compare("the exact value with the expression evaluated in torch",
                    [float(sp.N(exact, 30))], [reference], ["the value"])
    elif decimal is not None:
        digits = job.question.option("digits", 4)
        ok = abs(float(decimal) - reference) <= 0.5 * 10 ** (math.floor(math.log10(abs(reference) or 1))
                                                             - digits + 1) * (1 + 1e-6)
        if not ok:
            job.mismatch = f"the {digits}-digit decimal {decimal} does not round torch's value {reference!r}"
        job.also.append(f"the {digits}-digit decimal (the only form given) agrees with the expression evaluated "
                        "in torch to those digits")


def _no_lookup(atom):
    from ..torch_ops import VerifyError
    raise VerifyError(f"the value names {atom}, which has no value")
