"""Checking students' LaTeX answers (issue 6): answers as students write them for the shipped
problems, right ones in several notations and wrong ones with the typical mistakes.

Every case asserts the verdict, and for wrong answers what decided it. The engine's answers
are solved once per problem (module fixtures); each answer is then checked in-process with
``check_one`` (the pool and the command line are tested in test_check_cli.py).
"""
from pathlib import Path

import pytest

from symderive import load_problem
from symderive.checking.grade import check_one, prepare
from symderive.checking.reader import ReadError, read

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = ROOT / "problems"

_CACHE = {}


def infos_for(path, qids):
    key = (str(path), tuple(sorted(qids)))
    if key not in _CACHE:
        _CACHE[key] = prepare(load_problem(path), set(qids))
    return _CACHE[key]


def cq34_path():
    """cq-3.4 from the shipped file when it is there, else the question as the seed states it."""
    shipped = PROBLEMS / "conceptual-cnn-rnn.yaml"
    if shipped.exists() and "id: cq-3.4" in shipped.read_text():
        return shipped
    return Path(__file__).resolve().parent / "data" / "checking" / "cq34.yaml"


def verdict(path, qid, latex, timeout=20):
    """The verdict on one answer. Questions other engineers are still adding to the problem files
    (numeric networks, parameter counts) are skipped where they are not there yet."""
    if not Path(path).exists() or f"id: {qid}\n" not in Path(path).read_text():
        pytest.skip(f"{qid} is not in {Path(path).name} in this checkout")
    info = infos_for(path, {qid})[qid]
    return check_one(info, latex, timeout)


NYU21 = PROBLEMS / "nyu-dl-2021-hw3.yaml"
NYU24 = PROBLEMS / "nyu-dl-2024-hw2.yaml"
CSCE = PROBLEMS / "csce636-hw2.yaml"
HW5 = PROBLEMS / "hw5-written.yaml"
CQ = PROBLEMS / "conceptual-cnn-rnn.yaml"

