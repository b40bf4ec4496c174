"""ask: hessian against references computed another way: torch.autograd.functional.hessian of
the loss written in torch here (float64), closed forms from the courses re-derived in NumPy
(CS229: (1/N) Xᵀ diag(h(1 − h)) X; least squares: XᵀX/N; Bishop 4.110: (δ − q) q x xᵀ), and
eigenvalues for positive semidefiniteness."""
import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symderive.answer import Kind, Status
from symderive.problem import load_problem
from helpers import NO_PDF, result, rng_for, run_cli

torch = pytest.importorskip("torch")

LOGISTIC = """\
title: hessians
index_base: 1
sizes: [N, D]
questions:
  - id: logistic
    ask: hessian
    of: J
    wrt: w
    tensors: {X: [NN, DD], w: [DD], y: [NN]}
    layers:
      "h[n]": sigmoid(Sum(X[n, k] * w[k], (k, 1, DD)))
      J: -Sum(y[n] * log(h[n]) + (1 - y[n]) * log(1 - h[n]), (n, 1, NN)) / NN
"""


def solve(tmp_path, text, name="h.yaml"):
    path = Path(tmp_path) / name
    path.write_text(text)
    return {a.question_id: a for a in load_problem(path).solve()}


def number(expr, arrays):
    """A SymPy expression with every tensor entry name[i, ...] (0-based) read from ``arrays``
    ({name: NumPy array}), evaluated in floats."""
    def value(e):
        return sp.Float(float(arrays[e.base.label.name][tuple(int(i) for i in e.indices)]), 30)

    filled = sp.sympify(expr).doit().replace(lambda e: isinstance(e, sp.Indexed), value)
    return float(filled.doit().evalf(30))


def torch_hessian(function, at):
    return torch.autograd.functional.hessian(function, torch.tensor(at, dtype=torch.float64)).numpy()


# ---------------------------------------------------------------------------------------------
# Logistic regression (CS229 problem set 1, question 1)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, d", [(3, 2), (4, 3)])
def test_logistic_regression_array_equals_autograd(tmp_path, n, d):
    answer = solve(tmp_path, LOGISTIC.replace("NN", str(n)).replace("DD", str(d)))["logistic"]
    assert answer.status is Status.DERIVED, answer.error
    rng = rng_for(f"logistic-{n}-{d}")
    X, w, y = rng.normal(size=(n, d)), rng.normal(size=d), rng.integers(0, 2, size=n).astype(float)

    def loss(wt):
        h = torch.sigmoid(torch.tensor(X) @ wt)
        yt = torch.tensor(y)
        return -(yt * torch.log(h) + (1 - yt) * torch.log(1 - h)).sum() / n

    reference = torch_hessian(loss, w)
    h = 1 / (1 + np.exp(-X @ w))
    values = {"X": X, "w": w, "y": y, "h": h}
    array = np.array([[number(v, values) for v in row] for row in answer.value(Kind.ENTRIES).tolist()])
    np.testing.assert_allclose(array, reference, rtol=1e-10, atol=1e-12)
    # The course's closed form, and PSD by eigenvalues.
    np.testing.assert_allclose(reference, X.T @ np.diag(h * (1 - h)) @ X / n, rtol=1e-10, atol=1e-12)
    assert np.linalg.eigvalsh(reference).min() > -1e-12


def test_logistic_regression_symbolic_form_and_facts(tmp_path):
    answer = solve(tmp_path, LOGISTIC.replace("NN", "N").replace("DD", "D"))["logistic"]
    assert answer.status is Status.DERIVED, answer.error
    form = answer.value(Kind.MATRIX_FORM)
    assert re.fullmatch(r"\\frac\{1\}\{N\} X\^\{T\} \\operatorname\{diag\}\\left\(.*h.*\\right\) X", form), form
    assert answer.value("symmetric") is True and answer.value("psd") is True
    assert [str(s) for s in answer.value(Kind.SHAPE)] == ["D", "D"]
    # The element formula, evaluated at random sizes by us, equals autograd.
    formula = answer.value(Kind.ELEMENT)
    (p, q) = [i for _, i in result(answer, Kind.ELEMENT).axes]
    sizes = {s: s for s in formula.free_symbols if s.name in ("N", "D")}
    for n, d in [(2, 3), (5, 2)]:
        rng = rng_for(f"logistic-element-{n}-{d}")
        X, w, y = rng.normal(size=(n, d)), rng.normal(size=d), rng.integers(0, 2, size=n).astype(float)
        h = 1 / (1 + np.exp(-X @ w))
        at_size = {s: sp.Integer(n if s.name == "N" else d) for s in sizes}
        values = {"X": X, "h": h}
        got = np.array([[number(formula.xreplace({p: a, q: b}).xreplace(at_size), values) for b in range(d)]
                        for a in range(d)])
        np.testing.assert_allclose(got, X.T @ np.diag(h * (1 - h)) @ X / n, rtol=1e-10, atol=1e-12)


