"""Grading real students' answers (issue 14): the quantity the question asks, working, rounding.

Expected values are computed here by hand, not taken from the engine: a 3×3 convolution from 3 to
10 channels has 3·3·3·10 = 270 weights and 10 biases (280); the CSCE 636 residual block has two
3×3 convolutions 32 → 32: 2·(9·32·32 + 32) = 18496 with biases, 18432 without.
"""
import math

import pytest

from symderive.checking.compare import number_agrees
from symderive.checking.tolerance import Tolerance
from tests.test_check import CQ, CSCE, HW5, NYU21, NYU24, PROBLEMS, verdict

import sympy as sp


# 1. A number is the quantity the question asks ------------------------------------------------
@pytest.mark.parametrize("latex", ["270", r"\text{conv} = 270", r"3 \times 3 \times 3 \times 10 = 270"])
def test_the_count_without_biases_is_not_the_total(latex):
    v = verdict(HW5, "hw5-p2a", latex)
    assert v.verdict == "incorrect", (latex, v.evidence)
    assert "without bias" in v.evidence and "280" in v.evidence


@pytest.mark.parametrize("latex", [r"\text{without bias} = 270", r"\text{conv without biases} = 270",
                                   r"\text{total} = 280", "280", r"(280, 270)"])
def test_a_labelled_part_is_compared_with_that_part(latex):
    v = verdict(HW5, "hw5-p2a", latex)
    assert v.verdict == "correct", (latex, v.evidence)


def test_a_label_does_not_excuse_a_wrong_number():
    v = verdict(HW5, "hw5-p2a", r"\text{without bias} = 280")
    assert v.verdict == "incorrect" and "with bias" in v.evidence, v.evidence


def test_two_numbers_are_the_two_counts_in_order():
    assert verdict(CSCE, "csce636-q3a", "18496, 18432").verdict == "correct"
    v = verdict(CSCE, "csce636-q3a", "18432, 18496")
    assert v.verdict == "incorrect", v.evidence


def test_a_count_close_to_the_total_is_not_accepted():
    # 18432 is within 0.4% of 18496, but a count is exact.
    v = verdict(CSCE, "csce636-q3a", "18432")
    assert v.verdict == "incorrect" and "without bias" in v.evidence, v.evidence


# 2. Working ------------------------------------------------------------------------------------
def test_times_in_arithmetic_is_a_product_not_a_dimension():
    v = verdict(CSCE, "csce636-q3a", r"2 \times (3 \cdot 3 \cdot 32 \cdot 32 + 32) = 18496")
    assert v.verdict == "correct" and not v.flags, (v.verdict, v.evidence)


def test_a_sum_of_layer_counts_is_checked_against_the_total():
    terms = [5 * 5 * 3 * 32 + 32, 3 * 3 * 32 * 48 + 48, 3 * 3 * 48 * 64 + 64, 4 * 4 * 64 * 384 + 384,
             384 * 192 + 192, 192 * 10 + 10]
    total = sum(terms)
    assert total == 513466
    v = verdict(CQ, "cq-3.3", " + ".join(map(str, terms)) + f" = {total}")
    assert v.verdict == "correct" and not v.flags, v.evidence


def test_wrong_working_with_a_right_final_value_is_flagged():
    v = verdict(HW5, "hw5-p2a", r"3 \cdot 3 \cdot 3 \cdot 10 = 280")          # the working gives 270
    assert v.verdict == "correct" and v.flags == ["wrong working"], (v.verdict, v.flags)
    assert "step 1" in v.evidence and "270" in v.evidence


def test_right_working_with_a_slip_in_the_last_step_is_incorrect():
    v = verdict(CQ, "cq-3.3", "2432 + 13872 + 27712 + 393600 + 73920 + 1930 = 513456")
    assert v.verdict == "incorrect" and "working before it is right" in v.evidence, v.evidence


def test_dots_in_working_are_noted_not_flagged():
    v = verdict(CQ, "cq-3.3", r"2432 + 13872 + \dots = 513466")
    assert v.verdict == "correct" and not v.flags and "not checked" in v.evidence, v.evidence


def test_a_dimension_is_still_a_dimension():
    assert verdict(HW5, "hw5-p2d", r"4 \times 4").decided_by == "shape"


