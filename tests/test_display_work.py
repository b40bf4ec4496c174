"""Issue 17 (display): showing results reuses what an earlier display of the same subtree computed.

A run displays the same subtrees again and again (6,614 distinct subtrees in 100,603 visits, 5,336
distinct subtrees in 38,886 prints), so ``for_display``'s rebuild, the LaTeX printer and the two
``replace`` walks of ``show`` keep each subtree's result. The results are checked independently
(the index shift by the values it stands for, SymPy's own printer and ``replace`` without memos),
and the saved work by counting calls."""
import os

import pytest
import sympy as sp
from sympy.printing.latex import LatexPrinter

from symderive import display_names, indices, load_problem, sympy_memos
from symderive.indices import for_display, make_index
from symderive.latex import SheetPrinter, show

x, y, w = (sp.IndexedBase(name) for name in "xyw")
i, j, k = make_index("i", 4), make_index("j", 5), make_index("k", 3)


def _entries_as_numbers(expr, shift):
    """Each tensor entry x[n] replaced by a number that depends on n - shift and the tensor."""
    return expr.replace(lambda e: isinstance(e, sp.Indexed),
                        lambda e: sp.Integer(7 + len(str(e.base))) ** (1 + sum(a - shift for a in e.indices)))


def _shown_means_the_same(expr, shown, base, at):
    """``shown`` at the 1-based values of ``at`` equals ``expr`` at the 0-based ones."""
    original = _entries_as_numbers(expr.xreplace(at).doit(), 0)
    plain = {sp.Symbol(idx.name, integer=True): value + base for idx, value in at.items()}
    return sp.simplify(original - _entries_as_numbers(shown.xreplace(plain).doit(), base)) == 0


def _cold():
    """Forget earlier displays (``cacheit`` has no ``cache_clear`` when SYMPY_USE_CACHE=no)."""
    getattr(indices._for_display, "cache_clear", lambda: None)()
    indices._displayed.cache_clear()


def test_a_subtree_shown_twice_is_rebuilt_once_and_means_the_same(monkeypatch):
    _cold()
    shared = sp.Sum(w[k] * x[i + k], (k, 0, 2))
    first, second = sp.exp(shared) + y[i], shared ** 2 * y[j]
    rebuilt = []
    original = indices._rebuilt
    monkeypatch.setattr(indices, "_rebuilt", lambda e, *rest: rebuilt.append(e) or original(e, *rest))
    shown_first, shown_second = for_display(first, 1), for_display(second, 1)
    assert rebuilt.count(shared) == 1                     # once, though both displays hold it
    assert rebuilt.count(x[i + k]) == 1
    for at in ({i: 0, j: 4}, {i: 3, j: 1}):
        assert _shown_means_the_same(first, shown_first, 1, at)
        assert _shown_means_the_same(second, shown_second, 1, at)


def test_two_indices_of_one_name_are_told_apart_after_either_was_shown_alone():
    _cold()
    other_i = make_index("i", 7)                  # the same name, another range: another index
    alone = for_display(x[i], 1)
    both = for_display(x[i] + y[other_i], 1)
    assert alone == x[sp.Symbol("i", integer=True)]
    assert sorted(str(s) for s in both.free_symbols if s.is_integer) == ["i", "i'"]
    assert for_display(x[i], 1) == alone          # the primed display did not leak into the memo
    assert show(x[i] + y[other_i], base=1) in {"{x}_{i} + {y}_{i'}", "{x}_{i'} + {y}_{i}"}


def _printed(monkeypatch):
    """The subtrees SymPy's LaTeX printer is asked to print from now on in the test."""
    asked, original = [], LatexPrinter._print_Sum
    monkeypatch.setattr(LatexPrinter, "_print_Sum", lambda self, e: asked.append(e) or original(self, e))
    return asked


def test_a_subtree_is_printed_once_and_as_sympy_prints_it(monkeypatch):
    shared = sp.Sum(w[k] * sp.exp(x[k]), (k, 0, 2))
    first, second = shared / (1 + shared), sp.log(shared) * y[j]
    asked = _printed(monkeypatch)
    shown = show(first), show(second)
    assert len([e for e in asked if e.has(w)]) == 1       # three occurrences in two displays, printed once
    assert shown == tuple(SheetPrinter({"mul_symbol": None}).doprint(for_display(e)) for e in (first, second))


def test_printed_names_are_part_of_what_is_kept():
    expr = sp.Symbol("Wx") * x[i]
    with display_names.declared({"Wx": "W_{x}"}):
        declared = show(expr)
    with display_names.declared({"Wx": r"\omega"}):
        renamed = show(expr)
    assert (declared, renamed) == ("W_{x} {x}_{i}", r"\omega {x}_{i}")


def _replace_cases():
    a, b = sp.symbols("a b")
    f = sp.Function("f")
    return [
        (sp.sin(a) + b * a, lambda e: e == a, lambda e: 2 * a),
        (f(a) + a, lambda e: e == a, lambda e: f(a)),                 # the replacement holds what it replaces
        (a * (a * b + 1), lambda e: e.is_Mul, lambda e: 2 * e),
        (sp.floor((a + 1) / 3 + b / 3), lambda e: isinstance(e, sp.floor) and e.args[0].is_Add,
         lambda e: e.func(sp.together(e.args[0]))),
        (x[(i + 1) / 2] + x[i] * y[2 * (j - 1) + 1], lambda e: isinstance(e, sp.Indexed),
         lambda e: e.base[tuple(sp.expand(t) for t in e.indices)]),
        (sp.Sum(x[k] * sp.KroneckerDelta(k, i), (k, 0, 2)), lambda e: isinstance(e, sp.KroneckerDelta),
         lambda e: sp.S.One),
        (a + b, lambda e: e.is_Symbol, lambda e: None),                 # None leaves a node as it was
    ]


