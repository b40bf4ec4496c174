"""The prove ask: proved, verified at sizes, numerically checked or failed, never more than was done.

Every claim used here is checked independently of the engine: derivatives with torch autograd,
values with NumPy, both written in this file. A reported counterexample is parsed from the
answer's detail and re-evaluated here, so a FAILED claim must be false at the very point the
engine prints (and that point must satisfy the declared constraints).

Proof timing is not asserted (benchmarks/ covers speed).
"""
import re
from pathlib import Path

import numpy as np
import pytest

from symderive.answer import Status
from symderive.problem import load_problem
from helpers import NO_PDF, parse_counterexample, rng_for, run_cli  # noqa: E402

torch = pytest.importorskip("torch")

HEADER = """\
title: prove
index_base: 1
sizes: [N]
tensors: {z: [N], p: [N], c: []}
layers:
  q: softmax(z)
  E: -Sum(p[i] * log(q[i]), (i, 1, N))
questions:
"""

CQ_34 = """\
  - id: cq-3.4
    ask: prove
    lhs: diff(E, z[x])
    rhs: q[x] - p[x]
    constraints: ["Sum(p[i], (i, 1, N)) == 1"]
    check_sizes: [2, 3, 4]
"""


def write(directory, text, name="claims.yaml"):
    path = Path(directory) / name
    path.write_text(text)
    return path


def solve_one(tmp_path, question, name="claims.yaml"):
    """Solve a single question appended to HEADER; the one answer."""
    problem = load_problem(write(tmp_path, HEADER + question, name))
    answers = problem.solve()
    assert len(answers) == 1
    return answers[0]


def question(qid, lhs, rhs, *extra):
    lines = [f"  - id: {qid}", "    ask: prove", f"    lhs: {lhs}", f"    rhs: {rhs}"]
    return "\n".join(lines + [f"    {e}" for e in extra]) + "\n"


# ---------------------------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------------------------
def softmax(z):
    e = np.exp(np.asarray(z, dtype=float) - np.max(z))
    return e / e.sum()


def sigmoid(c):
    return 1.0 / (1.0 + np.exp(-c))


def grad_cross_entropy(z, p):
    """∂E/∂z for E = −Σ p log softmax(z), by torch autograd (p need not sum to 1)."""
    zt = torch.tensor(np.asarray(z, dtype=float), requires_grad=True)
    pt = torch.tensor(np.asarray(p, dtype=float))
    energy = -(pt * torch.log_softmax(zt, dim=0)).sum()
    (grad,) = torch.autograd.grad(energy, zt)
    return grad.numpy()


