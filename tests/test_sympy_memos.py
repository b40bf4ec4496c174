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


def _bodies_and_limits():
    """Bodies with and without Piecewise (one guarded by the summation index, one not, one nested
    in an inner sum), nested sums to denest, and each SUMS entry's own body and limits."""
    p_free = sp.Piecewise((x[j], j > 0), (0, True))                 # no summation index: masked off
    p_bound = sp.Piecewise((x[i], i > 1), (0, True))                # holds i: folded to the top
    cases = [(expr.function, tuple(expr.limits)) for expr in SUMS if isinstance(expr, sp.Sum)]
    cases += [(p_free * p_bound + y[i], ((i, 0, n - 1),)),
              (sp.exp(p_bound) + p_free, ((i, 0, n - 1),)),
              (sp.Sum(x[i, j], (j, 0, n - 1)), ((i, 0, n - 1),)),   # denested by Sum's constructor
              (y[i] * t[i], ((i, 0, n - 1),)),
              (p_bound, ((i, 0, n - 1),)),                                  # a flat guard: not folded
              (sp.Piecewise((x[i] * y[i], (i > 1) & (i < n - 2)), (0, True)), ((i, 0, n - 1),))]
    return cases


def test_sum_construction_as_sympy_builds_it():
    """SymPy's own ``_common_new`` (kept as SYMPY_COMMON_NEW) gives the same body, limits and
    orientation, for Sum and Integral, and for the cases left to it."""
    from sympy.concrete import expr_with_limits
    assert expr_with_limits._common_new is sympy_memos.common_new
    s = sp.Symbol("s")
    for body, limits in _bodies_and_limits():
        for cls, discrete in ((sp.Sum, True), (sp.Integral, False)):
            ours = sympy_memos.common_new(cls, body, *limits, discrete=discrete)
            theirs = sympy_memos.SYMPY_COMMON_NEW(cls, body, *limits, discrete=discrete)
            assert sp.srepr(ours[0]) == sp.srepr(theirs[0]) and list(ours[1]) == list(theirs[1]) \
                and ours[2] == theirs[2], (cls, body)
    assert sp.Sum(sp.Eq(x[i], y[i]), (i, 0, 2)) == sp.Eq(sp.Sum(x[i], (i, 0, 2)), sp.Sum(y[i], (i, 0, 2)))
    assert sp.Sum(s, (s, sp.Range(1, 7, 2))).doit() == 1 + 3 + 5           # a Range: SymPy's own path


def test_sum_construction_walks_each_body_once(monkeypatch):
    """Counted: a body without a Piecewise is never searched with ``atoms``; one with a Piecewise is
    folded once however often an equal sum is built; a new body made of old parts looks only at
    its new nodes."""
    from sympy.core.cache import clear_cache
    clear_cache()
    calls = {"atoms": 0, "fold": 0}
    real_atoms, real_fold = sp.Basic.atoms, sympy_fixes._fold_unless_bound
    folding = []

    def counting_atoms(self, *types):
        calls["atoms"] += not folding              # the constructor's own searches, not piecewise_fold's
        return real_atoms(self, *types)

    def counting_fold(expr, evaluate=True):
        calls["fold"] += 1
        folding.append(expr)
        try:
            return real_fold(expr, evaluate)
        finally:
            folding.pop()

    monkeypatch.setattr(sp.Basic, "atoms", counting_atoms)
    monkeypatch.setattr("sympy.concrete.expr_with_limits.piecewise_fold", counting_fold)
    plain = sp.exp(x[i]) * y[i] + t[i] ** 2
    for _ in range(5):
        sp.Sum(plain, (i, 0, n - 1))
    assert calls == {"atoms": 0, "fold": 0}
    guarded = plain * sp.Piecewise((x[i], i > 1), (0, True))
    for _ in range(5):
        folded = sp.Sum(guarded, (i, 0, n - 1))
    assert calls["atoms"] == 0 and calls["fold"] == 1
    assert isinstance(folded.function, sp.Piecewise)                        # SymPy folded it to the top
    before = sympy_memos.piecewise_atoms.cache_info().misses
    sp.Sum(guarded + sp.Piecewise((y[i], i > 2), (0, True)), (i, 0, n - 1))
    # new nodes: the sum of the two, the new Piecewise, its pair (y[i], i > 2) and i > 2; y[i], i, 0 and
    # 2 (the square's exponent) were looked at already
    assert sympy_memos.piecewise_atoms.cache_info().misses - before == 4
    clear_cache()
