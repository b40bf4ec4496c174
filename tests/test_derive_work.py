"""Issue 17, fifth round (CPU of derivations): a replacement walk that visits each distinct subtree
once, and index names collected per subtree. Each gives what SymPy's own walk gives
(``Basic.replace``, ``atoms``), checked on sums that repeat, nest and shadow their parts, and the
saved work is counted."""
import sympy as sp

from symderive import sympy_memos
from symderive.indices import _names_in, make_index, names_in
from symderive.layers.base import expand_layers

x, y, t = sp.IndexedBase("x"), sp.IndexedBase("y"), sp.IndexedBase("t")
n = sp.Symbol("n", integer=True, positive=True)
i, j, k = make_index("i", n), make_index("j", n), make_index("k", n)
softmax_denominator = sp.Sum(sp.exp(x[k]), (k, 0, n - 1))
EXPRESSIONS = [
    sp.exp(x[i]) / softmax_denominator * y[i] + sp.exp(x[j]) / softmax_denominator * y[j] + softmax_denominator,
    sp.Sum(x[j] * sp.Sum(x[j, i] * t[i], (j, 0, n - 1)), (j, 0, n - 1)),                         # shadowing
    sp.Sum((y[j] - t[j]) ** 2 * sp.Sum(sp.Piecewise((x[k], j - 2 * k >= 0), (0, True)), (k, 0, n - 1)),
           (j, 0, n - 1)),                                                                       # a guard
    sp.tanh(x[i] + y[i]) ** 2 + sp.tanh(x[i] + y[i]) * (x[i] + y[i]),
]
RULES = [   # (query, value) pairs of the kinds the engine uses
    (lambda e: isinstance(e, sp.Indexed) and e.base == x, lambda e: t[e.indices]),
    (lambda e: isinstance(e, sp.Sum), lambda e: sp.Sum(2 * e.function, *e.limits)),
    (lambda e: isinstance(e, sp.Add), lambda e: sp.factor_terms(e)),
    (lambda e: e == x[i] + y[i], lambda e: x[i]),                   # makes a node equal to its argument
    (lambda e: isinstance(e, sp.exp), lambda e: None),             # a value of None keeps the node
]


def test_replace_gives_what_sympy_replace_gives():
    for expr in EXPRESSIONS:
        for query, value in RULES:
            assert sp.srepr(sympy_memos.replace(expr, query, value)) == sp.srepr(expr.replace(query, value))
    assert sympy_memos.replace(3, lambda e: True, lambda e: 4) == 3     # not a SymPy tree: as it is


def test_replace_visits_each_distinct_subtree_once():
    expr = EXPRESSIONS[0]
    seen = []
    sympy_memos.replace(expr, lambda e: seen.append(e) or False, lambda e: e)
    distinct = set(sp.preorder_traversal(expr))
    assert len(seen) == len(distinct) and set(seen) == distinct
    sympy_seen = []
    expr.replace(lambda e: sympy_seen.append(e) or False, lambda e: e)
    assert len(sympy_seen) == sum(1 for _ in sp.preorder_traversal(expr)) > len(seen)    # SymPy: every copy


def test_expanding_a_layer_used_twice_expands_it_once():
    """``expand_layers`` through ``replace``: a layer entry that occurs in several places is
    expanded once, and the result is the definition substituted (checked with xreplace)."""
    class Layer:
        shape, base = (n,), sp.IndexedBase("h")
        calls = 0

        def element(self, idx, expand=False, avoid=()):
            Layer.calls += 1
            return sp.tanh(x[idx[0]] + y[idx[0]])

    h = Layer.base
    expr = h[i] ** 2 + h[i] * t[i] + sp.exp(h[i])
    expanded = expand_layers(expr, {"h": Layer()})
    assert Layer.calls == 1
    assert expanded == expr.xreplace({h[i]: sp.tanh(x[i] + y[i])})


def test_names_in_as_atoms_give_them():
    for expr in EXPRESSIONS + [x[2 * i + 1], sp.Symbol("a") + sp.Dummy("b"), sp.Integer(3)]:
        reference = {s.name for s in expr.atoms(sp.Symbol)} | {s.name for s in expr.atoms(sp.Idx)}
        assert names_in(expr) == reference
    assert names_in(EXPRESSIONS[1]) == {"x", "t", "i", "j", "n"}