# (problem, question, answer) -------------------------------------------------------------
RIGHT = [
    # Shapes: nyu21-1.1a is 4 × 5.
    (NYU21, "nyu21-1.1a", r"y \in \mathbb{R}^{4 \times 5}", "shape"),
    (NYU21, "nyu21-1.1a", r"$4 \times 5$", "shape"),
    (NYU21, "nyu21-1.1a", r"(4, 5)", "shape"),
    (NYU21, "nyu21-1.1b", r"F \times \left(\left\lfloor \frac{H + 2P - D(K-1) - 1}{S} \right\rfloor + 1\right)"
                          r" \times \left(\left\lfloor \frac{W + 2P - D(K-1) - 1}{S}\right\rfloor + 1\right)",
     "shape"),
    (NYU21, "nyu21-1.1b", r"\mathbb{R}^{F \times (\lfloor (H - DK + D + 2P - 1)/S \rfloor + 1) \times "
                          r"(\lfloor (W - DK + D + 2P - 1)/S \rfloor + 1)}", "shape"),
    # Element formulas: f[i, j] = Σ_c Σ_k W[i, c, k] x[c, 2j + k - 2] (1-based).
    (NYU21, "nyu21-1.1c-i", r"f_{i,j} = \sum_{c=1}^{2}\sum_{k=1}^{3} W_{i,c,k}\, x_{c,2j+k-2}", "symbolic"),
    (NYU21, "nyu21-1.1c-i", r"f_{1,j} = \sum_{c=1}^{2} \left(W_{1,c,1} x_{c,2j-1} + W_{1,c,2} x_{c,2j} + "
                            r"W_{1,c,3} x_{c,2j+1}\right)", None),
    (NYU21, "nyu21-1.1c-i", r"f[i, j] = \sum_{k=1}^{3}\sum_{c=1}^{2} x[c, 2j + k - 2] W[i, c, k]", "symbolic"),
    (NYU21, "nyu21-1.1c-i", r"f \in \mathbb{R}^{1 \times 2}", "shape"),
    # ∂f/∂W: the engine's letters (i, j, p, q, r) or any others, matched by position.
    (NYU21, "nyu21-1.1c-ii", r"\frac{\partial f_{i,j}}{\partial W_{p,q,r}} = \delta_{ip}\, x_{q,2j+r-2}",
     "symbolic"),
    (NYU21, "nyu21-1.1c-ii", r"\frac{\partial f_{a,b}}{\partial W_{c,d,e}} = \delta_{ac} x_{d, 2b+e-2}",
     "symbolic"),
    (NYU21, "nyu21-1.1c-ii", r"\frac{\partial f_{1,j}}{\partial W_{1,q,r}} = x_{q,2j+r-2}", None),
    (NYU21, "nyu21-1.1c-ii", r"\mathbb{R}^{2 \times 6}", "shape"),
    (NYU21, "nyu21-1.1c-iii", r"\frac{\partial f_{i,j}}{\partial x_{p,q}} = \begin{cases} W_{i,p,q-2j+2} & "
                              r"\text{if } 1 \le q - 2j + 2 \le 3 \\ 0 & \text{otherwise} \end{cases}", None),
    (NYU21, "nyu21-1.1c-iii", r"\frac{\partial f_{i,j}}{\partial x_{p,q}} = W_{i,p,q-2j+2}", None),
    (NYU21, "nyu21-1.1c-iii", r"\frac{\partial f}{\partial x} = \begin{bmatrix} W_{1,1,1} & W_{1,1,2} & "
                              r"W_{1,1,3} & 0 & 0 & W_{1,2,1} & W_{1,2,2} & W_{1,2,3} & 0 & 0 \\ 0 & 0 & W_{1,1,1} "
                              r"& W_{1,1,2} & W_{1,1,3} & 0 & 0 & W_{1,2,1} & W_{1,2,2} & W_{1,2,3} \end{bmatrix}",
     "entries"),
    # ∂l/∂W with the upstream gradient written g or ∂l/∂f, summed or expanded.
    (NYU21, "nyu21-1.1c-iv", r"\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j=1}^{2} g_{p,j}\, x_{q,2j+r-2}",
     "symbolic"),
    (NYU21, "nyu21-1.1c-iv", r"\frac{\partial l}{\partial W_{1,c,k}} = \frac{\partial l}{\partial f_{1,1}} "
                             r"x_{c,k} + \frac{\partial l}{\partial f_{1,2}} x_{c,k+2}", None),
    (NYU21, "nyu21-1.1c-iv", r"\frac{\partial l}{\partial W} = \begin{bmatrix} g_{1,1} x_{1,1} + g_{1,2} x_{1,3} "
                             r"& g_{1,1} x_{1,2} + g_{1,2} x_{1,4} & g_{1,1} x_{1,3} + g_{1,2} x_{1,5} \\ "
                             r"g_{1,1} x_{2,1} + g_{1,2} x_{2,3} & g_{1,1} x_{2,2} + g_{1,2} x_{2,4} & "
                             r"g_{1,1} x_{2,3} + g_{1,2} x_{2,5} \end{bmatrix}", "entries"),
    # RNN: ∂l/∂W_x = Σ_t ((1 − c[t]) ⊙ g[t]) x[t]^T, in matrix form and in index form.
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_x} = \sum_{t=1}^{K} \left((1 - c_t) \odot g_t\right) "
                          r"x_t^{\top}", "symbolic"),
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_x} = \sum_{t=1}^{K} \left(g[t] \circ (1 - c[t])\right) "
                          r"x[t]^T", None),
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_x} = \sum_{t=1}^{K} \operatorname{diag}(1 - c_t)\, "
                          r"\frac{\partial l}{\partial h_t}\, x_t^{\mathsf T}", None),
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_{x,ij}} = \sum_{t} (1 - c_{t,i})\, g_{t,i}\, x_{t,j}",
     "symbolic"),
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_{x,ij}} = \sum_{t=1}^{K} g_{t,i} x_{t,j} - "
                          r"\sum_{t=1}^{K} c_{t,i} g_{t,i} x_{t,j}", None),
    (NYU21, "nyu21-1.2b", r"c = \sigma(W_c x + W_h h_{t-1})", "symbolic"),
    (NYU21, "nyu21-1.2b", r"c_i = \sigma\left(\sum_{j=1}^{n} W_{c,ij} x_j + \sum_{k=1}^{m} W_{h,ik} "
                          r"h[t-1]_k\right)", None),
    (NYU21, "nyu21-1.2b", r"c[t] \in \mathbb{R}^{m}", "shape"),
    (NYU21, "nyu21-1.2d", r"\frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(c) + \operatorname{diag}"
                          r"\left(c \odot (1 - c) \odot (h_{t-1} - W_x x)\right) W_h", None),
    # Values: -ln(1/4) = ln 4 ≈ 1.386.
    (NYU24, "nyu24-1.3d", r"\ln 4", "symbolic"),
    (NYU24, "nyu24-1.3d", r"2\ln 2", "symbolic"),
    (NYU24, "nyu24-1.3d", r"L = -\log\frac{1}{4} \approx 1.386", None),
    (NYU24, "nyu24-1.3d", r"1.3863", "value"),
    (NYU24, "nyu24-1.2.2b", r"a[t] \in \mathbb{R}^{3}", "shape"),
    (NYU24, "nyu24-1.1c-iii", r"\frac{\partial f_{i,j}}{\partial x_{p,q}} = \begin{cases} W_{i,p,q-2j+2} & "
                              r"\text{if } -1 \le q - 2j \le 1 \\ 0 & \text{otherwise}\end{cases}", None),
    # Matrices: the convolution as a matrix.
    (CSCE, "csce636-q5a", r"A = \begin{bmatrix} w_{1,1,1} & w_{1,1,2} & w_{1,1,3} & 0 & w_{1,2,1} & w_{1,2,2} & "
                          r"w_{1,2,3} & 0 \\ 0 & w_{1,1,1} & w_{1,1,2} & w_{1,1,3} & 0 & w_{1,2,1} & w_{1,2,2} & "
                          r"w_{1,2,3} \\ w_{2,1,1} & w_{2,1,2} & w_{2,1,3} & 0 & w_{2,2,1} & w_{2,2,2} & w_{2,2,3}"
                          r" & 0 \\ 0 & w_{2,1,1} & w_{2,1,2} & w_{2,1,3} & 0 & w_{2,2,1} & w_{2,2,2} & w_{2,2,3}"
                          r" \end{bmatrix}", "entries"),
    (HW5, "hw5-p3a", r"F = \begin{bmatrix} f_1 & f_2 & f_3 & 0 & 0 \\ 0 & f_1 & f_2 & f_3 & 0 \\ 0 & 0 & f_1 & "
                     r"f_2 & f_3 \end{bmatrix}", "entries"),
    (HW5, "hw5-p3a", r"\begin{pmatrix} f[1] & f[2] & f[3] & 0 & 0 \\ 0 & f[1] & f[2] & f[3] & 0 \\ 0 & 0 & "
                     r"f[1] & f[2] & f[3] \end{pmatrix}", "entries"),
    (HW5, "hw5-p3b", r"\frac{\partial a}{\partial f_1} = \begin{bmatrix} x_1 \\ x_2 \\ 0 \end{bmatrix}", "entries"),
    (HW5, "hw5-p3b", r"\frac{\partial a_i}{\partial f_1} = x_i\, H\left(\sum_{k=1}^{3} f_k x_{i+k-1}\right)",
     "symbolic"),
    # Recurrent unit: derivative, fixed point, verdict.
    (HW5, "hw5-p1a", r"\frac{\partial a^{\langle t \rangle}}{\partial a^{\langle t-1 \rangle}} = W_a\, "
                     r"\sigma(W_a a^{\langle t-1 \rangle} + W_x x_t + b)\left(1 - \sigma(W_a a^{\langle t-1 "
                     r"\rangle} + W_x x_t + b)\right)", "symbolic"),
    (HW5, "hw5-p1a", r"a^{\langle t \rangle}(1 - a^{\langle t \rangle}) \\ a^* \approx 0.659 \\ 0.2247 \\ "
                     r"\text{vanishing}", None),
    (HW5, "hw5-p2b", r"126 \times 126 \times 10; \quad 63 \times 63 \times 10", "shape"),
    (HW5, "hw5-p2d", r"4 \times 4", "shape"),
    (HW5, "hw5-p2a", r"\text{conv} = 280", None),
    # Numeric networks, parameter counts.
    (CQ, "cq-3.5", r"W' = \begin{bmatrix} 0.9914 & -0.008621 \\ 0 & -1 \end{bmatrix}, \quad B' = "
                   r"\begin{bmatrix} -0.008621 \\ 0 \end{bmatrix}", None),
    (CQ, "cq-3.3", r"513{,}466", None),
    (CSCE, "csce636-q3a", r"(18496, 18432)", "shape"),
    (CSCE, "csce636-q2", r"s^{(1)} = \begin{bmatrix} 0.7 \\ 1 \end{bmatrix} \\ \delta^{(3)} = -3.606 \\ "
                         r"\frac{\partial e}{\partial W^{(3)}} = \begin{bmatrix} -3.606 \\ 3.251 \end{bmatrix}",
     None),
    (CSCE, "csce636-q4b", r"\mu \in \mathbb{R}^{C}", "shape"),
]