@pytest.mark.parametrize("expr,query,value", _replace_cases())
def test_the_memoized_replace_is_sympys(expr, query, value):
    memoized = sympy_memos.replacer(query, value)
    assert memoized(expr) == expr.replace(query, value)
    assert memoized(expr) == expr.replace(query, value)              # and again, from the memo


def test_the_memoized_replace_walks_a_shared_subtree_once():
    asked = []
    memoized = sympy_memos.replacer(lambda e: asked.append(e) or isinstance(e, sp.Indexed),
                                    lambda e: e.base[tuple(sp.expand(t) for t in e.indices)])
    shared = sp.Sum(x[2 * (k + 1)] * w[k], (k, 0, 2))
    assert memoized(sp.exp(shared) + shared ** 2) == (sp.exp(shared) + shared ** 2).replace(
        lambda e: isinstance(e, sp.Indexed), lambda e: e.base[tuple(sp.expand(t) for t in e.indices)])
    assert asked.count(x[2 * k + 2]) == 1


def _reference_show(expr, base):
    """``show`` as it was before the memos: SymPy's ``replace`` and printer, each display rebuilt whole."""
    shift, plain, names = sp.Integer(base), {}, {}
    for idx in sorted(expr.atoms(sp.Idx), key=lambda d: (sp.default_sort_key(d), str(d.lower), str(d.upper))):
        name = idx.name
        while name in names and names[name] != idx:
            name += "'"
        names[name] = idx
        plain[idx] = sp.Symbol(name, integer=True) - shift

    def rebuild(e):
        if isinstance(e, sp.Indexed):
            return e.base[tuple(sp.expand(rebuild(a) + shift) for a in e.indices)]
        if isinstance(e, sp.KroneckerDelta):
            return sp.KroneckerDelta(*[sp.expand(rebuild(a) + shift) for a in e.args])
        if isinstance(e, (sp.Sum, sp.Product)):
            limits = [(plain[v] + shift if v in plain else sp.Symbol(v.name, integer=True),
                       sp.expand(rebuild(lo) + shift), sp.expand(rebuild(hi) + shift)) for v, lo, hi in e.limits]
            return e.func(rebuild(e.function), *limits)
        if isinstance(e, sp.Idx):
            return plain[e]
        return e.func(*[rebuild(a) for a in e.args]) if e.args else e

    shown = rebuild(expr).replace(lambda e: isinstance(e, sp.Indexed),
                                  lambda e: e.base[tuple(sp.expand(a) for a in e.indices)])
    shown = shown.replace(lambda e: isinstance(e, (sp.floor, sp.ceiling)) and e.args[0].is_Add,
                          lambda e: e.func(sp.together(e.args[0])))
    shown = shown.replace(lambda e: isinstance(e, sp.Indexed) and any(
        sp.fraction(sp.together(a))[1] != 1 for a in e.indices),
        lambda e: e.base[tuple(sp.together(a) for a in e.indices)])
    return SheetPrinter({"mul_symbol": None}).doprint(shown)


PROBLEMS = os.path.join(os.path.dirname(__file__), "..", "problems")


@pytest.mark.parametrize("name", ["batched-conv-and-pooling", "matrix-calculus"])
def test_shipped_answers_are_shown_as_before(name):
    """Every expression value of two shipped files' answers: LaTeX equal to the reference's."""
    problem = load_problem(os.path.join(PROBLEMS, f"{name}.yaml"))
    shown = 0
    for answer in problem.solve():
        with display_names.declared(answer.names):
            for result in answer.results:
                if isinstance(result.value, sp.Expr):
                    assert show(result.value, problem.index_base) == _reference_show(result.value, problem.index_base)
                    shown += 1
    assert shown >= 10


def test_terminal_lines_print_a_subtree_once_and_as_sympy_prints_it(monkeypatch):
    from symderive import terminal
    shared = sp.Sum(w[k] * sp.tanh(x[k] * y[k]), (k, 0, 2))   # in no other test
    first, second = shared / (1 + shared) + sp.Float(1.5), sp.log(shared) * y[j]
    asked, original = [], terminal.UnicodePrinter._print_Sum
    monkeypatch.setattr(terminal.UnicodePrinter, "_print_Sum", lambda self, e: asked.append(e) or original(self, e))
    shown = terminal.formula(first), terminal.formula(second)
    assert len(asked) == 1                                 # three occurrences in two lines, printed once
    assert shown == tuple(_formula_without_memo(terminal, e) for e in (first, second))
    assert (terminal.formula(sp.Float(2.0)), terminal.formula(sp.Float(2.0) * sp.Symbol("a"))) == \
        ("2.00000000000000", "2.0·a")                     # SymPy strips a Float's zeros below the top only


def _formula_without_memo(terminal, value):
    """``terminal.formula`` with a fresh SymPy printer, as before the memo."""
    import re
    shown = terminal.UnicodePrinter().doprint(for_display(value))
    shown = re.sub(r"\*\*2\b", "²", shown)
    shown = re.sub(r"\*\*(\w+|\([^()]*\))", r"^\1", shown)
    return shown.replace("*", "·")