def test_names_in_of_a_new_tree_looks_only_at_its_new_nodes():
    from sympy.core.cache import clear_cache
    clear_cache()
    names_in(EXPRESSIONS[0])
    before = _names_in.cache_info().misses
    names_in(EXPRESSIONS[0] + t[i])
    # new nodes: the new sum and t[i] (t, i and t's label were not in EXPRESSIONS[0]; i was): t[i],
    # IndexedBase t, Symbol t, and the Add -- i, n and its bounds were seen
    assert _names_in.cache_info().misses - before == 4


def test_conditions_are_decided_once_and_right(monkeypatch):
    """``simplify_conditions`` decides each distinct condition once; its verdicts are checked by
    trying every index value of a small range."""
    from sympy.core.cache import clear_cache
    from symderive import contract as contract_module
    clear_cache()
    K = 4
    a, b = make_index("a", K), make_index("b", K)
    conds = [a + b >= 0, a - b <= K - 1, a >= 1, 2 * a + 1 > 2 * K, (a + 1) / sp.Integer(2) >= 0]
    calls = []
    original = contract_module.always
    monkeypatch.setattr(contract_module, "always", lambda cond: calls.append(cond) or original(cond))
    for _ in range(3):
        kept = contract_module.simplify_conditions(conds[:3] + conds[4:])
    assert len(calls) == 4                                  # four distinct conditions, each decided once
    assert kept == [a >= 1]                                 # the others hold for every a, b in 0..3
    assert contract_module.simplify_conditions(conds) is False
    for cond in conds:
        holds = {bool(cond.subs({a: u, b: v})) for u in range(K) for v in range(K)}
        verdict = original(contract_module.clear_denominators(cond))
        assert verdict == (True if holds == {True} else False if holds == {False} else None), cond


def test_numbers_are_tidied_once_and_to_an_equal_value(monkeypatch):
    from sympy.core.cache import clear_cache
    from symderive import numeric_network
    clear_cache()
    factored = []
    original = sp.factor
    monkeypatch.setattr(sp, "factor", lambda e, *a, **k: factored.append(e) or original(e, *a, **k))
    value = sp.tanh(sp.Rational(7, 10)) * (1 - sp.tanh(sp.Rational(7, 10)) ** 2) + 2 * sp.tanh(sp.Rational(7, 10))
    tidied = [numeric_network.tidy(value) for _ in range(4)]
    assert len(factored) == 1 and all(t is tidied[0] for t in tidied)
    assert abs(sp.N(tidied[0] - value, 30)) < 1e-25 and sp.count_ops(tidied[0]) <= sp.count_ops(value)
    assert numeric_network.tidy(3) == 3 and numeric_network.tidy(0.5) == sp.Float(0.5)


def test_sums_written_out_as_doit_writes_them(monkeypatch):
    """``derivative.written_out`` gives SymPy's ``doit`` (its own reference) on sums over ranges, nested
    sums whose inner limit is the outer index, guarded bodies, deltas, an empty range, and it
    leaves to ``doit`` what it does not write out: a symbolic limit, a backward range, a Derivative."""
    import importlib
    derivative_module = importlib.import_module("symderive.derivative")
    a, b = make_index("a", 4), make_index("b", 4)
    cases = [
        sp.Sum(x[a] * y[a], (a, 0, 3)),
        sp.Sum(x[a] * sp.Sum(x[b] * t[a, b], (b, 0, a)), (a, 0, 3)),
        sp.Sum(sp.Piecewise((x[a], a >= 2), (0, True)) * y[a], (a, 0, 3)),
        sp.Sum(x[a] * sp.KroneckerDelta(a, 2) + sp.KroneckerDelta(a, b) * y[b], (a, 0, 3), (b, 1, 2)),
        sp.Sum(x[a], (a, 2, 1)) + y[0],                                    # empty: 0
        sp.exp(sp.Sum(x[a], (a, 1, 3))) / sp.Sum(sp.exp(x[a]), (a, 0, 3)),
    ]
    for expr in cases:
        assert sp.srepr(derivative_module.written_out(expr)) == sp.srepr(expr.doit()), expr
    m = sp.Symbol("m", integer=True)
    assert derivative_module.written_out(sp.Sum(x[m], (m, 0, n))) is None
    assert derivative_module.written_out(sp.Sum(x[m], (m, 3, 0))) is None            # Karr: −(x[1] + x[2])
    assert derivative_module.written_out(sp.Derivative(sp.Sum(x[a] * m, (a, 0, 1)), m)) is None
    shadowed = sp.Sum(x[a] * sp.Sum(y[a], (a, 0, 2)), (a, 0, 1))          # the inner Σ binds a again
    assert derivative_module.written_out(shadowed) is None
    assert derivative_module.evaluated(shadowed) == (x[0] + x[1]) * (y[0] + y[1] + y[2])
    doit_calls, reference = [], cases[1].doit()
    original = sp.Sum.doit
    monkeypatch.setattr(sp.Sum, "doit", lambda self, **hints: doit_calls.append(self) or original(self, **hints))
    assert derivative_module.entry(cases[1], (), (), {}) == reference
    assert not doit_calls                                                # written out, not searched


