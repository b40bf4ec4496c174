"""Round trip (issue 14): every boxed answer the engine prints, pasted verbatim as a student's answer,
reads back as ``correct`` for its question, over every shipped problem.

Results of the kinds that are graded (not facts, matrix forms or text) are checked; the ones that do
not read back yet are listed in KNOWN_FAILURES with the reason, and the test asserts that each of them
still fails, so that the list shrinks as the reader learns (a fixed entry must be removed from it;
an answer listed for the time limit may pass on an idle machine and is not held to failing).
"""
from pathlib import Path

import pytest

from symderive import load_problem
from symderive.answer import Kind
from symderive.checking.grade import check_one, prepare

PROBLEMS = sorted((Path(__file__).resolve().parent.parent / "problems").glob("*.yaml"))
GRADED = {Kind.ELEMENT, Kind.ENTRIES, Kind.SHAPE, Kind.TUPLE, Kind.VALUE, Kind.DECIMAL, Kind.WORD, Kind.CLAIM}

#: (question, result label): why it does not read back yet.
RANK3 = 'an array of rank 3 or 4 is printed as a list of matrices, which the checker does not read'
DECIMAL_ONLY = 'an exact value too long to print is shown by its decimal after \\approx'
NOT_INVESTIGATED = 'unparseable when pasted back; not investigated yet (issue 11 numeric passes)'
KNOWN_FAILURES = {
    ('maxpool-backward-values', 'element'): NOT_INVESTIGATED,
    ('maxpool-backward-values', 'array at the values'): 'the boxed line starts with \\text{at the given ...}',
    ('cs231n-softmax-batch', 'L'): DECIMAL_ONLY,
    ('cs231n-softmax-batch', 'dL/dW'): DECIMAL_ONLY,
    ('d2l-dropout-mlp', 'dL/dd'): DECIMAL_ONLY,
    ('d2l-dropout-mlp', 'dL/dW1'): DECIMAL_ONLY,
    ('d2l-dropout-mlp', 'dL/da'): DECIMAL_ONLY,
    ('d2l-dropout-mlp', 'dL/db1'): DECIMAL_ONLY,
    ('d2l-dropout-mlp', 'dL/dh'): DECIMAL_ONLY,
    ('d2l-dropout-mlp', 'dL/dx'): DECIMAL_ONLY,
    ('csce636-q2', 'de/dx'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('gelu-network-pass', 'de/dx'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('conv-relu-maxpool', 'conv'): RANK3,
    ('conv-relu-maxpool', 'r'): RANK3,
    ('conv-relu-maxpool', 'p'): RANK3,
    ('conv-relu-maxpool', 'dL/dp'): RANK3,
    ('conv-relu-maxpool', 'dL/dr'): RANK3,
    ('conv-relu-maxpool', 'dL/dconv'): RANK3,
    ('conv-relu-maxpool', 'dL/dw'): RANK3,
    ('conv-relu-maxpool', 'dL/dx'): RANK3,
    ('cs231n-staged-computation', 'df/dx'): DECIMAL_ONLY,
    ('cs231n-staged-computation', 'df/dy'): DECIMAL_ONLY,
    ('cq-3.4', 'claim'): '\\frac{\\partial}{\\partial z_x} E: the operator form of a derivative',
    ('csce636-q2', 'x1'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 's2'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'x2'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 's3'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'x3'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/dx3'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/ds3'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/dx2'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/ds2'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/dx1'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/ds1'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/dW1'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/dW2'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q2', 'de/dW3'): "the sheet's abbreviations \\tau_k = \\tanh(...) are not known to the checker",
    ('csce636-q3c', 'bottleneck / standard'): 'a ratio labelled \\frac{\\text{bottleneck}}{\\text{standard}}',
    ('csce636-q4a', 'gamma, beta'):
        '\\gamma,\\ \\beta \\in ... (two names, one dimension); \\text{averaged over } N: prose',
    ('csce636-q4a', 'averaged over'):
        '\\gamma,\\ \\beta \\in ... (two names, one dimension); \\text{averaged over } N: prose',
    ('csce636-q4b', 'gamma, beta'):
        '\\gamma,\\ \\beta \\in ... (two names, one dimension); \\text{averaged over } N: prose',
    ('csce636-q4b', 'averaged over'):
        '\\gamma,\\ \\beta \\in ... (two names, one dimension); \\text{averaged over } N: prose',
    ('csce636-q5c', 'padding'):
        'the label inside the prose (\\text{zero padding on each side: } 2); \\tilde w without braces',
    ('csce636-q5c', 'kernels'):
        'the label inside the prose (\\text{zero padding on each side: } 2); \\tilde w without braces',
    ('hw5-p1a', 'derivative'): 'a formula in the state, a trajectory, and d: labels the question does not know',
    ('hw5-p1a', 'trajectory'): 'a formula in the state, a trajectory, and d: labels the question does not know',
    ('hw5-p1a', 'derivative at the fixed point'):
        'a formula in the state, a trajectory, and d: labels the question does not know',
    ('hw5-p1b', 'derivative'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p1b', 'trajectory'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p1b', 'derivative at the fixed point'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p1b', 'verdict'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p2d', 'receptive field'): 'r = 4 \\times 4 (\\text{height} \\times \\text{width}): r is not a label',
    ('nyu24-1.1c-ii', 'array'): '\\begin{gathered} of several matrices',
    ('nyu24-1.1c-iii', 'array'): '\\begin{gathered}',
    ('nyu24-1.1c-matrix', 'matrix'): '\\begin{gathered}',
    ('nyu24-1.1c-im2col', 'matrix'): '\\begin{gathered}',
    ('nyu24-1.1c-backward', 'B'): '\\begin{gathered}',
    ('nyu24-1.2.2f', 'element'): 'a formula of several thousand characters: not decided within the time limit',
    ('nielsen-bp1-bp4', 'element'): 'backprop δ names (\\delta^{z_1}_p) are read as a Kronecker delta',
    ('nielsen-bp3', 'element'): 'backprop δ names (\\delta^{z_1}_p) are read as a Kronecker delta',
    ('cs231n-two-layer', 'element'): 'backprop δ names (\\delta^{z_1}_p) are read as a Kronecker delta',
    ('deep-mlp-17-layers', 'element'): 'backprop δ names (\\delta^{z_1}_p) are read as a Kronecker delta',
    ('nielsen-bp1-bp4', 'dimension'): 'the sizes n_1, n_0 of a network: subscripted size names',
    ('nielsen-bp3', 'dimension'): 'the sizes n_1, n_0 of a network: subscripted size names',
    ('deep-mlp-17-layers', 'dimension'): 'the sizes n_1, n_0 of a network: subscripted size names',
    ('cs231n-softmax-dW', 'element'): 'a Kronecker delta against a class label (\\delta_{q {y}_{n}})',
    ('cs231n-softmax-dS', 'element'): 'a Kronecker delta against a class label (\\delta_{q {y}_{n}})',
    ('cs231n-svm-dW', 'element'): 'a Kronecker delta against a class label (\\delta_{q {y}_{n}})',
    ('cs231n-full-loss-dW', 'element'): 'a Kronecker delta against a class label (\\delta_{q {y}_{n}})',
    ('d2l-log-softmax-nll', 'element'): 'a Kronecker delta against a class label (\\delta_{q {y}_{n}})',
    ('cs224n-embedding-dE', 'element'): 'a Kronecker delta against a class label (\\delta_{q {y}_{n}})',
    ('gelu-derivative', 'element'): '\\operatorname{erf} is not a function the checker knows',
    ('gelu-derivative', 'array'): '\\begin{gathered}',
    ('gelu-tanh-derivative', 'array'): '\\begin{gathered}',
    ('swish-derivative', 'array'): '\\begin{gathered}',
    ('gelu-network-pass', 'a'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('gelu-network-pass', 'o'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('gelu-network-pass', 'de/do'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('gelu-network-pass', 'de/da'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('gelu-network-pass', 'de/ds'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('gelu-network-pass', 'de/dW'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('gelu-network-pass', 'de/dWo'): "the sheet's abbreviations \\tau_k are not known to the checker",
    ('log-sum-exp-gradient', 'claim'): '\\frac{\\partial}{\\partial z} f: the operator form of a derivative',
    ('softmax-jacobian-column-sums', 'claim'): '\\frac{\\partial}{\\partial z} f: the operator form of a derivative',
    ('sigmoid-derivative', 'claim'): '\\frac{\\partial}{\\partial z} f: the operator form of a derivative',
    ('softplus-derivative', 'claim'): '\\frac{\\partial}{\\partial z} f: the operator form of a derivative',
    ('logistic-regression-hessian', 'element'): 'second derivatives (\\partial^2, \\nabla^2) are not read',
    ('logistic-regression-hessian', 'dimension'): 'second derivatives (\\partial^2, \\nabla^2) are not read',
    ('least-squares-hessian', 'element'): 'second derivatives (\\partial^2, \\nabla^2) are not read',
    ('least-squares-hessian', 'dimension'): 'second derivatives (\\partial^2, \\nabla^2) are not read',
    ('softmax-regression-hessian', 'element'): 'second derivatives (\\partial^2, \\nabla^2) are not read',
    ('softmax-regression-hessian', 'dimension'): 'second derivatives (\\partial^2, \\nabla^2) are not read',
    ('softmax-regression-hessian', 'array'): 'second derivatives (\\partial^2, \\nabla^2) are not read',
    ('cookbook-det', 'element'): 'X^{-1} of a matrix is refused (not read as an inverse yet)',
    ('cookbook-logdet', 'element'): 'X^{-1} of a matrix is refused (not read as an inverse yet)',
    ('cookbook-trace-AXinv', 'element'): 'X^{-1} of a matrix is refused (not read as an inverse yet)',
    ('gaussian-precision', 'element'): 'X^{-1} of a matrix is refused (not read as an inverse yet)',
}


def boxed_answers():
    out = []
    for path in PROBLEMS:
        problem = load_problem(path)
        infos = prepare(problem, {q.id for q in problem.questions})
        for qid, info in infos.items():
            if not info.checkable:
                continue
            for r in info.answer.results:
                if r.kind in GRADED:
                    out.append((qid, str(r.label), r.latex, info))
    return out


@pytest.fixture(scope="module")
def outcomes():
    return [(qid, label, latex, check_one(info, latex, 20)) for qid, label, latex, info in boxed_answers()]


def test_boxed_answers_read_back_as_correct(outcomes, capsys):
    wrong = [(qid, label, latex[:80], v.verdict, v.evidence[:120]) for qid, label, latex, v in outcomes
             if v.verdict != "correct" and (qid, label) not in KNOWN_FAILURES]
    with capsys.disabled():
        ok = sum(v.verdict == "correct" for *_, v in outcomes)
        print(f"\nround trip: {ok}/{len(outcomes)} boxed answers read back as correct "
              f"({len(KNOWN_FAILURES)} known failures listed)")
    assert not wrong, wrong
    assert len(outcomes) >= 100


def test_known_failures_still_fail(outcomes):
    """A listed failure that now reads back must be removed from the list (and none may be stale)."""
    seen = {(qid, label): v.verdict for qid, label, _, v in outcomes}
    fixed = [k for k in KNOWN_FAILURES if seen.get(k) == "correct" and "time limit" not in KNOWN_FAILURES[k]]
    stale = [k for k in KNOWN_FAILURES if k not in seen]
    assert not fixed and not stale, (fixed, stale)