# 3. Rounding -----------------------------------------------------------------------------------
def test_rounded_intermediate_steps_are_accepted_within_one_percent():
    # ∂e/∂W³ second entry is 3.2511; 3.24 is 0.34% off (carried from rounded steps).
    v = verdict(CSCE, "csce636-q2", r"\frac{\partial e}{\partial W^{(3)}} = \begin{bmatrix} -3.606 \\ 3.24 "
                                    r"\end{bmatrix}")
    assert v.verdict == "correct" and "within 1%" in v.evidence, v.evidence


@pytest.mark.parametrize("latex, rule", [("1.386", "precision written"), ("1.39", "precision written"),
                                         ("1.38", "within 1%"), (r"\ln 4", "symbolic")])
def test_the_rule_that_decided_is_reported(latex, rule):
    v = verdict(NYU24, "nyu24-1.3d", latex)
    assert v.verdict == "correct" and rule in v.decided_by, (v.decided_by, v.evidence)


@pytest.mark.parametrize("latex", ["1.37", "1.3", "1", "2", "1.41", "-1.386"])
def test_numbers_outside_both_rules_are_wrong(latex):
    # ln 4 = 1.38629...: 1.37 is 1.2% off; 1.41 claims ±0.005 and is 1.7% off; "1" has one digit.
    assert math.log(4) - 1.37 > 0.01 * math.log(4) and 1.41 - math.log(4) > 0.01 * math.log(4)
    v = verdict(NYU24, "nyu24-1.3d", latex)
    assert v.verdict == "incorrect", (latex, v.decided_by)


def test_number_agrees_rules():
    ok, _, rule = number_agrees(sp.Rational("3.24"), sp.Rational("3.2511"), None, None)
    assert ok and rule == "within 1%"
    ok, why, _ = number_agrees(sp.Integer(278), sp.Integer(280), None, None)
    assert not ok
    ok, _, rule = number_agrees(sp.Rational("1.3"), sp.log(4), None, Tolerance(absolute=sp.Rational(1, 10)))
    assert ok and "tolerance" in rule
    ok, _, _ = number_agrees(sp.Rational("1.38"), sp.log(4), None, Tolerance(absolute=sp.Rational(1, 1000)))
    assert not ok                      # a question's tolerance replaces the default, also when stricter


# 4. Unknown names are not unreadable LaTeX ----------------------------------------------------
def test_unknown_name_is_its_own_verdict_with_position_and_known_names():
    v = verdict(NYU24, "nyu24-1.3d", r"\ln 4 + q")
    assert v.verdict == "unknown name" and v.decided_by == "names", (v.verdict, v.evidence)
    assert v.position == r"\ln 4 + q".index("q") and "column 9" in v.evidence
    assert "the question knows: p, z" in v.evidence, v.evidence


@pytest.mark.parametrize("latex", [r"\ln 4 +", r"\frac{1}{", r"\foo 4", r"1 \cdot"])
def test_bad_latex_stays_unparseable(latex):
    v = verdict(NYU24, "nyu24-1.3d", latex)
    assert v.verdict == "unparseable" and "column" in v.evidence, (latex, v.verdict, v.evidence)


def test_intermediate_sizes_on_the_way_to_a_dimension_are_steps():
    latex = r"n = \lfloor \frac{10-3}{2} \rfloor + 1 = 4, m = \lfloor \frac{11-3}{2} \rfloor + 1 = 5, 4 \times 5"
    v = verdict(NYU21, "nyu21-1.1a", latex)
    assert v.verdict == "correct" and "not compared" in v.evidence, v.evidence
    # ... but the dimension itself must still be there and right.
    assert verdict(NYU21, "nyu21-1.1a", r"n = 4, m = 5").verdict == "unparseable"
    assert verdict(NYU21, "nyu21-1.1a", r"n = 4, m = 5, 4 \times 4").verdict == "incorrect"


# 5. Left sides and integer operators -------------------------------------------------------------
Q1_RIGHT = (r"\frac{2}{N}\sum_{n=1}^{N} (\tanh(\sum_k w_k X_{n,k}) - y_n)(1 - \tanh^2(\sum_k w_k X_{n,k})) "
            r"X_{n,p}")


