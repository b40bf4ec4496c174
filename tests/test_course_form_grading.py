"""Grading answers written in a course's form (issues 12 and 14): the names a sheet defines (ŷ = softmax of
the scores, P on a batch, y/Y the one-hot of a label) are recorded once on the Answer
(``course_forms.Intermediate``) and read by the checker as their definitions.

The definitions are checked here against NumPy (softmax, one-hot), not against the engine; the verdicts of
the realistic answers are in tests/grading_collection/answers.yaml (kind ``course form``).
"""
import pickle

import numpy as np
import pytest
import sympy as sp

from symderive import load_problem
from symderive.answer import Kind
from symderive.checking.grade import check_one, prepare

PROBLEM = "problems/course-forms.yaml"


@pytest.fixture(scope="module")
def infos():
    problem = load_problem(PROBLEM)
    return prepare(problem, {"w2v-dv", "softmax-regression-l2", "batchnorm-dx", "tanh-regression"})


def verdict(info, latex):
    return check_one(info, latex, 60)


def test_the_sheet_records_what_it_names(infos):
    """ŷ and y of word2vec: ŷ_c = softmax(s)_c and y_c = [c = o], compared with NumPy at random values."""
    names = infos["w2v-dv"].answer.intermediates
    assert set(names) == {"yhat", "y"}
    yhat, y = names["yhat"], names["y"]
    assert yhat.tex in (r"{\hat{y}}", r"\hat{y}") and y.tex == "y"
    rng = np.random.default_rng(3)
    V = 5
    s = rng.normal(size=V)
    for c in range(V):
        e = yhat.at((sp.Integer(c),))
        e = e.xreplace({sym: V for sym in e.free_symbols if getattr(sym, "name", "") == "V"}).doit()
        e = e.replace(lambda a: isinstance(a, sp.Indexed) and a.base.label.name == "s",
                      lambda a: sp.Float(s[int(a.indices[0])], 30))
        assert float(e) == pytest.approx(np.exp(s[c]) / np.exp(s).sum(), rel=1e-12)
        label = y.at((sp.Integer(c),))
        assert label.xreplace({sym: 2 for sym in label.free_symbols if sym.name == "o"}) == (1 if c == 2 else 0)


def test_the_record_pickles_for_the_answer_cache(infos):
    answer = infos["softmax-regression-l2"].answer
    again = pickle.loads(pickle.dumps(answer))
    # the course's names, and the δ's of the layer-by-layer derivation (a stack of three layers)
    assert {"P", "Y"} <= again.intermediates.keys()
    assert all(name.startswith("delta__") and again.intermediates[name].computed
               for name in again.intermediates.keys() - {"P", "Y"})
    assert again.intermediates["P"].element == answer.intermediates["P"].element


def test_the_course_form_is_boxed_beside_the_element_formula(infos):
    results = infos["w2v-dv"].answer.results
    keys = [r.key for r in results]
    assert keys.index("element") < keys.index("course element") < keys.index(Kind.MATRIX_FORM.value)
    course = next(r for r in results if r.key == "course element")
    assert course.kind is Kind.ELEMENT and r"\hat{y}" in course.latex


@pytest.mark.parametrize("latex", [r"U(\hat{y} - y)", r"U(\hat y - y)", r"U \left({\hat{y}} - y\right)",
                                   r"\frac{\partial J}{\partial v_c} = U\hat{y} - U y",
                                   r"\sum_{j=0}^{V-1} U_{p,j} (\hat{y}_j - y_j)"])
def test_named_answers_read_as_their_definitions(infos, latex):
    assert verdict(infos["w2v-dv"], latex).verdict == "correct"


@pytest.mark.parametrize("latex", [r"U(y - \hat{y})", r"U\hat{y}", r"-U_{p,0} + \sum_{j=0}^{V-1} U_{p,j} \hat{y}_j"])
def test_wrong_named_answers_are_wrong(infos, latex):
    """The last one picks column 0 instead of the label's: the label o is drawn as a class (0 ≤ o < V), so
    this is told apart from −U_{p,o} (it was drawn as a real number before)."""
    assert verdict(infos["w2v-dv"], latex).verdict == "incorrect"


def test_the_label_picked_column_reads_back(infos):
    assert verdict(infos["w2v-dv"], r"-U_{p,o} + \sum_{j=0}^{V-1} U_{p,j} \hat{y}_j").verdict == "correct"


def test_an_undeclared_name_lists_what_the_sheet_defines(infos):
    v = verdict(infos["w2v-dv"], r"U(\hat{y} - z)")
    assert v.verdict == "unknown name"
    assert r"\operatorname{softmax}(s)" in v.evidence and r"y = \operatorname{onehot}(o)" in v.evidence
    assert "'z' is not declared" in v.evidence


