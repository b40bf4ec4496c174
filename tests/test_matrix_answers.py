"""Students' answers in matrix notation with inverses, determinants, traces, norms and the identity
(issue 18), graded against problems/matrix-calculus.yaml.

The expected verdicts are the Matrix Cookbook's identities worked by hand (∂ log det X/∂X = X⁻ᵀ,
∂ tr(AX⁻¹)/∂X = −X⁻ᵀAᵀX⁻ᵀ, ...), and deliberately wrong variants of them (a dropped transpose,
a missing factor). Inverses and determinants of declared matrices are compared symbolically or at
random well-conditioned values; those of other matrices ((XᵀX)⁻¹) numerically only.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symderive.evaluate import evaluate
from symderive.matrix_functions import det_of_entries, inverse_entry, logdet_of_entries, well_conditioned
from symderive.problem import load_problem

sys.path.insert(0, str(Path(__file__).parent))
from helpers import rng_for  # noqa: E402

MATRIX_CALCULUS = Path(__file__).parent.parent / "problems" / "matrix-calculus.yaml"

GRADED = [
    # ∂ log det X / ∂X = X^{-T} (Cookbook eq. 57)
    ("cookbook-logdet", r"$X^{-T}$", "correct"),
    ("cookbook-logdet", r"$X^{-\top}$", "correct"),
    ("cookbook-logdet", r"$(X^{-1})^T$", "correct"),
    ("cookbook-logdet", r"$((X^T)^{-1})$", "correct"),
    ("cookbook-logdet", r"$(X^{-1})_{q,p}$", "correct"),
    ("cookbook-logdet", r"$\frac{\partial L}{\partial X_{p,q}} = {X^{-1}}_{q,p}$", "correct"),
    ("cookbook-logdet", r"$X^{-1}_{q,p}$", "correct"),
    ("cookbook-logdet", r"$\frac{\partial \log\det X}{\partial X} = X^{-T}$", "correct"),
    ("cookbook-logdet", r"$(X X^T)^{-1} X$", "correct"),             # X^{-T} X^{-1} X, an inverse read numerically
    ("cookbook-logdet", r"$X^{-1}$", "incorrect"),                    # the transpose dropped
    ("cookbook-logdet", r"$(X^T X)^{-1} X^T$", "incorrect"),          # that is X^{-1}
    # ∂ det X / ∂X = det(X) X^{-T} (Cookbook eq. 49); |X| is the determinant
    ("cookbook-det", r"$\det(X) X^{-T}$", "correct"),
    ("cookbook-det", r"$|X| (X^{-1})^T$", "correct"),
    ("cookbook-det", r"$\det(X^T) X^{-T}$", "correct"),
    ("cookbook-det", r"$\exp(\log\det X) X^{-T}$", "correct"),
    ("cookbook-det", r"$\exp(\log|X|) X^{-T}$", "correct"),
    ("cookbook-det", r"$\det(X X) (X^{-1})^T / \det X$", "correct"),  # det of a product, read numerically
    ("cookbook-det", r"$\det(X) X^{-1}$", "incorrect"),
    # ∂ tr(A X^{-1}) / ∂X = -X^{-T} A^T X^{-T} (Cookbook eq. 63)
    ("cookbook-trace-AXinv", r"$-X^{-T} A^T X^{-T}$", "correct"),
    ("cookbook-trace-AXinv", r"$-(X^{-1} A X^{-1})^T$", "correct"),
    ("cookbook-trace-AXinv", r"$-X^{-1} A X^{-1}$", "incorrect"),
    # traces
    ("cookbook-trace-AX", r"$A^T$", "correct"),
    ("cookbook-trace-AX", r"$A'$", "correct"),
    ("cookbook-trace-AX", r"$A$", "incorrect"),
    ("cookbook-trace-XtBX", r"$(B + B^T) X$", "correct"),
    ("cookbook-trace-XtBX", r"$2BX$", "incorrect"),
    # norms
    ("cookbook-frobenius", r"$2X$", "correct"),
    ("cookbook-norm2", r"$\frac{x - a}{\|x - a\|_2}$", "correct"),
    ("cookbook-norm2", r"$(x - a)/\lVert x - a \rVert$", "correct"),
    ("cookbook-norm2", r"$(x - a)/\|x - a\|_1$", "incorrect"),
    ("cookbook-aXb", r"$\|a\|_F a b^T / \|a\|_2$", "correct"),
    ("cookbook-aXb", r"$a b^T$", "correct"),
    # least squares, ridge: the identity I and I_D
    ("cs229-least-squares", r"$X^T(X\theta - y)$", "correct"),
    ("cs229-least-squares", r"$X^TX\theta - X^Ty$", "correct"),
    ("ridge-regression", r"$2X^T(Xw - y) + 2\lambda w$", "correct"),
    ("ridge-regression", r"$2(X^TX + \lambda I)w - 2X^Ty$", "correct"),
    ("ridge-regression", r"$2(X^TX + \lambda I_D)w - 2X^Ty$", "correct"),
    ("ridge-regression", r"$2(X^TX + \lambda I)w - X^Ty$", "incorrect"),
    ("multi-output-least-squares", r"$2X^T(XW - Y)$", "correct"),
    # the Gaussian log-likelihood by its precision: N/2 Λ^{-T} − ½ Σ_n (x_n − μ)(x_n − μ)ᵀ
    ("gaussian-precision", r"$\frac{N}{2}\Lambda^{-T} - \frac{1}{2}\sum_{n=1}^{N} (X_n - \mu)(X_n - \mu)^T$",
     "correct"),
    ("gaussian-precision", r"$\frac{N}{2}\Lambda^{-1} - \frac{1}{2}\sum_{n=1}^{N} (X_n - \mu)(X_n - \mu)^T$",
     "incorrect"),
    ("gaussian-mean-symmetric", r"$\Lambda \sum_{n=1}^N (X_n - \mu)$", "correct"),
    # by a symmetric Λ (the unconstrained gradient): Λ^{-1} = Λ^{-T}; the constrained 2G − diag(G) is not it
    ("gaussian-precision-symmetric",
     r"$\frac{N}{2}\Lambda^{-1} - \frac{1}{2}\sum_{n=1}^{N} (X_n - \mu)(X_n - \mu)^T$", "correct"),
    ("gaussian-precision-symmetric",
     r"$N\Lambda^{-1} - \sum_{n=1}^{N} (X_n - \mu)(X_n - \mu)^T - \frac{N}{2}\Lambda^{-1} \odot I "
     r"+ \frac{1}{2}\sum_{n=1}^{N} (X_n - \mu)(X_n - \mu)^T \odot I$", "incorrect"),
]

REFUSED = [
    # (question, answer, verdict, words of the one-line reason)
    ("cookbook-logdet", r"$X_{q,p}^{-1}$", "unparseable", "is ambiguous: write (X^{-1})_{..}"),
    ("cookbook-aXb", r"$X^{-1}$", "incorrect", "an inverse of a D × K matrix: it takes a square matrix"),
    ("cookbook-aXb", r"$\det a$", "incorrect", r"\det of a D × 1 vector: it takes a square matrix"),
    ("cookbook-aXb", r"$\operatorname{tr}(X) a b^T$", "incorrect", r"\operatorname{tr} of a D × K matrix"),
    ("cookbook-aXb", r"$\|X\|_2 a b^T$", "unparseable", r"\|A\|_F is the Frobenius norm"),
    ("cookbook-aXb", r"$\|X\|_1 a b^T$", "unparseable", r"\|x\|_1 is for vectors"),
    ("cookbook-aXb", r"$\|a\|_3 a b^T$", "unparseable", "a norm's subscript is 1, 2 or F"),
    ("cookbook-frobenius", r"$2 X \odot I$", "incorrect", "I ⊙ a matrix that is not square"),
    ("cookbook-frobenius", r"$2 X + I$", "incorrect", "I added to a D × K matrix, which is not square"),
    ("cookbook-logdet", r"$\operatorname{tr}(I) X^{-T}$", "unparseable", "the trace of I needs its size"),
]


@pytest.fixture(scope="module")
def problem():
    return load_problem(MATRIX_CALCULUS)


def verdict_of(problem, question, latex):
    report = problem.check({question: latex}, workers=1, isolate=False)
    return next(v for v in report.verdicts if v.question == question)


@pytest.mark.parametrize("question, latex, expected", GRADED, ids=[f"{q}:{a}" for q, a, _ in GRADED])
def test_matrix_answers_are_graded(problem, question, latex, expected):
    verdict = verdict_of(problem, question, latex)
    assert verdict.verdict == expected, (latex, verdict.verdict, verdict.evidence)


@pytest.mark.parametrize("question, latex, expected, reason", REFUSED, ids=[f"{q}:{a}" for q, a, _, _ in REFUSED])
def test_bad_matrix_answers_get_one_line(problem, question, latex, expected, reason):
    verdict = verdict_of(problem, question, latex)
    assert verdict.verdict == expected, (latex, verdict.verdict, verdict.evidence)
    assert reason in verdict.evidence and "\n" not in verdict.evidence, verdict.evidence


def test_matrices_given_entry_by_entry_evaluate_as_numpy():
    """(XᵀX + I)⁻¹, det and log det of a matrix that is not declared, against NumPy directly."""
    rng = rng_for("entries")
    x = rng.normal(size=(5, 3))
    X = sp.IndexedBase(sp.Symbol("X", real=True))
    r, c, k = sp.Dummy("r", integer=True), sp.Dummy("c", integer=True), sp.Dummy("k", integer=True)
    body = sp.Sum(X[k, r] * X[k, c], (k, 0, 4)) + sp.KroneckerDelta(r, c)
    gram = x.T @ x + np.eye(3)
    inverse = np.linalg.inv(gram)
    for i in range(3):
        for j in range(3):
            got = evaluate(inverse_entry(body, r, c, 3, i, j), {"X": x})
            assert abs(got - inverse[i, j]) < 1e-12
    assert abs(evaluate(det_of_entries(body, r, c, 3), {"X": x}) - np.linalg.det(gram)) < 1e-10
    assert abs(evaluate(logdet_of_entries(body, r, c, 3), {"X": x}) - np.linalg.slogdet(gram)[1]) < 1e-12
    singular = sp.KroneckerDelta(r, 0) * sp.KroneckerDelta(c, 0)
    with pytest.raises(ValueError, match="singular"):
        evaluate(inverse_entry(singular, r, c, 2, 0, 0), {})


@pytest.mark.parametrize("n", [1, 2, 3, 6])
@pytest.mark.parametrize("symmetric", [False, True])
def test_random_invertible_matrices_are_well_conditioned(n, symmetric):
    rng = rng_for(f"wc{n}{symmetric}")
    for _ in range(50):
        m = well_conditioned(rng, n, symmetric)
        assert np.linalg.det(m) > 0 and np.linalg.cond(m) < 1e3
        if symmetric:
            assert np.allclose(m, m.T)


def test_the_engines_matrix_forms_read_back_as_correct(problem):
    """Every matrix form the sheet prints (X^{-T}, d X^{-T}, (tanh(Wx))^{∘3}, ...), pasted as an answer,
    is graded correct: the checker reads all the notation the engine writes."""
    from symderive.answer import Kind
    wrong = {}
    for answer in problem.solve():
        for result in answer.results:
            if result.kind is Kind.MATRIX_FORM and result.label == "matrix form":
                verdict = verdict_of(problem, answer.question_id, f"${result.value}$")
                if verdict.verdict != "correct":
                    wrong[answer.question_id] = (result.value, verdict.verdict, verdict.evidence)
    assert not wrong, wrong


@pytest.mark.parametrize("latex, expected", [
    (r"$\left(\tanh\left(W x\right) - y\right) \odot \left(1 - \tanh\left(W x\right)^{\circ 2}\right) x^T$",
     "correct"),
    (r"$\left(\tanh\left(W x\right) - y\right) \odot \left(1 - \tanh\left(W x\right)^{\circ 3}\right) x^T$",
     "incorrect"),
])
def test_entrywise_powers_of_groups_and_calls(problem, latex, expected):
    verdict = verdict_of(problem, "tanh-layer-squared-error", latex)
    assert verdict.verdict == expected, (verdict.verdict, verdict.evidence)


@pytest.mark.parametrize("latex, reason", [
    (r"$I_{1000000000} X^{-T}$", "I_n takes a size"),
    (r"$\det\begin{bmatrix} 1 & 0 & 0 & 0 & 0 & 0 \\ 0 & 1 & 0 & 0 & 0 & 0 \\ 0 & 0 & 1 & 0 & 0 & 0 \\ "
     r"0 & 0 & 0 & 1 & 0 & 0 \\ 0 & 0 & 0 & 0 & 1 & 0 \\ 0 & 0 & 0 & 0 & 0 & 1 \end{bmatrix} X^{-T}$",
     "larger than 5 × 5"),
    (r"$\begin{bmatrix} 1 & 2 \\ 2 & 4 \end{bmatrix}^{-1}$", "the inverse of a singular matrix"),
    (r"$" + r"\det(" * 60 + "X" + ")" * 60 + "$", ""),
])
def test_hostile_matrix_answers_are_refused_quickly(problem, latex, reason):
    import time
    start = time.monotonic()
    verdict = verdict_of(problem, "cookbook-logdet", latex)
    assert verdict.verdict in ("unparseable", "incorrect"), (verdict.verdict, verdict.evidence)
    assert reason in verdict.evidence and "\n" not in verdict.evidence, verdict.evidence
    assert time.monotonic() - start < 10
