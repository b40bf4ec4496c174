"""No name means two things: free indices are never captured by a layer's own summation index.

A softmax layer a = softmax(z) sums over an index of its own; when a question's free index has
the same name (∂L/∂z_j with Σ_j e^{z_j} inside a), substituting without renaming binds the free
index to the sum and turns a true identity into a false one. These tests check

- the reported case and its variants, proved, and false variants failing at a point that is
  re-evaluated here with NumPy;
- the capture-free substitution itself, against evaluation of the sums written out;
- that renaming every name of a problem (declared tensors, layers and sizes, free and bound
  indices, to any names that do not clash, including each other's old names) changes no answer
  except by that renaming, and no status (hypothesis, over the shipped problems and over course
  problems written here);
- that the checker's verdicts do not depend on the names either;
- that a displayed answer never gives one name to an index and to a tensor, layer or size, nor
  to a free and a bound index.
"""
import functools
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from helpers import NO_PDF, parse_counterexample, run_cli
from symderive.answer import Status
from symderive.indices import for_display, make_index, rename_bound_apart, substitute
import symderive.prove as prove
from symderive.problem import load_problem
from symderive.simplify import alpha_normal, canonical_sums, combine_sums
from renaming import (declared_names, dump_spec, free_indices, index_letters_first, load_spec, question_names,
                      rename_spec, renamable_names, same_value, valid_targets)

ROOT = Path(__file__).resolve().parents[1]

ISSUE = """\
title: softmax cross-entropy by the logits
index_base: {base}
sizes: [C]
tensors:
  z: [C]
  y: [C]
layers:
  a: softmax(z)
  L: -Sum(y[{k}] * log(a[{k}]), ({k}, {lo}, {hi}))
questions:
  - id: q
    statement: 'Prove $\\partial L/\\partial z_j = a_j - y_j$ given $\\sum_k y_k = 1$.'
    ask: prove
    lhs: diff(L, z[{j}])
    rhs: {rhs}
    constraints: ["Sum(y[{k}], ({k}, {lo}, {hi})) == 1"]
"""


def issue_file(tmp_path, j="j", k="k", base=1, rhs="a[{j}] - y[{j}]"):
    lo, hi = (1, "C") if base == 1 else (0, "C - 1")
    text = ISSUE.format(base=base, j=j, k=k, lo=lo, hi=hi, rhs=rhs.format(j=j))
    path = tmp_path / "softmax.yaml"
    path.write_text(text)
    return load_problem(path)


# ---------------------------------------------------------------------------------------------
# Independent references (NumPy)
# ---------------------------------------------------------------------------------------------
def softmax(z):
    e = np.exp(np.asarray(z, dtype=float) - np.max(z))
    return e / e.sum()


def cross_entropy(z, y):
    return -float(np.dot(y, np.log(softmax(z))))


def numeric_gradient(f, z, h=1e-6):
    z = np.asarray(z, dtype=float)
    out = np.zeros_like(z)
    for n in range(z.size):
        step = np.zeros_like(z)
        step[n] = h
        out[n] = (f(z + step) - f(z - step)) / (2 * h)
    return out




# ---------------------------------------------------------------------------------------------
# 1. The reported case
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("j, k", [("j", "k"), ("k", "j"), ("j", "j"), ("x", "k"), ("i", "l"), ("k", "k"),
                                  ("m", "j"), ("l", "m")])
@pytest.mark.parametrize("base", [0, 1])
def test_true_identity_is_proved_whatever_the_index_names(tmp_path, j, k, base):
    """∂L/∂z_j = a_j − y_j given Σ y = 1, with the free index named like the softmax's own sum
    index (j), like L's sum index (k), or anything else."""
    (answer,) = issue_file(tmp_path, j, k, base).solve()
    assert answer.status is Status.PROVED, answer.detail or answer.error