@pytest.mark.parametrize("lhs", [r"\nabla_w E_{in} =", r"\nabla E(w) =", r"\nabla_w E_{in}(w) =", ""])
def test_gradient_left_sides(lhs):
    # E = (1/N) Σ (tanh(wᵀx_n) − y_n)², so ∂E/∂w_p = (2/N) Σ (tanh − y_n)(1 − tanh²) X_{n,p}.
    v = verdict(CSCE, "csce636-q1", f"{lhs} {Q1_RIGHT}")
    assert v.verdict == "correct", (lhs, v.verdict, v.evidence)
    v = verdict(CSCE, "csce636-q1", f"{lhs} {Q1_RIGHT.replace('{2}', '{1}')}")     # the factor 2 dropped
    assert v.verdict == "incorrect", (lhs, v.verdict, v.evidence)


@pytest.mark.parametrize("lhs, right", [
    (r"\frac{\partial l}{\partial W_x}[i][j] =", True), (r"\frac{\partial l}{\partial W_x}[i, j] =", True),
    (r"\frac{\partial l}{\partial W_x}[j][i] =", False)])     # indices swapped: the transpose
def test_bracketed_entries_of_a_derivative_name_its_indices(lhs, right):
    # h_t = c_t ⊙ h_{t−1} + (1 − c_t) ⊙ W_x x_t, so ∂l/∂W_x[i][j] = Σ_t (1 − c_t[i]) g_t[i] x_t[j].
    v = verdict(NYU21, "nyu21-1.2c", lhs + r" \sum_{t=1}^{K} (1 - c_t[i]) g_t[i] x_t[j]")
    assert v.verdict == ("correct" if right else "incorrect"), (v.verdict, v.evidence)


def test_bracketed_entries_of_a_five_axis_derivative():
    # ∂f_{a,b}/∂W_{p,q,r} = δ_{ap} x_{q, 2b+r−2} (stride 2, index base 1).
    v = verdict(NYU21, "nyu21-1.1c-ii",
                r"\frac{\partial f}{\partial W}[a][b][p][q][r] = \delta_{a,p} x_{q, 2b + r - 2}")
    assert v.verdict == "correct", v.evidence
    v = verdict(NYU21, "nyu21-1.1c-ii",
                r"\frac{\partial f}{\partial W}[a, b, p, q, r] = \delta_{a,p} x_{q, 2b + r - 1}")
    assert v.verdict == "incorrect", v.evidence


@pytest.mark.parametrize("latex", [r"(\lfloor 7/2 \rfloor + 1) \times (8 // 2 + 1)", r"(7 \bmod 3 + 3) \times 5",
                                   r"(9 \% 5) \times 5", r"(9 \mod 5) \times 5", r"(9 // 2) \times 5"])
def test_remainder_and_integer_division(latex):
    assert verdict(NYU21, "nyu21-1.1a", latex).verdict == "correct", latex


@pytest.mark.parametrize("latex, verdict_", [(r"(9 \% 0) \times 5", "unparseable"), (r"\bmod 3", "unparseable"),
                                             (r"(8 // ) \times 5", "unparseable"), (r"(9 \% 4) \times 5", "incorrect"),
                                             (r"(25\%) \times 5", "incorrect")])
def test_bad_remainders(latex, verdict_):
    v = verdict(NYU21, "nyu21-1.1a", latex)
    assert v.verdict == verdict_, (latex, v.verdict, v.evidence)


# 6. Answering part by part -------------------------------------------------------------------------
def _grade(path, answers):
    from symderive import load_problem
    from symderive.checking.grade import grade
    return grade(load_problem(path), {"s": answers}, 20, 1, isolate=False)["s"]


def test_parts_by_id_are_checked_against_that_part():
    # ∂e/∂W³ = x² δ³ = [-3.6062, 3.2511]; ∂e/∂W¹ = x⁰ (δ¹)ᵀ = [[-0.8571, 1.7012], [-1.7141, 3.4025]] (NumPy).
    report = _grade(CSCE, {"csce636-q2:dW3": r"\begin{bmatrix} -3.606 \\ 3.251 \end{bmatrix}",
                           "csce636-q2:de/dW1": r"\begin{bmatrix} -0.857 & 1.701 \\ -1.714 & 3.402 \end{bmatrix}"})
    v = report["csce636-q2"]
    assert v.verdict == "correct" and "dW3: correct" in v.evidence and "de/dW1: correct" in v.evidence, v.evidence