def test_names_are_parsed_never_evaluated(infos):
    for hostile in (r"\hat{__import__}(y)", r"P.__class__", r"\hat{y}[0].__class__"):
        v = verdict(infos["w2v-dv"], hostile)
        assert v.verdict in ("unparseable", "unknown name", "incorrect"), (hostile, v)


def test_batch_names_and_the_other_name_for_P(infos):
    info = infos["softmax-regression-l2"]
    for latex in (r"\frac{1}{N} X^T (P - Y) + 2\lambda W", r"\frac{1}{N} X^\top (\hat{Y} - Y) + 2\lambda W"):
        assert verdict(info, latex).verdict == "correct", latex
    assert verdict(info, r"\frac{1}{N} X^T (P - Y)").verdict == "incorrect"


def test_a_declared_layer_with_an_accent_reads_without_braces(infos):
    info = infos["batchnorm-dx"]
    latex = r"\frac{\gamma}{N\sqrt{\sigma^2+\epsilon}}(N g - \sum_n g_n - \hat x \sum_n g_n \hat x_n)"
    assert verdict(info, latex).verdict == "correct"


def test_the_sums_of_entries_are_printed_with_their_index(infos):
    """Σ_n g of the vector g reads as N g to a grader; the sheet writes Σ_n g_n, which reads back."""
    form = next(r for r in infos["batchnorm-dx"].answer.results if r.kind is Kind.MATRIX_FORM)
    assert r"\sum_{n=0}^{N - 1} {g}_{n}" in form.latex and r"\sum_{n=0}^{N - 1} g -" not in form.latex
    assert verdict(infos["batchnorm-dx"], form.latex).verdict == "correct"


def test_the_statement_rows_alias(infos):
    info = infos["tanh-regression"]
    good = r"\frac{2}{N} \sum_{n} (\tanh(w^T x_n) - y_n)(1 - \tanh^2(w^T x_n)) x_n"
    assert verdict(info, good).verdict == "correct"
    assert verdict(info, good.replace(r"\frac{2}{N}", "2")).verdict == "incorrect"


def test_a_row_of_a_matrix_and_a_step_of_a_vector():
    """dy[i] of a matrix is its row (PyTorch's indexing); H(1 + a) of a vector is entry by entry."""
    problem = load_problem("problems/normalization-and-transposed-conv.yaml")
    info = prepare(problem, {"cs231n-bn-dbeta"})["cs231n-bn-dbeta"]
    assert verdict(info, r"\sum_{i=0}^{N-1} \mathrm{dy}[i]").verdict == "correct"
    assert verdict(info, r"\mathrm{dy}[0]").verdict == "incorrect"
    problem = load_problem("problems/coursework-layers.yaml")
    info = prepare(problem, {"goodfellow-hard-tanh"})["goodfellow-hard-tanh"]
    assert verdict(info, r"((H(1 + a) - H(a - 1)) \odot g) x^T").verdict == "correct"
    assert verdict(info, r"(H(a) \odot g) x^T").verdict == "incorrect"


@pytest.fixture(scope="module")
def backprop_info():
    problem = load_problem(PROBLEM)
    return prepare(problem, {"one-hidden-layer-backprop"})["one-hidden-layer-backprop"]


@pytest.mark.parametrize("latex, expected", [
    (r"W_1 \delta^{z_1}", "correct"),                                      # the sheet's own last step
    (r"W_1 ((1 - a) \odot a \odot \delta^{a})", "correct"),               # one δ further up
    (r"W_1 (a \odot \delta^{a})", "incorrect"),                            # the sigmoid's derivative wrong
    # written out to the softmax: δ^a = W_2 δ^t, δ^t = ŷ − onehot(k)
    (r"\sum_{h=0}^{H-1} {W_1}_{p,h} a_h (1 - a_h) \sum_{c=0}^{C-1} {W_2}_{h,c} (\hat{y}_c - \delta_{c k})", "correct"),
    (r"\sum_{h=0}^{H-1} {W_1}_{p,h} a_h (1 - a_h) \sum_{c=0}^{C-1} {W_2}_{h,c} (\delta_{c k} - \hat{y}_c)",
     "incorrect"),
])
def test_backprop_deltas_are_their_definitions(backprop_info, latex, expected):
    """Backpropagation's δ's are computed from their steps at each test point (not drawn at random), so an
    answer with any δ of the chain, or none, is graded against the same gradient."""
    assert set(backprop_info.computed) == {"delta__t", "delta__a", "delta__z1"}
    assert verdict(backprop_info, latex).verdict == expected
