"""Issue 17: ``contract._as_bound`` turns a condition linear in a summation index into a sum bound.
Conditions with rational coefficients (a layer's index arithmetic at concrete sizes) take a short
path without together/cancel. Checked two ways: the bound is the one SymPy's general route builds
(so the sheets print the same), and it selects exactly the integers that satisfy the condition."""
import sympy as sp
from hypothesis import given, settings, strategies as st

from symderive.contract import _as_bound, _rational_linear, always, as_nonnegative, conditions_to_bounds
from symderive.indices import make_index

i, j = make_index("i", 9), make_index("j", 9)
q = sp.Symbol("q", integer=True)
RELATIONS = (sp.GreaterThan, sp.StrictGreaterThan, sp.LessThan, sp.StrictLessThan)


def _general_route(cond, var):
    """The bound by SymPy's general route (together, fraction, expand, coeff, cancel)."""
    e = as_nonnegative(cond)         # e ≥ 0, strict conditions made integer-valued first (tested below)
    num, den = sp.fraction(sp.together(e))
    e = sp.expand(num) if den.is_positive else sp.expand(e)
    a = e.coeff(var)
    r = sp.expand(e - a * var)
    return (var, "lower", sp.ceiling(sp.cancel(-r / a))) if a.is_positive else \
        (var, "upper", sp.floor(sp.cancel(r / -a)))


fractions = st.builds(sp.Rational, st.integers(-7, 7), st.sampled_from([1, 2, 3, 4]))


@settings(max_examples=300, deadline=None)
@given(a=fractions.filter(lambda f: f != 0), b=fractions, c=fractions, rhs=fractions,
       relation=st.sampled_from(RELATIONS))
def test_a_rational_linear_condition_gives_the_general_routes_bound_and_the_right_integers(a, b, c, rhs, relation):
    cond = relation(a * i + b * q + c, rhs)
    if cond in (sp.true, sp.false):
        return
    bound = _as_bound(cond, [i])
    assert bound == _general_route(cond, i)
    assert sp.srepr(bound[2]) == sp.srepr(_general_route(cond, i)[2])      # printed alike
    var, side, value = bound
    for at_q in range(-4, 5):
        limit = value.subs(q, at_q)
        for at_i in range(-12, 13):
            holds = bool(cond.subs({i: at_i, q: at_q}))
            assert holds == (at_i >= limit if side == "lower" else at_i <= limit), (cond, at_q, at_i, limit)


def test_what_is_not_rational_linear_takes_the_general_route():
    n = sp.Symbol("n", positive=True, integer=True)
    assert _rational_linear(n * j - 3) is None and _rational_linear(i * j) is None
    assert _rational_linear(sp.sqrt(2) * j) is None
    assert _as_bound(sp.GreaterThan(n * j - 3, 0), [j]) == (j, "lower", sp.ceiling(3 / n))
    assert _as_bound(sp.GreaterThan(i * j, 1), [j]) is None          # not linear in j alone
    assert _as_bound(sp.GreaterThan(2 * i + j, 1), [i, j]) is None   # names two summation indices


def test_conditions_become_the_bounds_of_a_strided_sum():
    g, w = sp.IndexedBase("g"), sp.IndexedBase("w")
    body = sp.Piecewise((g[i] * w[j - 2 * i + 1], (2 * i - j >= -1) & (2 * i - j <= 1)), (0, True))
    moved = conditions_to_bounds(sp.Sum(body, (i, 0, 8)))
    assert moved == sp.Sum(g[i] * w[j - 2 * i + 1], (i, sp.Max(0, sp.ceiling(j / 2 - sp.Rational(1, 2))),
                                                     sp.Min(8, sp.floor(j / 2 + sp.Rational(1, 2)))))
    for at_j in range(9):       # the same terms as the conditions select, summed
        assert moved.subs(j, at_j).doit() == sp.Sum(body, (i, 0, 8)).subs(j, at_j).doit()


def test_a_strict_condition_with_fractions_selects_the_right_integers():
    """Found by the hypothesis test above: i > 1/2 was taken as i − 1/2 − 1 ≥ 0, so i ≥ 2, which
    drops i = 1; for integers, i > 1/2 is i ≥ 1."""
    assert _as_bound(sp.StrictGreaterThan(i, sp.Rational(1, 2)), [i]) == (i, "lower", 1)
    assert _as_bound(sp.StrictLessThan(i, sp.Rational(7, 2)), [i]) == (i, "upper", 3)
    assert always(sp.StrictGreaterThan(i, -sp.Rational(1, 2))) is True        # i ranges over 0..8
    assert always(sp.StrictGreaterThan(i, sp.Rational(17, 2))) is False
    assert always(sp.StrictGreaterThan(i, sp.Rational(1, 2))) is None         # holds for i ≥ 1 only
    x = sp.Symbol("x")                                  # not known to be an integer: no bound at all
    assert _as_bound(sp.StrictGreaterThan(i, x), [i]) is None and always(sp.StrictGreaterThan(x, 0)) is None