@pytest.mark.parametrize("j", ["j", "k", "x"])
def test_false_variant_fails_at_a_real_counterexample(tmp_path, j):
    """∂L/∂z_j = y_j − a_j is false: the engine's counterexample, evaluated here with NumPy
    (central differences of the loss), has lhs ≠ rhs, satisfies Σ y = 1, and the printed values
    are the ones NumPy computes."""
    (answer,) = issue_file(tmp_path, j, "k", 1, rhs="y[{j}] - a[{j}]").solve()
    assert answer.status is Status.FAILED
    point, reported_lhs, reported_rhs = parse_counterexample(answer.detail)
    size = int(point["C"])
    z = np.array([float(point[f"z[{n}]"]) for n in range(1, size + 1)])
    y = np.array([float(point[f"y[{n}]"]) for n in range(1, size + 1)])
    at = int(point[j]) - 1
    assert y.sum() == pytest.approx(1.0)
    lhs = numeric_gradient(lambda v: cross_entropy(v, y), z)[at]
    rhs = y[at] - softmax(z)[at]
    assert abs(lhs - rhs) > 1e-6
    assert reported_lhs == pytest.approx(lhs, rel=1e-5, abs=1e-7)
    assert reported_rhs == pytest.approx(rhs, rel=1e-6, abs=1e-9)


def test_the_derivation_never_binds_the_free_index(tmp_path):
    """Every displayed step of the proof keeps j free: no Σ over j appears anywhere."""
    (answer,) = issue_file(tmp_path, "j", "k", 1).solve()
    assert answer.steps
    for step in answer.steps:
        assert r"\sum_{j=" not in step.latex, step.latex


def test_a_proof_gone_wrong_is_caught_by_the_direct_evaluation(tmp_path, monkeypatch):
    """Were the rewrites to reach the right side of a false claim (simulated: every comparison of
    the pipeline says equal), the claim evaluated directly at a point still fails it."""
    monkeypatch.setattr(prove, "_same", lambda a, b: True)
    (answer,) = issue_file(tmp_path, "j", "k", 1, rhs="y[{j}] - a[{j}]").solve()
    assert answer.status is Status.FAILED
    point, reported_lhs, reported_rhs = parse_counterexample(answer.detail)
    size = int(point["C"])
    z = np.array([float(point[f"z[{n}]"]) for n in range(1, size + 1)])
    y = np.array([float(point[f"y[{n}]"]) for n in range(1, size + 1)])
    at = int(point["j"]) - 1
    assert reported_lhs == pytest.approx(numeric_gradient(lambda v: cross_entropy(v, y), z)[at], rel=1e-5)
    assert reported_rhs == pytest.approx(y[at] - softmax(z)[at], rel=1e-6)


