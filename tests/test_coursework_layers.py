"""problems/coursework-layers.yaml, the course questions of issue 11's layers: every question is
answered, ``--verify`` compares each with PyTorch and agrees, and the answers of the main course
questions are recomputed here with torch autograd from the course's own formulas (written out in
torch below, independently of symderive's layer kinds), at sizes and values drawn here."""
import pathlib

import numpy as np
import pytest
import sympy as sp

from symderive import verify
from symderive.answer import Kind, Status
from symderive.problem import load_problem
from symderive.tensors import flat_positions
from helpers import rng_for, sympy_number

torch = pytest.importorskip("torch")
F = torch.nn.functional
FILE = pathlib.Path(__file__).resolve().parents[1] / "problems" / "coursework-layers.yaml"
SIZES = {"N": 3, "C": 4, "D": 2, "d": 3, "V": 5}


@pytest.fixture(scope="module")
def solved():
    problem = load_problem(FILE)
    return problem, {a.question_id: a for a in problem.solve()}


def test_every_question_is_answered_and_verify_agrees_with_torch(solved):
    problem, answers = solved
    assert all(a.status is not Status.FAILED for a in answers.values()), \
        [(a.question_id, a.error) for a in answers.values() if a.status is Status.FAILED]
    reports = {r.question: r for r in verify.cross_check(problem, list(answers.values()))}
    for qid, report in reports.items():
        assert report.entries > 0, f"{qid}: {report.sentence()}"
        # the regularizer is an element formula of the file's own: its layers have no torch op
        expected = verify.NO_COUNTERPART if qid == "cs231n-full-loss-dW" else verify.AGREE
        assert report.outcome == expected, f"{qid}: {report.sentence()}"


def _element(answer):
    (result,) = [r for r in answer.results if r.kind is Kind.ELEMENT and r.key == "element"]   # not the course names
    return result.value, [idx.name for _, idx in result.axes]


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _compare(answer, values, variable, grad):
    value, names = _element(answer)
    got = [sympy_number(value, values, {**SIZES, **dict(zip(names, pos))}) for pos in flat_positions(grad.shape)]
    np.testing.assert_allclose(got, grad.numpy().reshape(-1), rtol=1e-10, atol=1e-12, err_msg=variable)


def _softmax_classifier(X, W, y):          # CS231n: L = (1/N) Σ_n −log(e^{s_{y_n}} / Σ_j e^{s_j})
    S = X @ W
    return (-S[torch.arange(len(y)), y] + torch.logsumexp(S, dim=1)).mean()


def _svm(X, W, y):                         # Σ_{j≠y_n} max(0, s_j − s_{y_n} + 1) / C, averaged over n
    S = X @ W
    margins = torch.clamp(S - S[torch.arange(len(y)), y][:, None] + 1, min=0)
    margins[torch.arange(len(y)), y] = 0
    return (margins.sum(dim=1) / S.shape[1]).mean()


def test_cs231n_softmax_svm_and_regularized_gradients(solved):
    _, answers = solved
    rng = rng_for("cs231n")
    X, W, y = rng.normal(size=(3, 2)), rng.normal(size=(2, 4)), rng.integers(0, 4, size=3)
    lam = 0.3
    values = {"X": X, "W": W, "y": y.astype(float), "lam": np.array(lam), "S": X @ W}   # S as the course defines it
    for qid, loss in (("cs231n-softmax-dW", _softmax_classifier), ("cs231n-svm-dW", _svm),
                      ("cs231n-full-loss-dW", lambda X, W, y: _softmax_classifier(X, W, y) + lam * (W ** 2).sum())):
        Wt = _t(W, True)
        loss(_t(X), Wt, torch.tensor(y)).backward()
        _compare(answers[qid], values, qid, Wt.grad)


def test_cs224n_word2vec_gradients(solved):
    _, answers = solved
    rng = rng_for("word2vec")
    v, U, o = rng.normal(size=3), rng.normal(size=(3, 5)), 1
    vt, Ut = _t(v, True), _t(U, True)
    (-torch.log_softmax(Ut.T @ vt, dim=0)[o]).backward()
    values = {"v": v, "U": U, "o": np.array(float(o)), "s": U.T @ v}
    _compare(answers["cs224n-word2vec-dv"], values, "v", vt.grad)
    _compare(answers["cs224n-word2vec-dU"], values, "U", Ut.grad)


def test_d2l_and_goodfellow_gradients(solved):
    _, answers = solved
    rng = rng_for("d2l")
    O, y = rng.normal(size=(3, 4)), rng.integers(0, 4, size=3)
    for qid in ("d2l-softmax-regression-do", "d2l-log-softmax-nll"):
        Ot = _t(O, True)
        onehot = torch.eye(4, dtype=torch.float64)[torch.tensor(y)]
        (-(onehot * torch.log_softmax(Ot, dim=1)).sum(dim=1).mean()).backward()
        log_p = O - np.log(np.exp(O).sum(axis=1, keepdims=True))
        _compare(answers[qid], {"O": O, "y": y.astype(float), "A": log_p, "Y": np.eye(4)[y]}, qid, Ot.grad)
    X, w, t = rng.normal(size=(3, 2)), rng.normal(size=2), rng.uniform(0, 1, size=3)
    wt = _t(w, True)
    z = _t(X) @ wt
    p = 1 / (1 + torch.exp(-z))
    (-(_t(t) * torch.log(p) + (1 - _t(t)) * torch.log(1 - p)).mean()).backward()
    _compare(answers["goodfellow-logistic-dw"], {"X": X, "w": w, "t": t, "z": X @ w}, "w", wt.grad)
    t = 2.5 * rng.normal(size=3)                      # residuals on both sides of delta = 1
    wt = _t(w, True)
    r = _t(X) @ wt - _t(t)
    torch.where(r.abs() < 1, r ** 2 / 2, r.abs() - 0.5).mean().backward()
    _compare(answers["d2l-huber-dw"], {"X": X, "w": w, "t": t, "yhat": X @ w}, "huber", wt.grad)
    z, P = rng.normal(size=(3, 4)), rng.dirichlet(np.ones(4), size=3)
    zt = _t(z, True)
    ((_t(P) * (torch.log(_t(P)) - torch.log_softmax(zt, dim=1))).sum() / 3).backward()
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    _compare(answers["goodfellow-kl-distillation"], {"z": z, "t": P, "a": log_q}, "kl", zt.grad)


def test_the_sheet_states_labels_and_the_mean(solved):
    _, answers = solved
    value, _ = _element(answers["cs231n-softmax-dS"])
    assert any(isinstance(a, sp.KroneckerDelta) for a in sp.preorder_traversal(value))


@pytest.mark.parametrize("layer, message, where", [
    ("cross_entropy(z, y, reduction='average')", "reduction is one of 'mean', 'sum', 'none'", "bad.yaml:5:48:"),
    ("cross_entropy(z, y, reduction=mean)", "reduction is one of", "bad.yaml:5:48:"),
    ("gelu(z, approximate='exact')", "approximate is one of 'none', 'tanh'", "bad.yaml:5:38:"),
])
def test_a_bad_string_option_is_an_error_at_its_place(tmp_path, layer, message, where):
    path = tmp_path / "bad.yaml"
    path.write_text("title: bad\nquestions:\n  - id: q\n    tensors: {z: [2, 3], y: [2]}\n"
                    f"    layers: {{E: \"{layer}\"}}\n    ask: shape\n    of: E\n")
    (answer,) = load_problem(path).solve()
    assert answer.status is Status.FAILED
    assert message in str(answer.error) and where in str(answer.error), answer.error
