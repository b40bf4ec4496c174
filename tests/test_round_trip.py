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
#: Seconds per answer: what is tested here is reading, not speed (the time limit has its own tests), and
#: cq-3.1-K needs about 4.3 CPU-seconds, which the default 20 s of wall time did not cover on a loaded machine.
ROUND_TRIP_TIMEOUT = 60
GRADED = {Kind.ELEMENT, Kind.ENTRIES, Kind.SHAPE, Kind.TUPLE, Kind.VALUE, Kind.DECIMAL, Kind.WORD, Kind.CLAIM}

GATHERED_BLOCKS = "\\begin{gathered} of one block (A^{(1)}, one ∂f_{i,j}) a line: not assembled into the whole"
#: (question, result label): why it does not read back yet.
RANK3 = 'an array of rank 3 or 4 is printed as a list of matrices, which the checker does not read'
NOT_INVESTIGATED = 'unparseable when pasted back; not investigated yet (issue 11 numeric passes)'
KNOWN_FAILURES = {
    ('maxpool-backward-values', 'element'): NOT_INVESTIGATED,
    ('maxpool-backward-values', 'array at the values'): 'the boxed line starts with \\text{at the given ...}',
    ('conv-relu-maxpool', 'conv'): RANK3,
    ('conv-relu-maxpool', 'r'): RANK3,
    ('conv-relu-maxpool', 'p'): RANK3,
    ('conv-relu-maxpool', 'dL/dp'): RANK3,
    ('conv-relu-maxpool', 'dL/dr'): RANK3,
    ('conv-relu-maxpool', 'dL/dconv'): RANK3,
    ('conv-relu-maxpool', 'dL/dw'): RANK3,
    ('conv-relu-maxpool', 'dL/dx'): RANK3,
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
        'the label inside the prose (\\text{zero padding on each side: } 2)',
    ('csce636-q5c', 'kernels'):
        'the flipped kernels are a rank-3 array, shown as a 4 x 3 matrix: the checker has no target for it',
    ('hw5-p1a', 'derivative'): 'a formula in the state, a trajectory, and d: labels the question does not know',
    ('hw5-p1a', 'trajectory'): 'a formula in the state, a trajectory, and d: labels the question does not know',
    ('hw5-p1a', 'derivative at the fixed point'):
        'a formula in the state, a trajectory, and d: labels the question does not know',
    ('hw5-p1b', 'derivative'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p1b', 'trajectory'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p1b', 'derivative at the fixed point'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p1b', 'verdict'): 'as hw5-p1a; \\text{neither} is not a word the checker knows',
    ('hw5-p2d', 'receptive field'): 'r = 4 \\times 4 (\\text{height} \\times \\text{width}): r is not a label',
    ('nyu24-1.1c-ii', 'array'): GATHERED_BLOCKS,
    ('nyu24-1.1c-iii', 'array'): GATHERED_BLOCKS,
    ('nyu24-1.1c-matrix', 'matrix'): GATHERED_BLOCKS,
    ('nyu24-1.1c-im2col', 'matrix'): GATHERED_BLOCKS,
    ('nyu24-1.1c-backward', 'B'): GATHERED_BLOCKS,
    ('nyu24-1.2.2f', 'element'): 'a formula of several thousand characters: not decided within the time limit',
    ('transposed-weight-gradient', 'element'): 'a divisibility condition (2 \\mid j + 1) is not read yet',
    ('gru-dh-dhprev', 'element'): 'backprop δ names (\\delta^{h}_p) are read as a Kronecker delta',
    ('vaswani-sdpa-dV', 'element'): "a layer's inner layers (y_scores) are not names the checker knows",
    ('vaswani-sdpa-dQ', 'element'): "a layer's inner layers (y_scores) are not names the checker knows",
    ('flash-attention-dQ', 'element'): "a layer's inner layers (y_scores) are not names the checker knows",
    ('flash-attention-dK', 'element'): "a layer's inner layers (y_scores) are not names the checker knows",
    ('d2l-attention-regression-dQ', 'element'): "a layer's inner layers (y_scores) are not names the checker knows",
    ('cs224n-attention-dhenc', 'element'): "a layer's inner layers (a_scores) are not names the checker knows",
    ('vaswani-mha-dWv', 'element'): "a layer's inner layers (y_scores) are not names the checker knows",
    ('cs231n-max-pool-backward', 'element'): 'reads back incorrect where the checker draws an odd H (3): an index '
                                             'past the pooled output; not investigated yet',
    ('d2l-pool-padding-stride', 'element'): "7,532 characters: over the checker's limit of 6,000",
    ('grouped-conv-backward-matrix', 'B'): 'the block labels B^{(0;0)} of a block matrix are not read',
    ('mobilenet-separable-parameters', 'ordinary / separable'): 'a label written as a fraction of two labels '
                                                                '(ordinary over separable) is read as the first',
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
    return [(qid, label, latex, check_one(info, latex, ROUND_TRIP_TIMEOUT))
            for qid, label, latex, info in boxed_answers()]


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
