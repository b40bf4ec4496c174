"""Issue 14: the names a question's answers use beyond its declarations, and the cache of solved answers.

* declared aliases (``aliases: {x_n: "X[n, :]"}``): the statement's notation for part of a tensor;
* the names the answer sheet itself introduces: backpropagation's δ^{z_1} and a numeric pass's τ_k;
* LaTeX forms the sheets print: ``\\frac{\\partial}{\\partial z} f``, ``\\partial^2``, ``\\nabla^2``,
  ``\\operatorname{erf}``, a Kronecker delta against a class label ``\\delta_{q {y}_{n}}``;
* the disk cache of solved answers (answer_cache.py): hits, invalidation, tampering, bounds, turning it off.

Expected verdicts are decided by hand: the least-squares gradient Σ_n x_n (x_nᵀθ − y_n) is CS229's
(lecture notes part I, the LMS rule), the others are re-derived in the comments.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symderive import load_problem
from symderive.checking.grade import check_one, prepare
from symderive.errors import ProblemFileError

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = ROOT / "problems"

LEAST_SQUARES = """\
title: aliases
index_base: 1
sizes: [N, D]
questions:
  - id: ls
    statement: "With rows $x_n$ of $X$, find the gradient of $J$ by theta."
    ask: derivative
    of: J
    wrt: theta
    tensors: {X: [N, D], theta: [D], y: [N]}
    layers:
      J: norm(X @ theta - y)**2 / 2
    aliases: ALIASES