def test_least_squares_hessian_is_gram_matrix(tmp_path):
    text = LOGISTIC.replace("NN", "3").replace("DD", "2").split("questions:")[0] + """questions:
  - id: lsq
    ask: hessian
    of: J
    wrt: w
    tensors: {X: [3, 2], w: [2], y: [3]}
    layers:
      "r[n]": Sum(X[n, k] * w[k], (k, 1, 2)) - y[n]
      J: Sum(r[n]**2, (n, 1, 3)) / 6
"""
    answer = solve(tmp_path, text)["lsq"]
    X = rng_for("lsq").normal(size=(3, 2))
    array = np.array([[number(v, {"X": X}) for v in row] for row in answer.value(Kind.ENTRIES).tolist()])
    np.testing.assert_allclose(array, X.T @ X / 3, rtol=1e-12)
    assert answer.value(Kind.MATRIX_FORM) == r"\frac{1}{3} X^{T} X"
    assert answer.value("psd") is True


# ---------------------------------------------------------------------------------------------
# Softmax regression by a matrix (Bishop 4.3.4), flattened row-major
# ---------------------------------------------------------------------------------------------
SOFTMAX = """\
title: softmax regression
index_base: 0
questions:
  - id: by-W
    ask: hessian
    of: E
    wrt: W
    tensors: {x: [3], W: [2, 3], b: [2], p: [2]}
    layers:
      z: linear(x, W, b)
      q: softmax(z)
      E: -Sum(p[i] * log(q[i]), (i, 0, 1))
"""


def test_softmax_regression_by_matrix_equals_autograd_row_major(tmp_path):
    answer = solve(tmp_path, SOFTMAX)["by-W"]
    assert answer.status is Status.DERIVED, answer.error
    rng = rng_for("softmax-regression")
    x, W, b = rng.normal(size=3), rng.normal(size=(2, 3)), rng.normal(size=2)
    p = rng.uniform(0.1, 1, size=2)          # not normalised: the Hessian then carries Σp

    def loss(flat):
        z = flat.reshape(2, 3) @ torch.tensor(x) + torch.tensor(b)
        return -(torch.tensor(p) * torch.log_softmax(z, dim=0)).sum()

    reference = torch_hessian(loss, W.reshape(-1))      # row-major vec(W), as PyTorch flattens
    z = W @ x + b
    q = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    values = {"x": x, "W": W, "b": b, "p": p, "q": q}
    array = np.array([[number(v, values) for v in row] for row in answer.value(Kind.ENTRIES).tolist()])
    assert array.shape == (6, 6)
    np.testing.assert_allclose(array, reference, rtol=1e-10, atol=1e-12)
    # Bishop 4.110: (δ_rv − q_v) q_r x_u x_a, times Σp here.
    closed = p.sum() * np.kron(np.diag(q) - np.outer(q, q), np.outer(x, x))
    np.testing.assert_allclose(reference, closed, rtol=1e-10, atol=1e-12)
    assert any("softmax" in step.why and "= 1" in step.why for step in answer.steps)
    assert answer.value("symmetric") is True
    texts = [r.latex for r in answer.results] + [s.latex for s in answer.steps]
    assert any(r"\sum_" in t for t in texts)
    assert not any("ARKER" in t for t in texts), "the placeholder of a sum split over lines is printed"


# ---------------------------------------------------------------------------------------------
# --verify, and bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [LOGISTIC.replace("NN", "N").replace("DD", "D"), SOFTMAX],
                         ids=["logistic-symbolic-sizes", "softmax-by-matrix"])
def test_cross_check_agrees(tmp_path, text):
    from symderive import verify
    path = Path(tmp_path) / "v.yaml"
    path.write_text(text)
    problem = load_problem(path)
    answers = problem.solve()
    (report,) = verify.cross_check(problem, answers)
    assert report.outcome in (verify.AGREE, verify.NO_COUNTERPART), (report.outcome, report.reason)
    assert report.autograd and report.entries > 0 and report.max_abs < 1e-9, report


BAD = """\
title: bad
sizes: [N]
tensors: {x: [N], v: [N]}
layers:
  "y[i]": x[i] ** 2
  L: Sum(y[i], (i, 0, N - 1))
questions:
  - {id: not-scalar, ask: hessian, of: y, wrt: x}
  - {id: unrelated, ask: hessian, of: L, wrt: v}
  - {id: undeclared, ask: hessian, of: L, wrt: zz}
  - {id: fine, ask: hessian, of: L, wrt: x}
"""