WRONG = [
    # (problem, question, answer, decided by, a phrase of the evidence)
    (NYU21, "nyu21-1.1a", r"\mathbb{R}^{5 \times 5}", "shape", "axis 1"),
    (NYU21, "nyu21-1.1a", r"\mathbb{R}^{20}", "shape", "1 axis"),
    (NYU21, "nyu21-1.1b", r"F \times \left(\frac{H + 2P - D(K-1) - 1}{S} + 1\right) \times "
                          r"\left(\frac{W + 2P - D(K-1) - 1}{S} + 1\right)", "shape", "axis 2"),
    # Off-by-one index.
    (NYU21, "nyu21-1.1c-i", r"f_{i,j} = \sum_{c=1}^{2}\sum_{k=1}^{3} W_{i,c,k} x_{c,2j+k-1}", "numeric", "differs at"),
    # Stride forgotten.
    (NYU21, "nyu21-1.1c-iv", r"\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j=1}^{2} g_{p,j} x_{q,j+r-1}",
     "numeric", "differs at"),
    (NYU21, "nyu21-1.1c-iv", r"\frac{\partial l}{\partial W} = \begin{bmatrix} g_{1,1} x_{1,1} & g_{1,1} x_{1,2} & "
                             r"g_{1,1} x_{1,3} \\ g_{1,1} x_{2,1} & g_{1,1} x_{2,2} & g_{1,1} x_{2,3} "
                             r"\end{bmatrix}", "entries", "entry (1, 1)"),
    (NYU21, "nyu21-1.1c-iii", r"\frac{\partial f_{i,j}}{\partial x_{p,q}} = W_{i,p,q-j+1}", "numeric", "differs at"),
    # A dropped transpose, and the sum over t missing.
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_x} = \sum_{t=1}^{K} \left((1 - c_t) \odot g_t\right) x_t",
     "shape", "transpose"),
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_x} = \left((1 - c_t) \odot g_t\right) x_t^{\top}",
     "symbolic", "index t"),
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_x} = \sum_{t=1}^{K} \left((1 - c_{t-1}) \odot g_t\right) "
                          r"x_t^{\top}", "numeric", "differs at"),
    (NYU21, "nyu21-1.2c", r"\frac{\partial l}{\partial W_x} = \sum_{t=1}^{K} x_t \left((1 - c_t) \odot g_t"
                          r"\right)^{\top}", "shape", "its transpose has the right shape"),
    # A sign error in σ'.
    (NYU21, "nyu21-1.2d", r"\frac{\partial h}{\partial h_{t-1}} = \operatorname{diag}(c) + \operatorname{diag}"
                          r"\left(c \odot (1 + c) \odot (h_{t-1} - W_x x)\right) W_h", "numeric", "differs at"),
    (NYU21, "nyu21-1.2b", r"c = \sigma(W_c x + W_h^T h_{t-1})", "numeric", "differs at"),
    # Rounding that drifted too far, and a wrong value.
    (NYU24, "nyu24-1.3d", r"1.37", "value", "more than 1%"),
    (NYU24, "nyu24-1.3d", r"1.5", "value", "1.5"),
    (NYU24, "nyu24-1.3d", r"\ln 3", "value", ""),
    (CQ, "cq-3.5", r"W' = \begin{bmatrix} 0.9914 & 0.008621 \\ 0 & -1 \end{bmatrix}", "entries", "entry (1, 2)"),
    (CQ, "cq-3.3", r"513456", "value", "513456"),
    (CSCE, "csce636-q2", r"\delta^{(3)} = 3.606", "value", "3.606"),
    # Wrong dimension.
    (CSCE, "csce636-q4a", r"\mu \in \mathbb{R}^{N}", "shape", "axis 1"),
    (NYU21, "nyu21-1.1c-ii", r"\mathbb{R}^{2 \times 5}", "shape", "axis 2"),
    (CSCE, "csce636-q5a", r"A = \begin{bmatrix} w_{1,1,1} & w_{1,1,2} & w_{1,1,3} & 0 \\ 0 & w_{1,1,1} & w_{1,1,2} "
                          r"& w_{1,1,3} \end{bmatrix}", "shape", "2 × 4"),
    (HW5, "hw5-p3a", r"F = \begin{bmatrix} f_3 & f_2 & f_1 & 0 & 0 \\ 0 & f_3 & f_2 & f_1 & 0 \\ 0 & 0 & f_3 & "
                     r"f_2 & f_1 \end{bmatrix}", "entries", "entry (1, 1)"),
    (HW5, "hw5-p3b", r"\frac{\partial a}{\partial f_1} = \begin{bmatrix} x_1 \\ x_2 \\ x_3 \end{bmatrix}", "entries",
     "entry (3, 1)"),
    (HW5, "hw5-p1a", r"\text{exploding}", "value", "vanishing"),
]