"""


def least_squares(tmp_path, aliases='{x_n: "X[n, :]", x_1: "X[1, :]"}'):
    path = tmp_path / "ls.yaml"
    path.write_text(LEAST_SQUARES.replace("ALIASES", aliases))
    return path


def verdict(path, qid, latex):
    problem = load_problem(path)
    return check_one(prepare(problem, {qid})[qid], latex, 30)


# Aliases -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("latex, expected", [
    (r"\nabla_\theta J = \sum_{n=1}^{N} x_n (x_n^T \theta - y_n)", "correct"),
    (r"\frac{\partial J}{\partial \theta_p} = \sum_{n=1}^{N} x_{n,p} "
     r"\left(\sum_{i=1}^{D} x_{n,i} \theta_i - y_n\right)", "correct"),
    (r"\nabla_\theta J = \sum_{n=1}^{N} x_n (x_n^T \theta + y_n)", "incorrect"),        # sign of y
    (r"\nabla_\theta J = x_1 (x_1^T \theta - y_1)", "incorrect"),                       # one sample only
    (r"\nabla_\theta J = \sum_{n=1}^{N} x_{n,1} (x_n^T \theta - y_n)", "incorrect"),    # entry 1, not the row
])
def test_a_declared_alias_reads_as_the_row_it_names(tmp_path, latex, expected):
    v = verdict(least_squares(tmp_path), "ls", latex)
    assert v.verdict == expected, v


def test_a_declared_size_wins_over_an_alias_of_the_same_letter(tmp_path):
    """A size named x beside the alias x_n: a bare x is the size (a declared name wins, as for tensors),
    x_n is still the row."""
    path = tmp_path / "sizes.yaml"
    path.write_text(LEAST_SQUARES.replace("ALIASES", '{x_n: "X[n, :]"}').replace("sizes: [N, D]", "sizes: [x, D]")
                    .replace("[N, D]", "[x, D]").replace("y: [N]", "y: [x]").replace("^{N}", "^{x}"))
    good = r"\nabla_\theta J = \sum_{n=1}^{x} x_n (x_n^T \theta - y_n)"
    assert verdict(path, "ls", good).verdict == "correct"
    assert verdict(path, "ls", r"\nabla_\theta J = \frac{1}{x} \sum_{n=1}^{x} x_n (x_n^T \theta - y_n)").verdict \
        == "incorrect"


def test_an_undeclared_name_stays_unknown_with_the_aliases_in_the_hint(tmp_path):
    v = verdict(least_squares(tmp_path), "ls", r"\nabla_\theta J = \sum_{n=1}^{N} z_n (z_n^T \theta - y_n)")
    assert v.verdict == "unknown name", v
    assert "'z' is not declared" in v.evidence and "x_n" in v.evidence, v.evidence


def test_without_the_alias_x_n_is_an_unknown_name(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(LEAST_SQUARES.replace("    aliases: ALIASES\n", ""))
    v = verdict(path, "ls", r"\nabla_\theta J = \sum_{n=1}^{N} x_n (x_n^T \theta - y_n)")
    assert v.verdict == "unknown name", v


@pytest.mark.parametrize("latex, expected", [
    # the columns c_j of X (features): ∂J/∂θ_j = c_jᵀ(Xθ − y), the same gradient entry by entry
    (r"\frac{\partial J}{\partial \theta_j} = c_j^T (X\theta - y)", "correct"),
    (r"\frac{\partial J}{\partial \theta_j} = \sum_{n=1}^{N} c_{j,n} "
     r"\left(\sum_{i=1}^{D} X_{n,i} \theta_i - y_n\right)", "correct"),       # c_{j,n} = X[n, j]
    (r"\frac{\partial J}{\partial \theta_j} = c_1^T (X\theta - y)", "incorrect"),     # one column for all j
])
def test_a_column_alias(tmp_path, latex, expected):
    path = least_squares(tmp_path, '{c_j: "X[:, j]"}')
    assert verdict(path, "ls", latex).verdict == expected


@pytest.mark.parametrize("aliases, message", [
    ('{x_n: "__import__(\'os\')"}', "the value must be a declared tensor with indices"),
    ('{x_n: "Z[n, :]"}', "'Z' is not a tensor the question declares"),
    ('{x_n: "X[:, n, :]"}', "only as a column of a matrix"),
    ('{x_n: "X[m, :]"}', "index 'm' is not a parameter"),
    ('{x_n: "X[1, :]"}', "the parameter n is not used"),
    ('{"x^n": "X[n, :]"}', "a name is letters with an optional subscript"),
    ('{x_n: "X[n, 1, 2]"}', "'X' has 2 axes, 3 indices are given"),
    ('[x_n]', "a mapping of names to tensors"),
])
def test_a_bad_alias_is_refused_with_its_position(tmp_path, aliases, message):
    from symderive.checking.aliases import read_aliases
    problem = load_problem(least_squares(tmp_path, aliases))
    q = problem.questions[0]
    with pytest.raises(ProblemFileError, match=None) as err:
        read_aliases(q, problem.declarations(q))
    assert message in str(err.value), str(err.value)
    assert "ls.yaml" in str(err.value) or err.value.line is not None, str(err.value)


def test_check_refuses_a_problem_with_a_bad_alias_exit_2(tmp_path):
    path = least_squares(tmp_path, '{x_n: "Z[n, :]"}')
    answers = tmp_path / "a.yaml"
    answers.write_text("ls: 'X^T X \\theta - X^T y'\n")
    run = subprocess.run([sys.executable, "-m", "symderive", "check", str(path), str(answers), "--no-cache"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "aliases: x_n: 'Z' is not a tensor the question declares" in run.stderr, run.stderr


# The sheet's own names -----------------------------------------------------------------------------
def test_backprop_delta_names_read_as_the_sheets_delta_not_a_kronecker_delta():
    path = PROBLEMS / "backprop-by-layers.yaml"
    right = r"\frac{\partial C}{\partial {W_{1}}_{p,q}} = {\delta^{z_{1}}}_{p} {x}_{q}"
    swapped = r"\frac{\partial C}{\partial {W_{1}}_{p,q}} = {\delta^{z_{1}}}_{q} {x}_{p}"   # indices swapped
    assert verdict(path, "nielsen-bp1-bp4", right).verdict == "correct"
    assert verdict(path, "nielsen-bp1-bp4", swapped).verdict == "incorrect"
    assert verdict(path, "nielsen-bp1-bp4", r"\frac{\partial C}{\partial W_1} \in \mathbb{R}^{n_1 \times n_0}") \
        .verdict == "correct"
    assert verdict(path, "nielsen-bp1-bp4", r"\frac{\partial C}{\partial W_1} \in \mathbb{R}^{n_0 \times n_1}") \
        .verdict == "incorrect"
    # a Kronecker delta is still one where the question has no δ of that name
    assert verdict(path, "nielsen-bp1-bp4", r"\delta^{w}_{p} x_q").verdict != "correct"


def test_the_sheets_tau_abbreviations_read_as_their_values():
    # csce636-q2: s3 = 2 tanh(s2) + 1 where tau_3 = tanh(s2); the sheet writes 2 tau_3 + 1
    path = PROBLEMS / "csce636-hw2.yaml"
    assert verdict(path, "csce636-q2", r"s_3 = 2 \tau_{3} + 1").verdict == "correct"
    assert verdict(path, "csce636-q2", r"s_3 = 2 \tau_{2} + 1").verdict == "incorrect"
    assert verdict(path, "csce636-q2", r"s_3 = 2 \tau_{9} + 1").verdict == "unknown name"


# Forms the sheets print -------------------------------------------------------------------------------
@pytest.mark.parametrize("path, qid, latex, expected", [
    # σ' = σ(1 − σ)
    ("identities-and-hessians.yaml", "sigmoid-derivative",
     r"\frac{\partial}{\partial x} \sigma(x) = \sigma(x)(1 - \sigma(x))", "correct"),
    ("identities-and-hessians.yaml", "sigmoid-derivative",
     r"\frac{\partial}{\partial x} \sigma(x) = \sigma(x)(1 + \sigma(x))", "incorrect"),
    ("identities-and-hessians.yaml", "sigmoid-derivative", r"\frac{\partial}{\partial x} = \sigma(x)", "unparseable"),
    # Hessian of J = ||Xw - y||^2 / (2N): X^T X / N
    ("identities-and-hessians.yaml", "least-squares-hessian",
     r"\frac{\partial^2 J}{\partial w_p \partial w_q} = \frac{1}{N} \sum_{n=1}^{N} X_{n,p} X_{n,q}", "correct"),
    ("identities-and-hessians.yaml", "least-squares-hessian",
     r"\frac{\partial^2 J}{\partial w_p \partial w_q} = \sum_{n=1}^{N} X_{n,p} X_{n,q}", "incorrect"),
    ("identities-and-hessians.yaml", "least-squares-hessian", r"\nabla^2_w J \in \mathbb{R}^{D \times D}", "correct"),
    ("identities-and-hessians.yaml", "least-squares-hessian", r"\nabla_w^2 J \in \mathbb{R}^{N \times D}",
     "incorrect"),
    # softmax cross-entropy: dL/dS = (softmax(S) - onehot(y)) / N
    ("coursework-layers.yaml", "cs231n-softmax-dS",
     r"\frac{\partial L}{\partial S_{p,q}} = \frac{1}{N}\left(\frac{e^{S_{p,q}}}{\sum_{j=0}^{C-1} e^{S_{p,j}}} "
     r"- \delta_{q y_p}\right)", "correct"),
    ("coursework-layers.yaml", "cs231n-softmax-dS",
     r"\frac{\partial L}{\partial S_{p,q}} = \frac{1}{N}\left(\frac{e^{S_{p,q}}}{\sum_{j=0}^{C-1} e^{S_{p,j}}} "
     r"- \delta_{p {y}_{q}}\right)", "incorrect"),
])
def test_forms_the_sheets_print(path, qid, latex, expected):
    v = verdict(PROBLEMS / path, qid, latex)
    assert v.verdict == expected, v


def test_erf_is_read_in_gelus_derivative():
    # GELU(x) = x Φ(x): d/dx = Φ(x) + x φ(x) = (1 + erf(x/√2))/2 + x e^{-x²/2}/√(2π)
    path = PROBLEMS / "coursework-layers.yaml"
    right = (r"\frac{\partial y_i}{\partial x_p} = \delta_{ip}\left(\frac{1 + \operatorname{erf}(x_i/\sqrt{2})}{2} "
             r"+ \frac{x_i e^{-x_i^2/2}}{\sqrt{2\pi}}\right)")
    wrong = right.replace(r"\sqrt{2\pi}", r"\sqrt{\pi}")
    assert verdict(path, "gelu-derivative", right).verdict == "correct"
    assert verdict(path, "gelu-derivative", wrong).verdict == "incorrect"


def test_an_accent_takes_one_letter_without_braces():
    from symderive.checking.latex_tokens import ReadError
    from symderive.checking.reader import read
    assert read(r"\tilde w")[0].items[0].letters == read(r"\tilde{w}")[0].items[0].letters == ["tilde:w"]
    with pytest.raises(ReadError, match="a braced argument or a letter"):
        read(r"\hat 2")


def test_class_labels_are_bounded_by_the_size_their_guard_names_not_by_their_own_index_range():
    """The engine guards a label with 0 ≤ y_n, y_n + 1 ≤ C inside Σ_n (n < N): random labels must lie
    below C, not N (at C = 1 < N a label 1 would test only the branch for labels that are no class)."""
    import sympy as sp
    from symderive.checking.random_values import class_labels
    path = PROBLEMS / "coursework-layers.yaml"
    info = prepare(load_problem(path), {"d2l-softmax-regression-do"})["d2l-softmax-regression-do"]
    sizes = info.context_args["scope"].sizes
    labels = class_labels(info.targets[0].value, sp.Integer(0), info)
    assert labels == {"y": sizes["C"]}, labels
    for seed in ("1", "5", "6"):                 # the draw order of the sizes follows the hash seed
        run = subprocess.run([sys.executable, "-c", (
            "from symderive import load_problem\n"
            "from symderive.checking.grade import check_one, prepare\n"
            f"i = prepare(load_problem({str(path)!r}), {{'d2l-softmax-regression-do'}})['d2l-softmax-regression-do']\n"
            "print(check_one(i, r'\\frac{\\partial L}{\\partial O_{i,j}} = \\frac{1}{N}\\left(\\frac{\\exp(O_{i,j})}"
            "{\\sum_{k=0}^{C-1} \\exp(O_{i,k})} - Y_{i,j}\\right)', 30).verdict)")],
            capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED=seed), timeout=300)
        assert run.stdout.strip() == "correct", (seed, run.stdout, run.stderr[-500:])


def test_one_row_of_a_jacobian_named_by_its_left_side():
    """The sheet's \\begin{gathered} of ∂y_0/∂x = [...] \\\\ ∂y_1/∂x = [...]: each line is that row.
    SiLU: ∂y_i/∂x_p = δ_ip (σ(x_i) + x_i σ(x_i)(1 − σ(x_i)))."""
    path = PROBLEMS / "coursework-layers.yaml"
    def row(k, sign="-"):
        entry = rf"\sigma(x_{k}) + x_{k} \sigma(x_{k})(1 {sign} \sigma(x_{k}))"
        cells = [entry if c == k else "0" for c in range(3)]
        return rf"\frac{{\partial y_{k}}}{{\partial x}} = \begin{{bmatrix}} {' & '.join(cells)} \end{{bmatrix}}"
    right = r"\begin{gathered}" + r" \\ ".join(row(k) for k in range(3)) + r"\end{gathered}"
    assert verdict(path, "swish-derivative", right).verdict == "correct"
    wrong = r"\begin{gathered}" + r" \\ ".join(row(k, "+" if k == 2 else "-") for k in range(3)) + r"\end{gathered}"
    v = verdict(path, "swish-derivative", wrong)
    assert v.verdict == "incorrect" and "entry (2, 2)" in v.evidence, v
    assert verdict(path, "swish-derivative", row(1).replace("x_1", "x_0")).verdict == "incorrect"


@pytest.mark.parametrize("path, qid, latex, expected", [
    # Bishop 4.3.2: ∇E = Σ_n (σ(x_nᵀw) − y_n) x_n; the sign flipped is the log-likelihood's gradient
    ("matrix-calculus.yaml", "logistic-regression", r"\nabla_w E = \sum_n (\sigma(x_n^T w) - y_n) x_n", "correct"),
    ("matrix-calculus.yaml", "logistic-regression", r"\sum_n (y_n - \sigma(x_n^T w)) x_n", "incorrect"),
    # Learning from Data: ∇E_in = (2/N) Σ_n (tanh(wᵀx_n) − y_n)(1 − tanh²(wᵀx_n)) x_n; without tanh' it is wrong
    ("csce636-hw2.yaml", "csce636-q1",
     r"\frac{2}{N} \sum_{n=1}^{N} (\tanh(w^T x_n) - y_n)(1 - \tanh^2(w^T x_n)) x_n", "correct"),
    ("csce636-hw2.yaml", "csce636-q1", r"\frac{2}{N} \sum_{n=1}^{N} (\tanh(w^T x_n) - y_n) x_n", "incorrect"),
])
def test_the_statements_x_n_is_declared_where_the_statement_uses_it(path, qid, latex, expected):
    assert verdict(PROBLEMS / path, qid, latex).verdict == expected