def test_a_wrong_part_makes_the_question_incorrect_and_says_which():
    report = _grade(CSCE, {"csce636-q2:dW3": r"\begin{bmatrix} -3.606 \\ 3.606 \end{bmatrix}",
                           "csce636-q2:dW1": r"\begin{bmatrix} -0.857 & 1.701 \\ -1.714 & 3.402 \end{bmatrix}"})
    v = report["csce636-q2"]
    assert v.verdict == "incorrect" and "dW3: incorrect" in v.evidence and "dW1: correct" in v.evidence


def test_an_unknown_part_is_a_verdict_on_that_answer_not_a_rejected_file():
    report = _grade(CQ, {"cq-3.5:W'": r"\begin{bmatrix} 0.9914 & -0.008621 \\ 0 & -1 \end{bmatrix}",
                         "cq-3.5:V'": "1", "cq-3.3": "513466"})
    v = report["cq-3.5"]
    assert v.verdict == "unknown name", v.evidence
    assert "no part “V'”" in v.evidence and "its parts: W', B'" in v.evidence, v.evidence
    assert "W': correct" in v.evidence
    assert report["cq-3.3"].verdict == "correct"


def test_a_part_answer_for_an_unknown_question_is_an_unknown_name_verdict(tmp_path):
    from symderive import load_problem
    from symderive.checking.grade import unknown_ids, unknown_question
    problem = load_problem(CSCE)
    assert unknown_ids(problem, {"csce636-q2:dW1": "1", "csce636-q9:dW1": "1"}) == ["csce636-q9:dW1"]
    v = unknown_question(problem, "csce636-q9:dW1", "1")
    assert v.verdict == "unknown name" and v.question == "csce636-q9:dW1", v
    assert "did you mean" in v.evidence and "csce636-q" in v.evidence, v.evidence