@pytest.mark.parametrize("path, qid, latex, decided", RIGHT,
                         ids=[f"{c[1]}:{n}" for n, c in enumerate(RIGHT)])
def test_right_answers_are_correct(path, qid, latex, decided):
    v = verdict(path, qid, latex)
    assert v.verdict == "correct", (v.verdict, v.decided_by, v.evidence)
    if decided:
        assert v.decided_by.split(" at ")[0].startswith(decided.split(" at ")[0]), v.decided_by


@pytest.mark.parametrize("path, qid, latex, decided, phrase", WRONG,
                         ids=[f"{c[1]}:{n}" for n, c in enumerate(WRONG)])
def test_wrong_answers_are_incorrect_with_evidence(path, qid, latex, decided, phrase):
    v = verdict(path, qid, latex)
    assert v.verdict == "incorrect", (v.verdict, v.decided_by, v.evidence)
    assert v.decided_by.startswith(decided), v.decided_by
    assert phrase in v.evidence, v.evidence


def test_numeric_verdicts_say_how_many_points(tmp_path):
    v = verdict(NYU21, "nyu21-1.1c-iii", r"\frac{\partial f_{i,j}}{\partial x_{p,q}} = W_{i,p,q-2j+2}")
    assert v.verdict == "correct"
    n = int(v.decided_by.split("numeric at ")[1].split()[0])
    assert n >= 20