def test_issue_file_from_the_command_line(tmp_path):
    issue_file(tmp_path)
    run = run_cli(["solve", "softmax.yaml", "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "proved" in run.stdout


# ---------------------------------------------------------------------------------------------
# 2. Capture-free substitution, checked by writing the sums out
# ---------------------------------------------------------------------------------------------
X = sp.IndexedBase("x")
I, J, K = make_index("i", 3), make_index("j", 3), make_index("k", 3)


def written_out(expr, values, at=None):
    """``expr`` with every sum written out, then the free indices given their values ``at`` (no
    sum is left to capture them) and entries x[n] replaced by ``values[n]``."""
    done = expr.doit().xreplace(at or {})
    return done.xreplace({X[n]: values[n] for n in range(len(values))})


@pytest.mark.parametrize("expr, mapping", [
    (X[I] * sp.Sum(X[J] * X[I], (J, 0, 2)), {I: J}),                 # the value names the bound index
    (sp.Sum(X[J], (J, 0, 2)) + X[J], {J: 1}),                          # the key is also bound
    (sp.Sum(sp.Sum(X[J] * X[K] * X[I], (K, 0, 2)), (J, 0, 2)), {I: K}),  # nested
    (sp.log(sp.Sum(sp.exp(X[J] * X[I]), (J, 0, 2))), {I: J + 1}),       # inside a function
])
def test_substitute_replaces_only_free_occurrences(expr, mapping):
    """Against the reference of writing the sums out first (then nothing is left to capture)."""
    values = [sp.Rational(2), sp.Rational(-3), sp.Rational(5)]
    reference = expr.doit().xreplace(mapping)
    ours = substitute(expr, mapping).doit()
    for point in itertools.product(range(3), repeat=3):
        at = dict(zip((I, J, K), point))
        difference = (ours - reference).xreplace(at).xreplace({X[n]: values[n] for n in range(3)})
        assert sp.simplify(difference) == 0, (at, ours, reference)


def test_rename_bound_apart_keeps_the_value_and_frees_the_names():
    expr = X[J] + sp.Sum(X[J] * sp.Sum(X[K], (K, 0, 2)), (J, 0, 2))
    renamed = rename_bound_apart(expr, {"j", "k"})
    bound = {limit[0].name for s in renamed.atoms(sp.Sum) for limit in s.limits}
    assert not bound & {"j", "k"}
    values = [sp.Rational(1, 2), sp.Rational(3), sp.Rational(-7)]
    for v in range(3):
        assert written_out(renamed, values, {J: v}) == written_out(expr, values, {J: v})


def test_canonical_names_never_capture_an_inner_sum():
    """Σ_k x_k Σ_j x_j² x_k renamed by depth must not become Σ_j x_j Σ_j (the outer index takes
    the inner one's old name)."""
    expr = sp.Sum(X[K] * sp.Sum(X[J] ** 2 * X[K], (J, 0, 2)), (K, 0, 2))
    values = [sp.Rational(2), sp.Rational(3), sp.Rational(5)]
    assert written_out(canonical_sums(expr), values) == written_out(expr, values)
    assert written_out(alpha_normal(expr), values) == written_out(expr, values)


def test_combine_sums_does_not_capture_a_free_index():
    """Σ_j x_j x_k + Σ_k x_k x_j: merging under one index (either one) would bind the free index
    of the same name in the other sum."""
    expr = sp.Sum(X[J] * X[K], (J, 0, 2)) + sp.Sum(X[K] * X[J] ** 2, (K, 0, 2))
    values = [sp.Rational(2), sp.Rational(3), sp.Rational(5)]
    for v, w in itertools.product(range(3), repeat=2):
        at = {J: v, K: w}
        assert written_out(combine_sums(expr), values, at) == written_out(expr, values, at)


# ---------------------------------------------------------------------------------------------
# 3. Renaming leaves every answer and status unchanged
# ---------------------------------------------------------------------------------------------
#: Asks whose answers involve names and indices (network asks work on numbers and layer specs).
NAMED_ASKS = {"shape", "element", "derivative", "chain_rule", "prove", "conv_matrix", "backward_matrix",
              "backward_conv", "matrix_view"}

#: Course problems written for these tests: the reported case, logistic regression with its
#: sigmoid layer named p (CS229/CS231n), a two-layer network's weight gradient (CS231n), and a
#: strided 1-D convolution (NYU DL). Names are single letters that clash under renaming.
COURSE = """\
title: capture
index_base: 1
sizes: [C, N, D, H]
tensors:
  z: [C]
  y: [C]
  X: [N, D]
  w: [D]
  t: [N]
  x: [D]
  W: [H, D]
  V: [C, H]
  u: [2, 7]
  f: [3, 2, 3]
layers:
  a: softmax(z)
  L: -Sum(y[k] * log(a[k]), (k, 1, C))
  s[n]: Sum(X[n, d] * w[d], (d, 1, D))
  p: sigmoid(s)
  E: -Sum(t[n] * log(p[n]) + (1 - t[n]) * log(1 - p[n]), (n, 1, N))
  h: linear(x, W)
  g: tanh(h)
  o: linear(g, V)
  J: cross_entropy(o, y)
  c: conv1d(u, f, stride=2)
questions:
  - id: softmax
    ask: prove
    lhs: diff(L, z[j])
    rhs: a[j] - y[j]
    constraints: ["Sum(y[k], (k, 1, C)) == 1"]
  - id: logistic
    ask: derivative
    of: E
    wrt: w
  - id: two-layer
    ask: derivative
    of: J
    wrt: W
  - id: conv
    ask: chain_rule
    of: c
    wrt: f
  - id: conv-input
    ask: derivative
    of: c
    wrt: u
"""


@functools.lru_cache(maxsize=None)
def shipped_spec(name):
    spec = load_spec((ROOT / "problems" / name).read_text())
    spec["questions"] = [q for q in spec["questions"] if q.get("ask") in NAMED_ASKS]
    return spec


def spec_of(name):
    return load_spec(COURSE) if name == "course" else shipped_spec(name)


@functools.lru_cache(maxsize=None)
def original_answers(name, directory):
    path = Path(directory) / f"original-{name}"
    path.write_text(dump_spec(spec_of(name)))
    problem = load_problem(path)
    answers = problem.solve()
    failed = [(a.question_id, a.error) for a in answers if a.status is Status.FAILED]
    assert not failed, failed           # a comparison of two failures would prove nothing
    return problem, answers


def renamings(spec):
    names, declared = renamable_names(spec), declared_names(spec)
    return st.permutations(valid_targets(spec)).map(lambda perm: index_letters_first(names, perm, declared))


def matrix_form_correct(problem, question_id, latex):
    """The checker reads a matrix form as a student answer: correct for that question?"""
    report = problem.check({question_id: latex}, isolate=False)
    (verdict,) = [v for v in report.verdicts if v.question == question_id]
    return verdict.verdict == "correct", verdict


def assert_same_up_to_renaming(name, mapping, directory):
    spec = spec_of(name)
    original, answers = original_answers(name, directory)
    renamed_spec = rename_spec(spec, mapping)
    path = Path(directory) / f"renamed-{name}"
    path.write_text(dump_spec(renamed_spec))
    renamed = load_problem(path)
    inverse = {v: k for k, v in mapping.items()}
    from symderive.derivative import upstream_name
    for question, before, after in zip(renamed.questions, answers, renamed.solve()):
        assert after.status is before.status, (question.id, mapping, before.status, after.status, after.error)
        assert [r.label for r in after.results] == [r.label for r in before.results], (question.id, mapping)
        seen = question_names(renamed_spec, question.spec)
        back = {new: old for new, old in inverse.items() if new in seen}
        if question.ask == "chain_rule":      # the upstream gradient is named by the engine
            ours = renamed.declarations(question)
            theirs = original.declarations(original.question(question.id))
            back[upstream_name(ours.lookup(question.spec["of"]), ours.lookup(question.spec["wrt"]))] = \
                upstream_name(theirs.lookup(spec_q(spec, question.id)["of"]),
                              theirs.lookup(spec_q(spec, question.id)["wrt"]))
        for r_before, r_after in zip(before.results, after.results):
            if r_before.label == "matrix form":
                # Forms print terms in name order: compare meanings, read back by the checker.
                ok, verdict = matrix_form_correct(renamed, question.id, r_after.latex)
                # The reader takes a summation index to be one letter (Σ_{a_1} is not read yet).
                multi_letter_sum = verdict.verdict == "unparseable" and "summation index is a letter" in \
                    verdict.evidence and any(len(v) > 1 for v in mapping.values())
                assert ok or multi_letter_sum, (question.id, mapping, r_after.latex, verdict)
                continue
            assert same_value(r_before.value, r_after.value, back), \
                (question.id, r_before.label, mapping, str(r_before.value)[:300], str(r_after.value)[:300])


def spec_q(spec, qid):
    return next(q for q in spec["questions"] if q["id"] == qid)


def test_matrix_forms_of_the_originals_are_read_back_correct(tmp_path_factory):
    """The baseline of the comparison above: each original matrix form is correct too."""
    directory = tmp_path_factory.mktemp("forms")
    for name in ("course", "csce636-hw2.yaml", "nyu-dl-2021-hw3.yaml"):
        problem, answers = original_answers(name, str(directory))
        for answer in answers:
            for r in answer.results:
                if r.label == "matrix form":
                    ok, verdict = matrix_form_correct(problem, answer.question_id, r.latex)
                    assert ok, (answer.question_id, r.latex, verdict)


#: Renamings tried per problem; CAPTURE_EXAMPLES=50 for a longer search than CI's.
EXAMPLES = int(os.environ.get("CAPTURE_EXAMPLES", "4"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("name", ["course", "conceptual-cnn-rnn.yaml", "csce636-hw2.yaml", "hw5-written.yaml",
                                  "nyu-dl-2021-hw3.yaml"])
def test_renaming_changes_no_answer(name, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("renaming"))

    @SETTINGS
    @given(renamings(spec_of(name)))
    def check(mapping):
        assert_same_up_to_renaming(name, mapping, directory)

    check()


def test_renaming_changes_no_answer_attention_rnn(tmp_path_factory):
    """The AttentionRNN questions (nested sums in every entry) under two fixed renamings: every
    name to another one of the problem's names (a derangement), and every name to a single
    letter an index could take."""
    directory = str(tmp_path_factory.mktemp("attention"))
    name = "nyu-dl-2024-hw2.yaml"
    names = renamable_names(spec_of(name))
    shifted = dict(zip(names, names[1:] + names[:1]))
    letters = [n for n in valid_targets(spec_of(name)) if len(n) == 1 and n not in names]
    letters += [n for n in names if n not in letters]
    single = dict(zip(names, letters))
    for mapping in (shifted, single):
        assert_same_up_to_renaming(name, mapping, directory)


# ---------------------------------------------------------------------------------------------
# 4. The checker's verdicts do not depend on the names
# ---------------------------------------------------------------------------------------------
#: (question, LaTeX in the course problem's names with {name} placeholders, verdict). In
#: "softmax" j is the question's own free index; n and k are the student's letters.
STUDENT_ANSWERS = [
    ("softmax", "{a}_{{{j}}} - {y}_{{{j}}}", "correct"),
    ("softmax", "{y}_{{{j}}} - {a}_{{{j}}}", "incorrect"),
    ("softmax", r"\frac{{e^{{{z}_{{{j}}}}}}}{{\sum_{{{k}}} e^{{{z}_{{{k}}}}}}} - {y}_{{{j}}}", "correct"),
    ("logistic", r"\sum_{{{n}}} ({p}_{{{n}}} - {t}_{{{n}}}) {X}_{{{n},{k}}}", "correct"),
    ("logistic", r"\sum_{{{n}}} ({t}_{{{n}}} - {p}_{{{n}}}) {X}_{{{n},{k}}}", "incorrect"),
]


def grade(problem, latex_by_id):
    report = problem.check(latex_by_id, isolate=False)
    return {v.question: v.verdict for v in report.verdicts if v.question in latex_by_id}


@SETTINGS
@given(renamings(load_spec(COURSE)))
def test_checker_verdicts_do_not_depend_on_names(tmp_path_factory, mapping):
    spec = load_spec(COURSE)
    spec["questions"] = [q for q in spec["questions"] if q["id"] in ("softmax", "logistic")]
    directory = tmp_path_factory.mktemp("verdicts")
    identity = {n: n for n in renamable_names(load_spec(COURSE))}
    for names, label in ((identity, "original"), (mapping, "renamed")):
        path = directory / f"{label}.yaml"
        path.write_text(dump_spec(rename_spec(spec, names)))
        problem = load_problem(path)
        # The student's own letters: lower case and not a name of the (renamed) problem.
        spare = [c for c in "nkmrsuvabcghjlopqtwxyz" if c not in names.values()]
        letters = {**names, "n": spare[0], "k": spare[1]}
        for qid, template, expected in STUDENT_ANSWERS:
            latex = template.format(**letters)
            verdict = grade(problem, {qid: latex})[qid]
            assert verdict == expected, (label, mapping, qid, latex, verdict)


# ---------------------------------------------------------------------------------------------
# 5. One name, one meaning, in every displayed answer
# ---------------------------------------------------------------------------------------------
def clashes(value, base):
    """Names that an answer uses for two things: an index and a tensor/layer/size, or a free and
    a bound index."""
    shown = for_display(value, base)
    bound = {limit[0].name for s in shown.atoms(sp.Sum, sp.Product) for limit in s.limits}
    labels = {b.label.name for b in shown.atoms(sp.IndexedBase)}
    declared = labels | {s.name for s in shown.free_symbols if isinstance(s, sp.Symbol)
                         and not s.is_integer and s.name not in labels}
    declared |= {s.name for s in shown.free_symbols if isinstance(s, sp.Symbol) and s.is_positive and s.is_integer}
    free = {s.name for s in free_indices(shown)} | {
        s.name for s in shown.free_symbols if isinstance(s, sp.Symbol) and s.is_integer and not s.is_positive}
    return (bound | free) & declared, bound & free


def displayed_values(answers):
    for answer in answers:
        for r in answer.results:
            values = list(r.value) if isinstance(r.value, sp.MatrixBase) else [r.value]
            for v in values:
                if isinstance(v, sp.Basic) and not isinstance(v, (sp.Tuple,)):
                    yield answer, r, v


@pytest.mark.parametrize("name", ["course", "conceptual-cnn-rnn.yaml", "csce636-hw2.yaml", "hw5-written.yaml",
                                  "nyu-dl-2021-hw3.yaml", "nyu-dl-2024-hw2.yaml"])
def test_no_answer_uses_one_name_for_two_things(name, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("display"))
    problem, answers = original_answers(name, directory)
    for answer, result, value in displayed_values(answers):
        with_declared, free_and_bound = clashes(value, problem.index_base)
        assert not with_declared, (answer.question_id, result.label, with_declared, value)
        assert not free_and_bound, (answer.question_id, result.label, free_and_bound, value)


def test_logistic_gradient_index_is_not_the_layer_p(tmp_path_factory):
    """The reported display case: with the sigmoid layer named p, ∂E/∂w is Σ_n (p_n − t_n) X_{n,·}
    and its free index is not called p; the value agrees with NumPy's Xᵀ(σ(Xw) − t)."""
    directory = str(tmp_path_factory.mktemp("logistic"))
    problem, answers = original_answers("course", directory)
    (answer,) = [a for a in answers if a.question_id == "logistic"]
    element = answer.results[0].value
    (free,) = free_indices(element)
    assert free.name not in {"p", "n", "t", "X", "w", "s", "E"}
    rng = np.random.default_rng(7)
    n, d = 4, 3
    xs, ws, ts = rng.normal(size=(n, d)), rng.normal(size=d), rng.uniform(size=n)
    ps = 1 / (1 + np.exp(-xs @ ws))
    reference = xs.T @ (ps - ts)
    sizes = {s: v for s in element.free_symbols if isinstance(s, sp.Symbol) and s.is_positive
             for v in [{"N": n, "D": d}.get(s.name)] if v}
    for col in range(d):
        value = substitute(element, {free: col}).xreplace(sizes).doit()
        value = value.replace(lambda e: isinstance(e, sp.Indexed), lambda e: {
            "X": lambda i: xs[i[0], i[1]], "w": lambda i: ws[i[0]], "t": lambda i: ts[i[0]],
            "p": lambda i: ps[i[0]]}[e.base.label.name](tuple(int(v) for v in e.indices)))
        assert float(value) == pytest.approx(reference[col], rel=1e-9, abs=1e-12)
