"""The memos and the one-pass renaming of issue 17 give exactly what the computations they replace
give (SymPy's own functions, or the first version of the renaming), on sums that nest, shadow an
index, bound a sum by another's index, and hold guarded Piecewise terms."""
import sympy as sp

from symderive import simplify, sympy_memos, sympy_fixes
from symderive.indices import make_index

x, y, t = sp.IndexedBase("x"), sp.IndexedBase("y"), sp.IndexedBase("t")
n = sp.Symbol("n", integer=True, positive=True)
i, j, k = make_index("i", n), make_index("j", n), make_index("k", n)
m = sp.Symbol("m", integer=True)
SUMS = [
    sp.Sum(x[i], (i, 0, n - 1)),
    sp.Sum(x[i, j] * y[j], (i, 0, n - 1), (j, 0, n - 1)),
    sp.Sum(sp.Sum(x[i, j], (j, 0, n - 1)) * sp.Sum(x[i, j], (j, 0, n - 1)), (i, 0, n - 1)),   # siblings
    sp.Sum(x[j] * sp.Sum(x[j, i], (j, 0, n - 1)), (j, 0, n - 1)),                            # shadowing
    sp.Sum(sp.Sum(x[m, i], (m, 0, i)), (i, 0, n - 1)),                                        # bound by i
    sp.Sum((y[j] - t[j]) ** 2 * sp.Sum(sp.Piecewise((x[m], j - 2 * m >= 0), (0, True)), (m, 0, n)),
           (j, 0, n - 1)),                                                                    # a guard
    sp.exp(sp.Sum(x[k], (k, 0, n - 1))) / sp.Sum(sp.exp(x[k]), (k, 0, n - 1)) + x[i],
]


def test_one_pass_renaming_equals_the_first_version():
    for number, expr in enumerate(SUMS):
        for as_idx in (False, True) if number != 3 else (False,):
            def name_at(depth):
                return f"_b{depth}"
            ours = simplify._rename_bound(expr, name_at, as_idx)
            reference = simplify._rename_bound_by_dummies(expr, name_at, as_idx)
            assert sp.srepr(ours) == sp.srepr(reference), expr


def test_a_shadowing_index_stays_an_index():
    """The one difference found: the first version turned an inner index that shadows an outer
    one into a plain symbol (its dummy was made from the outer dummy, not from the Idx); ranges
    are kept now. No shipped question has such a sum (the two agreed on all 551 calls of a run)."""
    renamed = simplify._rename_bound(SUMS[3], lambda depth: "jklm"[depth], as_idx=True)
    assert all(isinstance(s.limits[0][0], sp.Idx) for s in renamed.atoms(sp.Sum))


def test_renaming_does_not_capture():
    inner_j = sp.Sum(x[j, k], (j, 0, n - 1))
    expr = sp.Sum(inner_j, (k, 0, n - 1))             # Σ_k Σ_j x_{jk}
    renamed = simplify.alpha_normal(expr)
    body = renamed.function
    assert len(renamed.limits) == 2 and body.indices[0] != body.indices[1]
    assert simplify.alpha_normal(sp.Sum(x[i], (i, 0, n - 1))) == simplify.alpha_normal(sp.Sum(x[k], (k, 0, n - 1)))


def test_free_symbols_of_a_sum_as_sympy_gives_them():
    assert sp.Sum.free_symbols.fget is sympy_memos.free_symbols
    for expr in SUMS:
        for s in expr.atoms(sp.Sum):
            ours = s.free_symbols
            assert ours == sympy_memos.SYMPY_FREE_SYMBOLS(s)
            ours.add(sp.Symbol("scribble"))         # a caller may change its copy ...
            assert sp.Symbol("scribble") not in s.free_symbols     # ... not the memo


def test_guarded_fold_as_sympy_or_left_alone():
    for expr in SUMS:
        body = expr.function if isinstance(expr, sp.Sum) else expr
        ours = sympy_fixes._fold_unless_bound(body)
        if sympy_fixes.binds_a_guard(body):
            assert ours is body
        else:
            assert ours == sympy_fixes._ORIGINAL(body)
    guarded = SUMS[5]
    assert m not in guarded.free_symbols        # the guard's index did not escape its sum


def test_max_min_comparisons_as_sympy_gives_them():
    from sympy.functions.elementary.miscellaneous import MinMaxBase
    assert MinMaxBase._is_connected.__func__ is sympy_memos.is_connected
    a, b = sp.symbols("a b", integer=True)
    pairs = [(a, a + 1), (a + 1, a), (a, b), (2 * a, a), (x[i], x[i] - 3), (sp.Integer(0), n - 1), (n, -n)]
    for cls in (sp.Max, sp.Min):
        for u, v in pairs:
            assert sympy_memos.is_connected(cls, u, v) == sympy_memos.SYMPY_IS_CONNECTED(cls, u, v)
    assert sp.Max(a, a + 1, b, a + 2) == sp.Max(a + 2, b)
    assert sp.Min(x[i], x[i] - 3, 0) == sp.Min(x[i] - 3, 0)