def test_counterexample_point_is_in_the_problems_index_base():
    v = verdict(NYU21, "nyu21-1.1c-i", r"f_{i,j} = \sum_{c=1}^{2}\sum_{k=1}^{3} W_{i,c,k} x_{c,2j+k-1}")
    assert "i = 1" in v.evidence and "i = 0" not in v.evidence, v.evidence


def test_simplified_difference_is_evidence():
    v = verdict(NYU21, "nyu21-1.2b", r"c_i = \sigma\left(\sum_{j=1}^{n} W_{c,ij} x_j\right)")
    assert v.verdict == "incorrect"
    v = verdict(NYU24, "nyu24-1.3d", r"\ln 4 + 1")
    assert v.verdict == "incorrect" and "expected 1.38629" in v.evidence, v.evidence


def test_proof_answers():
    path = cq34_path()
    right = [r"\frac{\partial E}{\partial z_x} = q_x - p_x",
             r"\frac{\partial E}{\partial z_k} = \frac{e^{z_k}}{\sum_{j=1}^{N} e^{z_j}} - p_k",
             r"\frac{\partial E}{\partial z_x} = -\sum_{i=1}^{N} p_i (\delta_{ix} - q_x) = q_x \sum_{i=1}^{N} p_i - p_x"
             r" = q_x - p_x",
             # equal only because Σ p = 1: the constraint is used
             r"\frac{\partial E}{\partial z_x} = q_x \sum_{i} p_i - p_x"]
    for latex in right:
        v = verdict(path, "cq-3.4", latex)
        assert v.verdict == "correct", (latex, v.evidence)
    wrong = [r"\frac{\partial E}{\partial z_x} = p_x - q_x", r"\frac{\partial E}{\partial z_x} = q_x(1 - q_x) - p_x"]
    for latex in wrong:
        v = verdict(path, "cq-3.4", latex)
        assert v.verdict == "incorrect" and "differs at" in v.evidence, (latex, v.evidence)