# 8. Output for autograders; identical answers checked once ---------------------------------------
def test_gradescope_and_prairielearn_results(tmp_path):
    import json
    import subprocess
    import sys
    problem = tmp_path / "p.yaml"
    problem.write_text(HW5.read_text().replace("  - id: hw5-p2a\n", "  - id: hw5-p2a\n    points: 3\n"))
    answers = tmp_path / "ann.yaml"
    answers.write_text("hw5-p2a: '280'\nhw5-p2d: '3 \\times 3'\n")
    run = subprocess.run([sys.executable, "-m", "symderive", "check", str(problem), str(answers), "--gradescope",
                          str(tmp_path / "gs.json"), "--prairielearn", str(tmp_path / "pl.json")],
                         capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    gs = json.loads((tmp_path / "gs.json").read_text())
    tests = {t["name"]: t for t in gs["tests"]}
    assert tests["hw5-p2a"]["score"] == 3 and tests["hw5-p2a"]["max_score"] == 3
    assert tests["hw5-p2d"]["score"] == 0 and tests["hw5-p2d"]["status"] == "failed"
    assert "axis" in tests["hw5-p2d"]["output"] and gs["score"] == 3
    assert all(t["visibility"] == "visible" for t in gs["tests"])
    pl = json.loads((tmp_path / "pl.json").read_text())
    total = 3 + (len(pl["tests"]) - 1)                    # every other question is worth 1
    assert pl["gradable"] is True and abs(pl["score"] - 3 / total) < 1e-12


@pytest.mark.parametrize("points", ["-1", "many", "true"])
def test_bad_points_make_the_problem_unusable(tmp_path, points):
    import subprocess
    import sys
    problem = tmp_path / "p.yaml"
    problem.write_text(HW5.read_text().replace("  - id: hw5-p2a\n", f"  - id: hw5-p2a\n    points: {points}\n"))
    answers = tmp_path / "ann.yaml"
    answers.write_text("hw5-p2a: '280'\n")
    run = subprocess.run([sys.executable, "-m", "symderive", "check", str(problem), str(answers)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "points" in run.stderr and "hw5-p2a" in run.stderr, run.stderr


def test_identical_answers_are_checked_once_and_reported_for_each(monkeypatch):
    from symderive import load_problem
    from symderive.checking import grade as g
    calls = []
    real = g.check_one

    def counting(info, latex, timeout, *args, **kw):
        calls.append(latex)
        return real(info, latex, timeout, *args, **kw)

    monkeypatch.setattr(g, "check_one", counting)
    subs = {"a": {"hw5-p2a": "280"}, "b": {"hw5-p2a": " 280 "}, "c": {"hw5-p2a": "270"}}
    reports = g.grade(load_problem(HW5), subs, 20, 1, isolate=False)
    assert sorted(calls) == ["270", "280"]
    assert reports["a"]["hw5-p2a"].verdict == reports["b"]["hw5-p2a"].verdict == "correct"
    assert reports["b"]["hw5-p2a"].answer == " 280 " and reports["c"]["hw5-p2a"].verdict == "incorrect"


# 7. What the sheets write: notes, \substack, \cong, a leading \approx ----------------------------------
@pytest.mark.parametrize("latex, expected", [
    (r"\text{conv}:\ 280\ \text{with bias},\ 270\ \text{without bias}", "correct"),
    (r"\text{conv}:\ 270\ \text{with bias},\ 280\ \text{without bias}", "incorrect"),   # swapped
    (r"280\ \text{without bias}", "incorrect"),              # the note says which count: 270
    (r"280\ \text{parameters}", "correct"),                  # a note that names no count changes nothing
    (r"270\ \text{parameters}", "incorrect"),
])
def test_prose_notes_after_a_number(latex, expected):
    v = verdict(HW5, "hw5-p2a", latex)
    assert v.verdict == expected, (latex, v.verdict, v.evidence)


def test_a_parenthesised_note_is_not_a_factor():
    assert verdict(HW5, "hw5-p1a", r"\text{vanishing}\ (|d| < 1)").verdict == "correct"
    assert verdict(HW5, "hw5-p1a", r"\text{exploding}\ (|d| > 1)").verdict == "incorrect"
    assert verdict(CSCE, "csce636-q4a", r"\mu \in \mathbb{R}^{C}\ (\text{kept as } 1 \times C)").verdict == "correct"
    assert verdict(CSCE, "csce636-q4a", r"\mu \in \mathbb{R}^{N}\ (\text{kept as } 1 \times N)").verdict == "incorrect"


def test_substack_sum_limits():
    # f_{1,j} = Σ_{k=1}^{3} Σ_{c=1}^{2} W_{1,c,k} x_{c,2j+k-2}
    right = r"f_{i,j} = \sum_{\substack{1 \leq k \leq 3\\1 \leq c \leq 2}} W_{i,c,k} x_{c,2 j + k - 2}"
    assert verdict(NYU21, "nyu21-1.1c-i", right).verdict == "correct"
    v = verdict(NYU21, "nyu21-1.1c-i", right.replace("k \\leq 3", "k \\leq 2"))        # a kernel tap left out
    assert v.verdict == "incorrect", v.evidence
    v = verdict(NYU21, "nyu21-1.1c-i", r"f_{i,j} = \sum_{\substack{k = 1\\c = 1}} W_{i,c,k} x_{c,2j+k-2}")
    assert v.verdict == "unparseable" and "substack" in v.evidence, v.evidence
    v = verdict(NYU21, "nyu21-1.1c-i", r"f_{i,j} = \sum_{\substack{1 \le k \le 3} W_{i,c,k}")
    assert v.verdict == "unparseable", v.evidence


def test_cong_and_a_leading_approx():
    assert verdict(NYU21, "nyu21-1.1c-ii", r"\frac{\partial f}{\partial W} \in \mathbb{R}^{1 \times 2 \times 1 "
                                           r"\times 2 \times 3} \;\cong\; \mathbb{R}^{2 \times 6}").verdict == "correct"
    assert verdict(NYU24, "nyu24-1.3d", r"\approx 1.386").verdict == "correct"
    assert verdict(NYU24, "nyu24-1.3d", r"\approx 1.486").verdict == "incorrect"
    assert verdict(NYU24, "nyu24-1.3d", r"\approx").verdict == "unparseable"


def test_primed_summation_indices():
    # ∂l/∂W_{p,q,r} = Σ_j g_{p,j} x_{q,2j+r-2}, with the summation index written j'.
    v = verdict(NYU21, "nyu21-1.1c-iv",
                r"\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j'=1}^{2} g_{p,j'} x_{q,2j'+r-2}")
    assert v.verdict == "correct", v.evidence
    v = verdict(NYU21, "nyu21-1.1c-iv",
                r"\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j'=1}^{2} g_{p,j'} x_{q,2j+r-2}")
    assert v.verdict != "correct", v.evidence            # j (unprimed) is not the summation index


def test_folder_results_keep_submissions_that_differ_only_by_extension(tmp_path):
    import json
    import subprocess
    import sys
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "bob.yaml").write_text("hw5-p2a: '280'\n")
    (folder / "bob.tex").write_text(r"\answer{hw5-p2a}{$270$}")
    out = tmp_path / "gradescope"
    run = subprocess.run([sys.executable, "-m", "symderive", "check", str(HW5), str(folder), "--gradescope", str(out),
                          "--report", str(tmp_path / "r.csv")], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    scores = {p.name: json.loads(p.read_text())["score"] for p in out.iterdir()}
    assert scores == {"bob.yaml.json": 1, "bob.tex.json": 0}
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert sum(r.startswith("bob.yaml,hw5-p2a,correct") for r in rows) == 1
    assert sum(r.startswith("bob.tex,hw5-p2a,incorrect") for r in rows) == 1


# Dimensions: a written 1 adds no entries; a number is a vector's dimension -----------------------------
TRANSPOSED = PROBLEMS / "normalization-and-transposed-conv.yaml"


@pytest.mark.parametrize("qid, latex, expected", [
    # D2L 14.10: (2 - 1)·2 + 2 = 4 on each side of one channel, 1 × 4 × 4; the stride-1 size 3 is wrong
    ("d2l-transposed-stride-2", r"4 \times 4", "correct"),
    ("d2l-transposed-stride-2", r"1 \times 4 \times 4", "correct"),
    ("d2l-transposed-stride-2", r"3 \times 3", "incorrect"),
    ("d2l-transposed-stride-2", r"4 \times 4 \times 4", "incorrect"),
    ("d2l-transposed-stride-2", r"4", "incorrect"),
    # Dumoulin and Visin: 2·(3 - 1) + 3 - 2 + 1 = 6
    ("dumoulin-odd-output", r"6 \times 6", "correct"),
    ("dumoulin-odd-output", r"5 \times 5", "incorrect"),
])
def test_axes_of_size_one_may_be_left_out(qid, latex, expected):
    v = verdict(TRANSPOSED, qid, latex)
    assert v.verdict == expected, (latex, v.evidence)


@pytest.mark.parametrize("latex, expected", [("3", "correct"), ("2", "incorrect"), ("4", "incorrect"),
                                             (r"\mathbb{R}^{3}", "correct")])
def test_a_number_is_the_dimension_of_a_vector(latex, expected):
    # NYU 2024 hw2 1.2.2b: AttentionRNN(2) weighs q_0, q_1, q_2, so a[t] has k + 1 = 3 entries
    v = verdict(NYU24, "nyu24-1.2.2b", latex)
    assert v.verdict == expected, (latex, v.evidence)


def test_a_number_for_a_matrix_dimension_is_still_wrong():
    v = verdict(NYU21, "nyu21-1.1a", "20")      # 4 × 5 has 20 entries, but the question asks for its shape
    assert v.verdict == "incorrect", v.evidence


# Entrywise functions of a vector: the derivative by its diagonal, e^x, x σ(x), a division ---------------------
LAYERS = PROBLEMS / "coursework-layers.yaml"


@pytest.mark.parametrize("qid, latex, expected", [
    # Goodfellow 3.10: ζ'(x) = σ(x) = e^x / (1 + e^x); (log σ)'(x) = 1 − σ(x); the question's x has 3 entries
    ("goodfellow-softplus", r"\frac{e^x}{1 + e^x}", "correct"),
    ("goodfellow-softplus", r"e^x / (1 + e^x)", "correct"),
    ("goodfellow-softplus", r"\frac{1}{1 + e^{-x}}", "correct"),
    ("goodfellow-softplus", r"\frac{e^x}{1 - e^x}", "incorrect"),
    ("goodfellow-softplus", r"\frac{1}{1 + e^{x}}", "incorrect"),
    ("goodfellow-log-sigmoid", r"1 - \sigma(x)", "correct"),
    ("goodfellow-log-sigmoid", r"\sigma(x)(1 - \sigma(x))", "incorrect"),
    ("goodfellow-log-sigmoid", r"\sigma(-x)", "correct"),
    # D2L 5.1: SiLU' = σ(x) + x σ(x)(1 − σ(x)); the product rule's first term alone is wrong
    ("swish-derivative", r"\sigma(x) + x \sigma(x)(1 - \sigma(x))", "correct"),
    ("swish-derivative", r"x \sigma(x)(1 - \sigma(x))", "incorrect"),
    ("swish-derivative", r"\sigma(x) + x^T \sigma(x)(1 - \sigma(x))", "incorrect"),   # an inner product
])
def test_an_entrywise_derivative_written_as_its_diagonal(qid, latex, expected):
    v = verdict(LAYERS, qid, latex)
    assert v.verdict == expected, (latex, v.evidence)


def test_a_vector_is_not_the_diagonal_of_a_jacobian_that_has_entries_off_it():
    # CS224n: ∂h⁽ᵗ⁾/∂h⁽ᵗ⁻¹⁾ = diag(1 − h⁽ᵗ⁾²) W_h is not diagonal: the vector 1 − h⁽ᵗ⁾² alone is wrong
    rnn = PROBLEMS / "recurrent-and-attention.yaml"
    assert verdict(rnn, "cs224n-rnn-jacobian", r"\mathrm{diag}(1 - (h^{(t)})^2) W_h").verdict == "correct"
    v = verdict(rnn, "cs224n-rnn-jacobian", r"1 - (h^{(t)})^2")
    assert v.verdict == "incorrect", v.evidence


def test_a_division_by_a_matrix_is_still_refused():
    v = verdict(PROBLEMS / "matrix-calculus.yaml", "cookbook-trace-AX", r"\frac{1}{X}")
    assert v.verdict in ("incorrect", "unparseable") and "division by a matrix" in v.evidence, v.evidence


@pytest.mark.parametrize("path, qid, latex, expected", [
    # NYU hw3 1.2b / hw2 1.2.1b: c[t] = σ(W_c x[t] + W_h h[t−1]) has the m entries of h[t]; n is x[t]'s size
    (NYU21, "nyu21-1.2b", "m", "correct"),
    (NYU21, "nyu21-1.2b", "n", "incorrect"),
    (NYU24, "nyu24-1.2.1b", "m", "correct"),
    (NYU24, "nyu24-1.2.1b", r"\mathbb{R}^{m}", "correct"),
    (NYU24, "nyu24-1.2.1b", r"m \times n", "incorrect"),
])
def test_a_size_alone_is_a_vectors_dimension(path, qid, latex, expected):
    v = verdict(path, qid, latex)
    assert v.verdict == expected, (latex, v.evidence)


MATRIX_CALCULUS, MASKS = PROBLEMS / "matrix-calculus.yaml", PROBLEMS / "masks-and-stop-gradients.yaml"


@pytest.mark.parametrize("path, qid, latex, expected", [
    # Matrix Cookbook 2.4.1: ∂(aᵀXb)/∂X = abᵀ (the shape of X); baᵀ is its transpose. A left side may
    # differentiate a product written out after ∂.
    (MATRIX_CALCULUS, "cookbook-aXb", r"\frac{\partial a^T X b}{\partial X} = a b^T", "correct"),
    (MATRIX_CALCULUS, "cookbook-aXb", r"\frac{\partial a^T X b}{\partial X} = b a^T", "incorrect"),
    (MATRIX_CALCULUS, "cookbook-aXb", r"\frac{\partial (a^T X b)}{\partial X} = a b^T", "correct"),
    (MATRIX_CALCULUS, "cookbook-aXb", r"\frac{\partial a^T X b}{\partial X}", "unparseable"),
    # CS231n a2 relu_backward: dx = dout * (x > 0), a comparison in parentheses is a mask; the other way is wrong
    (MASKS, "cs231n-relu-backward", r"\frac{\partial l}{\partial z} = g \odot (z > 0)", "correct"),
    (MASKS, "cs231n-relu-backward", r"g \odot (z < 0)", "incorrect"),
    (MASKS, "cs231n-relu-backward", r"(z > 0)", "incorrect"),
    (MASKS, "cs231n-relu-backward", r"g \odot (z = 0)", "unparseable"),
])
def test_course_notation_on_left_and_right_sides(path, qid, latex, expected):
    v = verdict(path, qid, latex)
    assert v.verdict == expected, (latex, v.evidence)