def test_bad_input_is_one_located_line_per_question(tmp_path):
    (Path(tmp_path) / "bad.yaml").write_text(BAD)
    run = run_cli(["solve", "bad.yaml", "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    lines = {qid: [l for l in run.stderr.splitlines() if f"question {qid}:" in l]
             for qid in ("not-scalar", "unrelated", "undeclared", "fine")}
    assert not lines["fine"]
    assert re.search(r"bad\.yaml:8:\d+: .*'y' must be a scalar", lines["not-scalar"][0])
    assert re.search(r"bad\.yaml:9:\d+: .*does not depend on 'v'", lines["unrelated"][0])
    assert re.search(r"bad\.yaml:10:\d+: .*'zz' is not a declared", lines["undeclared"][0])


def test_sum_of_squares_hessian_is_twice_identity(tmp_path):
    answers = solve(tmp_path, BAD.replace("  - {id: not-scalar, ask: hessian, of: y, wrt: x}\n", "")
                    .replace("  - {id: unrelated, ask: hessian, of: L, wrt: v}\n", "")
                    .replace("  - {id: undeclared, ask: hessian, of: L, wrt: zz}\n", ""))
    answer = answers["fine"]
    formula = answer.value(Kind.ELEMENT)
    p, q = [i for _, i in result(answer, Kind.ELEMENT).axes]
    assert formula == 2 * sp.KroneckerDelta(p, q)
    assert answer.value("psd") is None     # 2I is PSD, but the form is not c Σ a Xᵀ X: nothing is claimed


def test_declared_constraint_is_used_and_met_by_the_cross_check(tmp_path):
    # With Σp = 1 (a one-hot or probability target) the Hessian is Bishop's (δ_rv − q_v) q_r x_u x_a.
    from symderive import verify
    text = SOFTMAX + '    constraints: ["Sum(p[i], (i, 0, 1)) == 1"]\n'
    path = Path(tmp_path) / "c.yaml"
    path.write_text(text)
    problem = load_problem(path)
    (answer,) = problem.solve()
    assert not answer.value(Kind.ELEMENT).has(sp.Sum), answer.value(Kind.ELEMENT)
    assert any("constraint" in step.why for step in answer.steps)
    rng = rng_for("softmax-one-hot")
    x, W, b = rng.normal(size=3), rng.normal(size=(2, 3)), rng.normal(size=2)
    p = np.array([0.0, 1.0])
    z = W @ x + b
    q = np.exp(z - z.max()) / np.exp(z - z.max()).sum()

    def loss(flat):
        zt = flat.reshape(2, 3) @ torch.tensor(x) + torch.tensor(b)
        return -(torch.tensor(p) * torch.log_softmax(zt, dim=0)).sum()

    array = np.array([[number(v, {"x": x, "q": q, "p": p, "W": W, "b": b}) for v in row]
                      for row in answer.value(Kind.ENTRIES).tolist()])
    np.testing.assert_allclose(array, torch_hessian(loss, W.reshape(-1)), rtol=1e-10, atol=1e-12)
    (report,) = verify.cross_check(problem, [answer])
    assert report.outcome in (verify.AGREE, verify.NO_COUNTERPART) and report.max_abs < 1e-9, report


def test_malformed_constraint_is_located(tmp_path):
    text = SOFTMAX + '    constraints: ["Sum(p[i], (i, 0, 1))"]\n'
    (Path(tmp_path) / "c.yaml").write_text(text)
    run = run_cli(["solve", "c.yaml", "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    line = next(l for l in run.stderr.splitlines() if "question by-W:" in l)
    expected = text.count("\n", 0, text.index("constraints")) + 1
    assert re.search(rf"c\.yaml:{expected}:\d+: .*equation", line), line


def test_students_hessians_are_graded(tmp_path):
    """symderive check reads a Hessian in element or matrix form; the sign slip h(h − 1) and the
    transposed Gram matrix X Xᵀ are caught (the targets come from the results' kinds)."""
    import json
    import shutil
    problem = Path(__file__).resolve().parents[1] / "problems" / "identities-and-hessians.yaml"
    shutil.copy(problem, tmp_path / "p.yaml")
    (tmp_path / "right.yaml").write_text(
        "logistic-regression-hessian: '\\frac{1}{N} \\sum_{n=1}^{N} h_n (1 - h_n) X_{n,p} X_{n,q}'\n"
        "least-squares-hessian: '\\frac{1}{N} X^{T} X'\n")
    (tmp_path / "wrong.yaml").write_text(
        "logistic-regression-hessian: '\\frac{1}{N} X^{T} \\operatorname{diag}(h \\odot (h - 1)) X'\n"
        "least-squares-hessian: '\\frac{1}{N} X X^{T}'\n")
    verdicts = {}
    for name in ("right", "wrong"):
        run = run_cli(["check", "p.yaml", f"{name}.yaml", "--json"], tmp_path)
        assert "Traceback" not in run.stderr, run.stderr
        verdicts[name] = {v["question"]: v["verdict"] for v in json.loads(run.stdout)["verdicts"]
                          if v["verdict"] != "missing"}
    assert verdicts["right"] == {"logistic-regression-hessian": "correct", "least-squares-hessian": "correct"}
    assert verdicts["wrong"] == {"logistic-regression-hessian": "incorrect", "least-squares-hessian": "incorrect"}