def test_evaluated_is_doit():
    """``evaluated`` (the numeric passes' entry evaluation) equals ``doit`` on a max-pool of a
    convolution entry, a relu of a sum, and an expression without sums (which ``doit`` itself does)."""
    import importlib
    derivative_module = importlib.import_module("symderive.derivative")
    a = make_index("a", 3)
    conv = [sp.Sum(x[a + p] * y[a], (a, 0, 2)) for p in range(2)]
    cases = [sp.Max(*conv), sp.Heaviside(conv[0]) * conv[1], sp.Max(x[0], x[1]) + sp.Derivative(x[0] ** 2, x[0])]
    for expr in cases:
        assert sp.srepr(derivative_module.evaluated(expr)) == sp.srepr(expr.doit())
    assert derivative_module.evaluated(cases[2]) == sp.Max(x[0], x[1]) + 2 * x[0]


def test_a_formula_is_contracted_once(monkeypatch):
    from sympy.core.cache import clear_cache
    from symderive import contract as contract_module
    clear_cache()
    w = sp.IndexedBase("w")
    a, b, c = make_index("a", 2), make_index("b", 5), make_index("c", 3)
    expr = sp.Sum(w[c] * sp.KroneckerDelta(2 * a + c, b), (c, 0, 2)) * x[b]
    calls = []
    original = contract_module.contract_term
    monkeypatch.setattr(contract_module, "contract_term", lambda term: calls.append(term) or original(term))
    first = [contract_module.contract(expr) for _ in range(3)]
    assert len(calls) == 1 and first[0] is first[1] is first[2]
    for at_a in range(2):                 # Σ_c w[c] δ(2a + c, b) = w[b − 2a] when 0 ≤ b − 2a ≤ 2
        for at_b in range(5):
            value = first[0].xreplace({a: at_a, b: at_b})
            assert value == (w[at_b - 2 * at_a] * x[at_b] if 0 <= at_b - 2 * at_a <= 2 else 0)


def test_an_element_is_differentiated_once(monkeypatch):
    """``derivative.differentiated``: d/dx[b] Σ_a exp(x[a]) y[a] = exp(x[b]) y[b] (checked at numbers),
    with the zero sums diff leaves dropped, and the same element differentiated once."""
    import importlib
    from sympy.core.cache import clear_cache
    derivative_module = importlib.import_module("symderive.derivative")
    clear_cache()
    a, b = make_index("a", 3), make_index("b", 3)
    element = sp.Sum(sp.exp(x[a]) * y[a], (a, 0, 2)) + t[0]
    calls = []
    original = sp.diff
    monkeypatch.setattr(sp, "diff", lambda *args: calls.append(args) or original(*args))
    results = [derivative_module.differentiated(element, x[b]) for _ in range(3)]
    assert len(calls) == 1 and results[0] is results[2]
    values = {x[k]: sp.Rational(k + 1, 3) for k in range(3)} | {y[k]: k - 1 for k in range(3)}
    for at_b in range(3):
        got = results[0].xreplace({b: at_b}).doit().xreplace(values)
        assert sp.simplify(got - sp.exp(sp.Rational(at_b + 1, 3)) * (at_b - 1)) == 0
    assert not derivative_module.differentiated(sp.Sum(y[a], (a, 0, 2)), x[b]).has(sp.Sum)     # no Σ 0