def scalar_derivative(function, c):
    ct = torch.tensor(float(c), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(function(ct), ct)
    return float(grad)


# ---------------------------------------------------------------------------------------------
# Counterexamples (parsed by helpers.parse_counterexample)
# ---------------------------------------------------------------------------------------------
def vector(point, name, size):
    """Entries name[1..size] (1-based, as printed) of a counterexample, all of which must be given."""
    missing = [k for k in range(1, size + 1) if f"{name}[{k}]" not in point]
    assert not missing, f"counterexample lacks {name}{missing}: {point}"
    extra = [k for k in point if k.startswith(f"{name}[") and int(k[len(name) + 1:-1]) > size]
    assert not extra, f"counterexample has entries beyond N = {size}: {extra}"
    return [point[f"{name}[{k}]"] for k in range(1, size + 1)]


def assert_real_counterexample(ours_lhs, ours_rhs, reported_lhs, reported_rhs):
    """lhs ≠ rhs at the point by our own evaluation, and the engine printed those values."""
    assert abs(ours_lhs - ours_rhs) > 1e-6 * max(1.0, abs(ours_lhs), abs(ours_rhs)), \
        f"not a counterexample: lhs = {ours_lhs}, rhs = {ours_rhs}"
    assert reported_lhs == pytest.approx(ours_lhs, rel=1e-6, abs=1e-9)
    assert reported_rhs == pytest.approx(ours_rhs, rel=1e-6, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# 1. cq-3.4: ∂E/∂z_x = q_x − p_x given Σp = 1
# ---------------------------------------------------------------------------------------------
def test_cq34_is_proved_with_constraint_and_fold_steps(tmp_path):
    answer = solve_one(tmp_path, CQ_34)
    assert answer.status is Status.PROVED, (answer.detail, answer.error)
    whys = [step.why for step in answer.steps]
    assert any("constraint" in why for why in whys), whys
    assert any("recognise" in why for why in whys), whys
    # The constraint is used before the softmax is recognised as q.
    first = lambda word: next(n for n, why in enumerate(whys) if word in why)  # noqa: E731
    assert first("constraint") < first("recognise")
    assert "N" in answer.detail and not answer.error


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6])
def test_cq34_claim_holds_by_autograd(size):
    rng = rng_for(f"cq34-{size}")
    for _ in range(3):
        z = rng.normal(size=size) * 2
        p = rng.uniform(0.05, 1.0, size=size)
        p /= p.sum()
        np.testing.assert_allclose(grad_cross_entropy(z, p), softmax(z) - p, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# 2. False identities fail with a real counterexample; true ones are proved
# ---------------------------------------------------------------------------------------------
def test_wrong_sign_fails_with_real_counterexample(tmp_path):
    answer = solve_one(tmp_path, question("wrong-sign", "diff(E, z[x])", "p[x] - q[x]",
                                          'constraints: ["Sum(p[i], (i, 1, N)) == 1"]'))
    assert answer.status is Status.FAILED
    point, lhs, rhs = parse_counterexample(answer.detail)
    size, x = int(point["N"]), int(point["x"])
    assert 1 <= x <= size
    z, p = vector(point, "z", size), vector(point, "p", size)
    assert sum(p) == 1, f"the counterexample violates the constraint Σp = 1: p = {p}"
    ours_lhs = grad_cross_entropy([float(v) for v in z], [float(v) for v in p])[x - 1]
    ours_rhs = float(p[x - 1]) - softmax([float(v) for v in z])[x - 1]
    assert_real_counterexample(ours_lhs, ours_rhs, lhs, rhs)


def test_cq34_without_constraint_fails_with_real_counterexample(tmp_path):
    answer = solve_one(tmp_path, question("no-constraint", "diff(E, z[x])", "q[x] - p[x]"))
    assert answer.status is Status.FAILED
    point, lhs, rhs = parse_counterexample(answer.detail)
    size, x = int(point["N"]), int(point["x"])
    z = [float(v) for v in vector(point, "z", size)]
    p = vector(point, "p", size)
    assert sum(p) != 1      # with Σp = 1 the claim holds (test above), so this is where it breaks
    ours_lhs = grad_cross_entropy(z, [float(v) for v in p])[x - 1]
    ours_rhs = softmax(z)[x - 1] - float(p[x - 1])
    assert_real_counterexample(ours_lhs, ours_rhs, lhs, rhs)


def test_seed_sigmoid_derivative_with_wrong_sign_fails(tmp_path):
    # The seed's f'(c) = −f(c)(1 − f(c)) for f = sigmoid: false everywhere.
    answer = solve_one(tmp_path, question("sigmoid-wrong", "diff(sigmoid(c), c)",
                                          "-sigmoid(c) * (1 - sigmoid(c))"))
    assert answer.status is Status.FAILED
    point, lhs, rhs = parse_counterexample(answer.detail)
    c = float(point["c"])
    ours_lhs = scalar_derivative(torch.sigmoid, c)
    ours_rhs = -sigmoid(c) * (1 - sigmoid(c))
    assert_real_counterexample(ours_lhs, ours_rhs, lhs, rhs)


@pytest.mark.parametrize("lhs, rhs, function, closed_form", [
    ("diff(sigmoid(c), c)", "sigmoid(c) * (1 - sigmoid(c))", torch.sigmoid,
     lambda c: sigmoid(c) * (1 - sigmoid(c))),
    ("diff(tanh(c), c)", "1 - tanh(c)**2", torch.tanh, lambda c: 1 - np.tanh(c) ** 2),
], ids=["sigmoid", "tanh"])
def test_true_scalar_derivatives_are_proved(tmp_path, lhs, rhs, function, closed_form):
    for c in rng_for(lhs).normal(size=5) * 3:
        assert scalar_derivative(function, c) == pytest.approx(closed_form(c), rel=1e-12, abs=1e-14)
    answer = solve_one(tmp_path, question("true-derivative", lhs, rhs))
    assert answer.status is Status.PROVED, (answer.detail, answer.error)


# ---------------------------------------------------------------------------------------------
# 3. True only at some sizes; true but beyond the pipeline
# ---------------------------------------------------------------------------------------------
# softmax of two logits is the sigmoid of their difference: q_1 = σ(z_1 − z_2) holds for N = 2 only.
TWO_CLASS = ("q[1]", "sigmoid(z[1] - z[2])")
# Σ_i z_i = z_1 + z_2 holds for N = 2 only (tensors used directly, no layer in the claim).
TWO_TERMS = ("Sum(z[i], (i, 1, N))", "z[1] + z[2]")


def test_two_class_softmax_claim_fails_at_three(tmp_path):
    z2 = rng_for("two-class").normal(size=2)
    assert softmax(z2)[0] == pytest.approx(sigmoid(z2[0] - z2[1]), rel=1e-12)     # true at N = 2
    answer = solve_one(tmp_path, question("two-class", *TWO_CLASS))
    assert answer.status is Status.FAILED
    point, lhs, rhs = parse_counterexample(answer.detail)
    assert point["N"] == 3, "the claim holds at N = 2: the first counterexample is at N = 3"
    z = [float(v) for v in vector(point, "z", 3)]
    assert_real_counterexample(softmax(z)[0], sigmoid(z[0] - z[1]), lhs, rhs)


def test_sum_of_first_two_entries_fails_at_three(tmp_path):
    answer = solve_one(tmp_path, question("two-terms", *TWO_TERMS))
    assert answer.status is Status.FAILED
    point, lhs, rhs = parse_counterexample(answer.detail)
    assert point.get("N") == 3, f"the size of the counterexample is not reported: {answer.detail}"
    z = [float(v) for v in vector(point, "z", 3)]
    assert_real_counterexample(sum(z), z[0] + z[1], lhs, rhs)


def test_claim_checked_only_where_it_holds_is_not_proved(tmp_path):
    answer = solve_one(tmp_path, question("two-class-at-2", *TWO_CLASS, "check_sizes: [2]"))
    assert answer.status in (Status.VERIFIED, Status.NUMERIC), (answer.status, answer.detail)
    assert "N = 2" in answer.detail


def test_empty_check_sizes_never_verifies_a_false_claim(tmp_path):
    # Nothing was checked, so "verified at sizes" would claim more than was done.
    answer = solve_one(tmp_path, question("no-sizes", *TWO_TERMS, "check_sizes: []"))
    assert answer.status is Status.FAILED, (answer.status, answer.detail)


def test_variance_identity_is_verified_not_proved(tmp_path):
    # Σ_i (z_i − z̄)² = Σ_i z_i² − (Σ_j z_j)²/N with z̄ = Σ_j z_j / N: expand the square,
    # Σ_i z_i² − 2 z̄ Σ_i z_i + N z̄² = Σ z² − 2 S²/N + S²/N. True for every N, but the pipeline
    # never expands a power of a sum (no multinomial step), so it cannot close the proof.
    lhs = "Sum((z[i] - Sum(z[j], (j, 1, N)) / N)**2, (i, 1, N))"
    rhs = "Sum(z[i]**2, (i, 1, N)) - Sum(z[j], (j, 1, N))**2 / N"
    rng = rng_for("variance")
    for size in range(2, 8):
        z = rng.normal(size=size)
        assert ((z - z.mean()) ** 2).sum() == pytest.approx((z ** 2).sum() - z.sum() ** 2 / size, rel=1e-12)
    answer = solve_one(tmp_path, question("variance", lhs, rhs))
    assert answer.status in (Status.VERIFIED, Status.NUMERIC), (answer.status, answer.detail)
    assert "not a proof" in answer.detail


def test_tanh_as_sigmoid_is_proved_in_exponentials(tmp_path):
    # tanh c = (e^c − e^−c)/(e^c + e^−c) = (1 − e^−2c)/(1 + e^−2c) = 2/(1 + e^−2c) − 1 = 2σ(2c) − 1.
    # The proof writes σ and tanh in exponentials and lets SymPy simplify; the step says so.
    c = rng_for("tanh-sigmoid").normal(size=7) * 3
    np.testing.assert_allclose(np.tanh(c), 2 * sigmoid(2 * c) - 1, rtol=1e-12, atol=1e-14)
    answer = solve_one(tmp_path, question("tanh-sigmoid", "tanh(c)", "2*sigmoid(2*c) - 1"))
    assert answer.status is Status.PROVED, (answer.status, answer.detail)
    assert any("exponentials" in step.why for step in answer.steps)


# ---------------------------------------------------------------------------------------------
# 5. Bad input
# ---------------------------------------------------------------------------------------------
BAD = HEADER + CQ_34 + """\
  - id: undeclared
    ask: prove
    lhs: diff(E, zz[x])
    rhs: q[x] - p[x]
  - id: undeclared-term
    ask: prove
    lhs: diff(E, z[x]) + foo
    rhs: q[x] - p[x]
  - id: not-an-equation
    ask: prove
    lhs: diff(E, z[x])
    rhs: q[x] - p[x]
    constraints: ["Sum(p[i], (i, 1, N))"]
  - id: size-too-large
    ask: prove
    lhs: diff(E, z[x])
    rhs: q[x] - p[x]
    check_sizes: [2, 9]
  - id: size-zero
    ask: prove
    lhs: diff(E, z[x])
    rhs: q[x] - p[x]
    check_sizes: [0, 2]
  - id: size-not-a-list
    ask: prove
    lhs: diff(E, z[x])
    rhs: q[x] - p[x]
    check_sizes: 3
  - id: size-bool
    ask: prove
    lhs: diff(E, z[x])
    rhs: q[x] - p[x]
    check_sizes: [true]
"""

BAD_CHECK_SIZES = ["size-too-large", "size-zero", "size-not-a-list"]


def line_col(text, token, after):
    """1-based (line, column) of ``token``'s first occurrence after the text ``after``."""
    offset = text.index(token, text.index(after))
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def error_line(stderr, qid):
    lines = [line for line in stderr.splitlines() if f"question {qid}:" in line]
    assert len(lines) == 1, f"expected one error line for {qid}:\n{stderr}"
    return lines[0]


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-prove")
    write(folder, BAD, "bad.yaml")
    return run_cli(["solve", "bad.yaml", "-o", "out", *NO_PDF], folder)


def test_bad_input_exit_1_and_the_rest_still_solved(bad_run):
    assert bad_run.returncode == 1, bad_run.stderr
    assert "Traceback" not in bad_run.stderr + bad_run.stdout
    assert "question cq-3.4" not in bad_run.stderr
    assert "proved" in bad_run.stdout


@pytest.mark.parametrize("qid, token, message", [
    ("undeclared", "zz", r"'zz' is not (a )?declared"),
    ("undeclared-term", "foo", r"'foo' is not declared"),
    ("not-an-equation", "Sum(p[i]", r"equation"),
], ids=["undeclared-in-diff", "undeclared-term", "constraint-not-an-equation"])
def test_bad_expression_error_is_located(bad_run, qid, token, message):
    line = error_line(bad_run.stderr, qid)
    expected_line, column = line_col(BAD, token, f"id: {qid}\n")
    assert f"bad.yaml:{expected_line}:{column}:" in line, line
    assert re.search(message, line), line


@pytest.mark.parametrize("qid", BAD_CHECK_SIZES + ["size-bool"])
def test_bad_check_sizes_is_an_error(bad_run, qid):
    # YAML true is not a size (as index_base, which rejects booleans).
    line = error_line(bad_run.stderr, qid)
    assert "check_sizes" in line and "bad.yaml:" in line, line


def test_bad_check_sizes_error_points_at_check_sizes(bad_run):
    wrong = []
    for qid in BAD_CHECK_SIZES:
        line = error_line(bad_run.stderr, qid)
        expected_line, _ = line_col(BAD, "check_sizes", f"id: {qid}\n")
        if not re.search(rf"bad\.yaml:{expected_line}[:\s]", line):
            wrong.append(f"expected line {expected_line}: {line}")
    assert not wrong, "\n".join(wrong)


def test_bad_input_api_answers_failed(tmp_path):
    problem = load_problem(write(tmp_path, BAD, "bad.yaml"))
    answers = {a.question_id: a for a in problem.solve()}
    assert answers["cq-3.4"].status is Status.PROVED
    for qid in ["undeclared", "undeclared-term", "not-an-equation", *BAD_CHECK_SIZES]:
        assert answers[qid].status is Status.FAILED and answers[qid].error, qid
        assert not answers[qid].results, qid


# ---------------------------------------------------------------------------------------------
# 6. Proofs for all sizes and of scalar identities (issue 12); each claim checked here in NumPy
#    or torch at several sizes, independently of the engine.
# ---------------------------------------------------------------------------------------------
SHIFTS = """\
title: shifts
index_base: 1
sizes: [N]
tensors: {z: [N], c: [], x: []}
layers:
  q: softmax(z)
  "u[i]": z[i] + c
  r: softmax(u)
  L: log(Sum(exp(z[j]), (j, 1, N)))
questions:
"""


def solve_shift(tmp_path, text):
    problem = load_problem(write(tmp_path, SHIFTS + text, "shifts.yaml"))
    (answer,) = problem.solve()
    return answer


def logsumexp(z):
    return float(torch.logsumexp(torch.tensor(z, dtype=torch.float64), dim=0))


@pytest.mark.parametrize("qid, lhs, rhs, rules, reference", [
    ("softmax-shift", "r[k]", "q[k]", ["e^{a+b}", "pull factors"],
     lambda z, c: np.testing.assert_allclose(softmax(z + c), softmax(z), rtol=1e-12)),
    ("lse-shift", "L", "c + log(Sum(exp(z[j] - c), (j, 1, N)))", ["e^{a+b}", r"\log(ab)"],
     lambda z, c: pytest.approx(logsumexp(z)) == c + logsumexp(z - c) or pytest.fail("lse shift")),
    ("jacobian-column-sums", "Sum(diff(q[i], z[j]), (i, 1, N))", "0", ["contract", "bound indices"],
     lambda z, c: np.testing.assert_allclose(
         torch.autograd.functional.jacobian(lambda t: torch.softmax(t, 0), torch.tensor(z)).numpy().sum(axis=0),
         0, atol=1e-14)),
    ("lse-gradient", "diff(L, z[k])", "q[k]", ["differentiate", "recognise"],
     lambda z, c: np.testing.assert_allclose(
         torch.autograd.functional.jacobian(lambda t: torch.logsumexp(t, 0), torch.tensor(z)).numpy(), softmax(z),
         rtol=1e-12)),
], ids=lambda v: v if isinstance(v, str) and "-" in v else "")
def test_identities_are_proved_for_all_sizes(tmp_path, qid, lhs, rhs, rules, reference):
    rng = rng_for(qid)
    for size in range(1, 9):
        reference(rng.normal(size=size) * 3, float(rng.normal() * 5))
    extra = ["fold: [q]"] if qid == "jacobian-column-sums" else []
    answer = solve_shift(tmp_path, question(qid, lhs, rhs, *extra))
    assert answer.status is Status.PROVED, (answer.status, answer.detail, answer.error)
    assert "all values of N" in answer.detail
    whys = " | ".join(step.why for step in answer.steps)
    for rule in rules:
        assert rule in whys, whys


@pytest.mark.parametrize("lhs, rhs, left, right", [
    ("sigmoid(-x)", "1 - sigmoid(x)", lambda x: sigmoid(-x), lambda x: 1 - sigmoid(x)),
    ("tanh(x) + 1", "2*sigmoid(2*x)", lambda x: np.tanh(x) + 1, lambda x: 2 * sigmoid(2 * x)),
    ("log(sigmoid(x))", "-log(1 + exp(-x))", lambda x: np.log(sigmoid(x)), lambda x: -np.log1p(np.exp(-x))),
    ("log(1 + exp(x)) - log(1 + exp(-x))", "x", lambda x: np.log1p(np.exp(x)) - np.log1p(np.exp(-x)),
     lambda x: x),
    ("diff(log(1 + exp(x)), x)", "sigmoid(x)", lambda x: scalar_derivative(lambda t: torch.log1p(torch.exp(t)), x),
     sigmoid),
    ("diff(tanh(x), x)", "4*sigmoid(2*x)*(1 - sigmoid(2*x))", lambda x: scalar_derivative(torch.tanh, x),
     lambda x: 4 * sigmoid(2 * x) * (1 - sigmoid(2 * x))),
], ids=["sigmoid-symmetry", "tanh-sigmoid", "log-sigmoid", "softplus-difference", "softplus-derivative",
        "tanh-derivative"])
def test_scalar_identities_are_proved_in_exponentials(tmp_path, lhs, rhs, left, right):
    for x in rng_for(lhs).normal(size=6) * 3:
        assert left(float(x)) == pytest.approx(right(float(x)), rel=1e-12, abs=1e-14)
    answer = solve_shift(tmp_path, question("scalar", lhs, rhs))
    assert answer.status is Status.PROVED, (answer.status, answer.detail)
    assert "size" not in answer.detail.lower() or "no size" in answer.detail.lower()


@pytest.mark.parametrize("lhs, rhs, left, right", [
    ("sigmoid(-x)", "sigmoid(x) - 1", lambda x: sigmoid(-x), lambda x: sigmoid(x) - 1),     # the sign slip
    ("tanh(x) + 1", "2*sigmoid(x)", lambda x: np.tanh(x) + 1, lambda x: 2 * sigmoid(x)),    # 2x forgotten
    ("diff(log(1 + exp(x)), x)", "sigmoid(-x)", lambda x: scalar_derivative(lambda t: torch.log1p(torch.exp(t)), x),
     lambda x: sigmoid(-x)),
], ids=["sigmoid-sign", "tanh-scale", "softplus-derivative"])
def test_wrong_scalar_identities_fail_with_real_counterexample(tmp_path, lhs, rhs, left, right):
    answer = solve_shift(tmp_path, question("wrong", lhs, rhs))
    assert answer.status is Status.FAILED
    point, reported_lhs, reported_rhs = parse_counterexample(answer.detail)
    x = float(point["x"])
    assert_real_counterexample(left(x), right(x), reported_lhs, reported_rhs)


def test_shift_by_a_different_constant_fails(tmp_path):
    answer = solve_shift(tmp_path, question("wrong-shift", "L", "c + log(Sum(exp(z[j]), (j, 1, N)))"))
    assert answer.status is Status.FAILED
    point, lhs, rhs = parse_counterexample(answer.detail)
    size = int(point["N"])
    z = np.array([float(v) for v in vector(point, "z", size)])
    assert_real_counterexample(logsumexp(z), float(point["c"]) + logsumexp(z), lhs, rhs)


def test_sizeless_identity_of_fixed_size_entries_is_proved_not_verified(tmp_path):
    # q_1 = σ(z_1 − z_2) for a softmax of exactly two logits: no size is symbolic, so checking
    # every index value exactly is a proof.
    text = ("title: two\nindex_base: 1\ntensors: {z: [2]}\nlayers: {q: softmax(z)}\nquestions:\n"
            + question("two-class", "q[1]", "sigmoid(z[1] - z[2])"))
    (answer,) = load_problem(write(tmp_path, text, "two.yaml")).solve()
    z = rng_for("two-fixed").normal(size=2)
    assert softmax(z)[0] == pytest.approx(sigmoid(z[0] - z[1]), rel=1e-12)
    assert answer.status is Status.PROVED, (answer.status, answer.detail)


def test_cross_check_takes_derivatives_inside_a_sum(tmp_path):
    # Σ_i ∂q_i/∂z_j: SymPy does not count j (a derivative's variable) as free, and the sum over i
    # must be written out before autograd can take each ∂q_i/∂z_j.
    from symderive import verify
    path = write(tmp_path, SHIFTS + question("column-sums", "Sum(diff(q[i], z[j]), (i, 1, N))", "0", "fold: [q]"),
                 "sums.yaml")
    problem = load_problem(path)
    answers = problem.solve()
    (report,) = verify.cross_check(problem, answers)
    assert report.outcome == verify.AGREE, (report.outcome, report.reason)
    assert report.autograd and report.entries >= 2 and report.max_abs < 1e-12