def test_question_tolerance_replaces_the_default(tmp_path):
    text = (NYU24.read_text().split("questions:")[0] + "questions:\n"
            "  - id: loss\n    ask: value\n    expr: \"$-\\\\ln \\\\frac{1}{4}$\"\n    tolerance: 0.1\n"
            "  - id: loss-rel\n    ask: value\n    expr: \"$-\\\\ln \\\\frac{1}{4}$\"\n    tolerance: \"5%\"\n")
    path = tmp_path / "tol.yaml"
    path.write_text(text)
    assert verdict(path, "loss", "1.3").verdict == "correct"          # within ±0.1, though 6% off
    assert verdict(path, "loss", "1.2").verdict == "incorrect"
    assert verdict(path, "loss-rel", "1.33").verdict == "correct"     # 4% off
    v = verdict(path, "loss-rel", "1.3")
    assert v.verdict == "incorrect" and "5%" in v.evidence


def test_unparseable_answers_say_where():
    v = verdict(NYU21, "nyu21-1.1c-i", r"f_{i,j} = \sum_{c=1}^{2} W_{i,c,k} x_{c,2j+k-2")
    assert v.verdict == "unparseable" and "column" in v.evidence
    v = verdict(NYU21, "nyu21-1.1c-i", r"f_{i,j} = \foo{x}")
    assert v.verdict == "unparseable" and v.position == r"f_{i,j} = \foo{x}".index("\\foo")
    v = verdict(NYU21, "nyu21-1.2c", r"\sum_{t=1}^{T} g_t x_t^T")
    assert v.verdict == "unknown name" and "'T' is not declared" in v.evidence


def test_text_questions_are_unchecked():
    v = verdict(NYU24, "nyu24-1.2.2c", "AttentionRNN(k) attends over k previous states.")
    assert v.verdict == "unchecked"


@pytest.mark.parametrize("latex, first", [
    (r"W^T x", "Bin"), (r"p_i", "Name"), (r"a^{(i)<t>}", "Name"), (r"x \odot y", "Bin"),
    (r"\operatorname{softmax}(z)_i", "Call"), (r"\begin{bmatrix} 1 & 2 \end{bmatrix}", "Group"),
    (r"\lfloor x/2 \rfloor", "Delim"), (r"1{,}000", "Num"), ("σ(z) ⊙ h", "Bin"),
])
def test_reader_reads_course_notation(latex, first):
    parts = read(latex)
    assert type(parts[0].items[0]).__name__ == first


def test_reader_limits():
    with pytest.raises(ReadError, match="nested deeper"):
        read("{" * 200 + "x" + "}" * 200)
    with pytest.raises(ReadError, match="characters long"):
        read("x+" * 7000)
    with pytest.raises(ReadError, match="digits"):
        read("1" * 100)
    v = verdict(NYU24, "nyu24-1.3d", r"10^{10^{10}}")
    assert v.verdict == "unparseable" and "exponent" in v.evidence
    v = verdict(NYU24, "nyu24-1.3d", r"999^{999}")
    assert v.verdict == "unparseable" and "digits" in v.evidence


def test_problem_check_from_python():
    problem = load_problem(NYU21)
    report = problem.check({"nyu21-1.1a": r"\mathbb{R}^{4 \times 5}",
                            "nyu21-1.1c-iv": r"\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j=1}^{2} g_{p,j} "
                                             r"x_{q,j+r-1}"}, timeout=20)
    assert report["nyu21-1.1a"].verdict == "correct"
    assert report["nyu21-1.1c-iv"].verdict == "incorrect"
    assert report["nyu21-1.1b"].verdict == "missing"
    assert not report.ok
    assert "| nyu21-1.1a | correct | shape |" in report._repr_markdown_()
    assert report["nyu21-1.1a"]._repr_markdown_().startswith("✅")
    typo = problem.check({"nyu21-1.1a": r"\mathbb{R}^{4 \times 5}", "nyu21-1.1z": "1"}, timeout=20, isolate=False)
    assert typo["nyu21-1.1a"].verdict == "correct"          # the rest of the submission is graded
    assert typo["nyu21-1.1z"].verdict == "unknown name" and typo["nyu21-1.1z"].decided_by == "question id"
    assert "no question “nyu21-1.1z”" in typo["nyu21-1.1z"].evidence and "nyu21-1.1a" in \
        typo["nyu21-1.1z"].evidence
    assert not typo.ok
