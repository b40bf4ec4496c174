"""Issue 17 (nyu24-1.2.2e/f): contraction visits each distinct subtree once, and folding skips what
cannot hold a definition. The results are checked independently (numeric values of the sums, the
definition substituted back), and the skipped work is checked by counting calls."""
import sympy as sp

from symderive import contract as contract_module, simplify
from symderive.contract import contract
from symderive.indices import make_index
from symderive.simplify import fold

w, x, z, v = (sp.IndexedBase(name) for name in "wxzv")
q, h = sp.IndexedBase("q"), sp.IndexedBase("h")
i, j, k = make_index("i", 2), make_index("j", 5), make_index("k", 3)


def _values(expr, at):
    """``expr`` at concrete indices with every tensor entry replaced by a fixed number."""
    expr = expr.xreplace(at).doit()
    entries = sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key)
    return expr.xreplace({e: sp.Rational(n + 2, n + 3) for n, e in enumerate(entries)})


def test_a_repeated_subtree_is_contracted_once_and_right(monkeypatch):
    shared = sp.Sum(w[k] * sp.KroneckerDelta(2 * i + k, j), (k, 0, 2))      # a delta a sum absorbs
    expr = sp.exp(shared) * x[j] + sp.exp(shared) * z[j] + shared ** 2
    calls = []
    original = contract_module.contract_term
    monkeypatch.setattr(contract_module, "contract_term", lambda term: calls.append(term) or original(term))
    contracted = contract(expr)
    assert len(calls) == 1                           # the sum occurs three times, and is one subtree
    assert not contracted.has(sp.KroneckerDelta, sp.Sum)
    for at_i in range(2):
        for at_j in range(5):
            at = {i: at_i, j: at_j}
            assert _values(contracted, at) == _values(expr, at)


def _softmax(a):
    return sp.exp(z[a]) / sp.Sum(sp.exp(z[k]), (k, 0, 2))


def test_a_definition_deep_inside_is_folded_and_means_the_same():
    a = sp.Wild("a")
    expr = sp.Sum(sp.Piecewise((x[i] * _softmax(i) * v[j], j >= 1), (0, True)), (i, 0, 1)) + w[j]
    folded = fold(expr, [(q[a], _softmax(a))])
    assert folded.has(q) and not folded.has(sp.exp)
    back = folded.replace(lambda e: isinstance(e, sp.Indexed) and e.base == q, lambda e: _softmax(e.indices[0]))
    for at_j in range(5):
        assert _values(back, {j: at_j}) == _values(expr, {j: at_j})


def _record_matches(monkeypatch):
    """The expressions ``match`` is called on, from now on in the test."""
    matched, original = [], sp.Basic.match
    monkeypatch.setattr(sp.Basic, "match", lambda self, *a, **kw: matched.append(self) or original(self, *a, **kw))
    return matched


def test_a_subtree_without_the_definitions_tensors_is_not_searched(monkeypatch):
    a = sp.Wild("a")
    expr = sp.Sum(x[i] * sp.exp(w[i]) / sp.Sum(sp.exp(w[k]), (k, 0, 2)), (i, 0, 1))   # no z: no softmax of z
    matched = _record_matches(monkeypatch)
    assert fold(expr, [(q[a], _softmax(a))]) is expr
    assert matched == []


def test_a_sum_of_more_terms_than_an_add_definition_is_not_matched(monkeypatch):
    a = sp.Wild("a")
    definition = x[a] * v[a] + z[a] * w[a]                   # h[a] = x v + z w, an Add
    matched = _record_matches(monkeypatch)
    exact = x[j] * v[j] + z[j] * w[j]
    assert fold(exact, [(h[a], definition)]) == h[j]
    longer = exact + x[j]
    assert fold(longer, [(h[a], definition)]) == longer         # h is the whole Add or nothing
    assert longer not in matched and simplify.alpha_normal(longer) not in matched


def test_renaming_apart_keeps_what_needs_no_renaming_and_names_as_before():
    from symderive.indices import INDEX_LETTERS, rename_bound_apart
    expr = x[i] * sp.Sum(x[j] * sp.Sum(w[k], (k, 0, 2)), (j, 0, 4))
    assert rename_bound_apart(expr, {"q"}) is expr                      # nothing clashes: the same tree
    renamed = rename_bound_apart(expr, {"j"} | set(INDEX_LETTERS))       # every letter taken: j2, the first
    assert renamed.has(sp.Symbol("j2", integer=True)) and not renamed.has(sp.Symbol("j", integer=True))


def test_subscripts_are_tidied_and_tidy_entries_kept():
    from symderive.contract import tidy_subscripts
    D, p = sp.Symbol("D", integer=True, positive=True), sp.Symbol("p", integer=True)
    tidied = tidy_subscripts(x[p - 1 + (D - p + 2) / D] + w[p])
    (sub,) = next(e for e in tidied.atoms(sp.Indexed) if e.base == x).indices
    num, den = sp.fraction(sub)                          # one fraction, (D p − p + 2)/D, the same value
    assert den == D and sp.expand(num - (D * p - p + 2)) == 0
    assert w[p] in tidied.atoms(sp.Indexed)
    entry = w[p + 1]
    assert tidy_subscripts(entry) is entry


def test_a_guarded_sum_where_nothing_folds_is_kept_as_it_is():
    """Nothing rebuilt when nothing folds: the guard's Piecewise and its sum are the same objects."""
    a = sp.Wild("a")
    expr = sp.Sum(sp.Piecewise((x[i] * sp.exp(z[i]) * v[j], j >= 1), (0, True)), (i, 0, 1)) + w[j]   # z, no softmax
    assert fold(expr, [(q[a], _softmax(a))]) is expr


def test_a_factor_naming_another_tensor_is_not_matched_but_labels_in_a_subscript_are_no_obstacle(monkeypatch):
    a, n = sp.Wild("a"), sp.Symbol("n", integer=True)
    labels, g = sp.IndexedBase("y"), sp.IndexedBase("g")
    matched = _record_matches(monkeypatch)
    picked = x[n] * _softmax(labels[n])                       # the softmax at the label: z[y[n]]
    assert fold(picked, [(q[a], _softmax(a))]) == x[n] * q[labels[n]]
    other = sp.Sum(g[i] * sp.exp(z[i] + g[i]), (i, 0, 1)) / sp.Sum(sp.exp(z[k]), (k, 0, 2))   # g beside z
    assert fold(other, [(q[a], _softmax(a))]) == other
    assert not any(m.has(g) for m in matched)
