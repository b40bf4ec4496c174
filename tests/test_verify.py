"""--verify: every derived answer cross-checked with PyTorch autograd.

* every shipped problem (the folder is read at test time, so new problem files
  and questions are covered as they land) agrees with PyTorch to 1e-9, and a
  question whose ask has no cross-check entry fails this test instead of
  passing unchecked;
* a deliberately wrong answer (one entry of an array, the closed form, a
  matrix entry, unflipped kernels, a shape formula, a value) is reported as a
  disagreement with exit status 1;
* every layer of the library maps to a torch op; element formulas say
  "no PyTorch counterpart";
* without torch, --verify prints how to install it and exits 2, and importing
  symderive never imports torch.
"""
import dataclasses
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sympy as sp
from helpers import NO_PDF, run_cli  # noqa: E402

from symderive import cli, load_problem, verify
from symderive.answer import Kind
from symderive.asks import ASKS, Ask
from symderive.problem import find_problem_files

#: Everything but the no-torch path needs torch (the verify extra); those tests skip without it.
def _have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


needs_torch = pytest.mark.skipif(not _have_torch(), reason="torch is not installed (pip install 'symderive[verify]')")

REPO = Path(__file__).resolve().parents[1]
PROBLEMS = REPO / "problems"
DATA = Path(__file__).resolve().parent / "data"
TOL = 1e-9


#: Questions whose compared values are all zero, and why that is still a check.
ALL_ZERO = {
    "softmax-jacobian-column-sums": "the answer is the identity that every column sums to zero",
    "goodfellow-hard-tanh": "at its seed both pre-activations lie outside [-1, 1], where hard tanh is flat; "
                            "a formula nonzero there would disagree",
}


def within_tolerance(check):
    """Relative error within TOL, or absolute where the value is near zero."""
    return check["max_abs_error"] is not None and (
        check["max_abs_error"] <= TOL or (check["max_rel_error"] is not None and check["max_rel_error"] <= TOL))


def asks_of(path):
    return {q.id: q.ask for q in load_problem(path).questions}


# ---------------------------------------------------------------------------------------------
# Every shipped question
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    out = tmp_path_factory.mktemp("verified")
    result = run_cli(["solve", PROBLEMS, "--verify", "--json", "-o", out / "sheets", *NO_PDF], cwd=out)
    return out / "sheets", result


@needs_torch
def test_verify_shipped_problems_exit_0(verified):
    _, result = verified
    assert result.returncode == 0, result.stderr


@needs_torch
def test_every_shipped_question_is_cross_checked(verified):
    """Each question of each shipped problem: a registered ask agrees with torch within 1e-9;
    an ask with nothing numerical says so; an ask the verifier does not know fails here."""
    _, result = verified
    records = {(r["problem"], r["question"]): r for r in json.loads(result.stdout)}
    files = find_problem_files([PROBLEMS])
    assert files
    unknown, problems = set(), []
    for path in files:
        for qid, ask in asks_of(path).items():
            record = records[(path.stem, qid)]
            check = record.get("cross_check")
            where = f"{path.name}: {qid} (ask {ask})"
            if check is None:
                problems.append(f"{where}: no cross-check report")
                continue
            if ask in verify.NOTHING_TO_CHECK:
                if check["outcome"] != verify.NOTHING:
                    problems.append(f"{where}: expected 'nothing to check', got {check['outcome']}")
                continue
            if ask not in verify.CHECKS:
                unknown.add(ask)
                continue
            if record["status"] == "failed":
                problems.append(f"{where}: the question failed, so it was not cross-checked")
            elif check["outcome"] == verify.NO_COUNTERPART:
                # Allowed only when a layer really has no torch op, and the report names it.
                if not check["no_counterpart"] or not within_tolerance(check):
                    problems.append(f"{where}: {check['text']}")
            elif check["outcome"] != verify.AGREE:
                problems.append(f"{where}: {check['outcome']}: {check['text']}")
            elif not check["entries"] and not check["also_agree"]:
                problems.append(f"{where}: agreement claimed but no number compared")
            elif check["entries"] and not within_tolerance(check):
                problems.append(f"{where}: beyond {TOL}: {check['text']}")
            elif check["entries"] and check["max_rel_error"] is None and qid not in ALL_ZERO:
                problems.append(f"{where}: every value compared was zero, so a wrong formula could pass")
            elif not check["compared"]:
                problems.append(f"{where}: agreement claimed but nothing named as compared")
    assert not unknown, (f"ask(s) {sorted(unknown)} have no cross-check: add check(job) to their module "
                         "symderive/asks/<ask>.py, or a NOTHING_TO_CHECK reason")
    assert not problems, "\n".join(problems)


@needs_torch
def test_sheets_carry_the_cross_check_line(verified):
    out, result = verified
    records = json.loads(result.stdout)
    for tex in out.glob("*.tex"):
        text = tex.read_text()
        mine = [r for r in records if r["problem"] == tex.stem]
        assert text.count("with PyTorch") >= len(mine), tex.name
        # Under the status line of each question, never replacing it.
        assert text.count(r"\emph{Established:") == len(mine)
    agree = next(r for r in records if r["cross_check"]["outcome"] == verify.AGREE)
    assert "does not change how the answer was established" in agree["cross_check"]["text"]
    assert agree["cross_check"]["tool"].startswith("PyTorch ")


@needs_torch
def test_verified_sheets_compile(verified):
    """The cross-check lines are plain text for LaTeX: every verified sheet still compiles."""
    from symderive.pdf import compile_pdf, tex_engine
    if tex_engine() is None:
        pytest.skip("no TeX engine installed")
    out, _ = verified
    for tex in sorted(out.glob("*.tex")):
        assert compile_pdf(tex).exists()


@needs_torch
def test_json_cross_check_record(verified):
    _, result = verified
    for r in json.loads(result.stdout):
        check = r["cross_check"]
        assert {"outcome", "tool", "max_abs_error", "max_rel_error", "tolerance", "compared", "entries",
                "no_counterpart", "sizes", "seed", "worst", "reason", "text", "seconds"} <= set(check)
        assert isinstance(check["seed"], int)
        if check["outcome"] == verify.AGREE:
            assert check["max_abs_error"] <= TOL and check["entries"] > 0


@needs_torch
def test_status_is_not_changed_by_the_cross_check(tmp_path):
    problem = load_problem(DATA / "all_asks.yaml")
    answers = problem.solve()
    before = [(a.status, a.detail) for a in answers]
    reports = verify.cross_check(problem, answers)
    assert [(a.status, a.detail) for a in answers] == before
    assert [a.cross_check for a in answers] == reports
    assert all(r.outcome in (verify.AGREE, verify.NO_COUNTERPART, verify.NOTHING) for r in reports)


@needs_torch
def test_cross_check_is_reproducible():
    problem = load_problem(DATA / "all_asks.yaml")
    first = [r.to_json() for r in verify.cross_check(problem, problem.solve())]
    second = [r.to_json() for r in verify.cross_check(problem, problem.solve())]
    for a, b in zip(first, second):
        a.pop("seconds"), b.pop("seconds")
    assert first == second


def test_the_first_random_sizes_are_at_least_two():
    """A size of 1 can zero a formula everywhere it is compared (nyu24-1.2.2f at K = 1 has no step
    t - 1); the first draw avoids it, later draws may use it, and a question that needs 1 gets it."""
    from types import SimpleNamespace

    import numpy as np

    from symderive.verify.job import VerifyError, random_sizes
    K, m = sp.symbols("K m", integer=True, positive=True)
    ones = 0
    for seed in range(40):
        job = SimpleNamespace(rng=np.random.default_rng(seed), sizes=[])
        drawn = random_sizes(job, [K, m], 3, lambda sizes: None)
        assert len(drawn) == 3 and min(drawn[0].values()) >= 2, drawn
        ones += any(v == 1 for d in drawn[1:] for v in d.values())
    assert ones, "later draws never used a size of 1"

    def only_k_one(sizes):
        if sizes[K] != 1:
            raise VerifyError("K must be 1 here")
    job = SimpleNamespace(rng=np.random.default_rng(0), sizes=[])
    assert all(d[K] == 1 for d in random_sizes(job, [K, m], 2, only_k_one))


@needs_torch
def test_symbolic_shape_compared_at_random_sizes():
    problem = load_problem(PROBLEMS / "nyu-dl-2021-hw3.yaml")
    (answer,) = problem.solve(ids={"nyu21-1.1b"})
    (report,) = verify.cross_check(problem, [answer])
    assert report.outcome == verify.AGREE
    assert len(report.sizes) == verify.SHAPE_DRAWS
    assert set(report.sizes[0]) == {"C", "H", "W", "F", "K", "P", "S", "D"}
    assert "random sizes" in report.sentence()


# ---------------------------------------------------------------------------------------------
# Every layer kind, in one problem written here
# ---------------------------------------------------------------------------------------------
LAYERS_PROBLEM = """
title: "verify: every layer kind"
index_base: 1
questions:
  - id: conv2d-bias
    tensors: {x: [2, 6, 5], w: [3, 2, 3, 2], b: [3]}
    layers: {y: "conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2))"}
    ask: derivative
    of: y
    wrt: w
  - id: conv1d-bias
    tensors: {x: [2, 7], w: [3, 2, 3], b: [3]}
    layers: {y: "conv1d(x, w, bias=b, stride=2, padding=1, dilation=2)", a: "tanh(y)"}
    ask: chain_rule
    of: a
    wrt: b
  - id: avg1d
    tensors: {x: [2, 7]}
    layers: {y: "avg_pool1d(x, kernel_size=3, stride=2, padding=1)"}
    ask: derivative
    of: y
    wrt: x
  - id: avg2d
    tensors: {x: [5, 6]}
    layers: {y: "avg_pool2d(x, kernel_size=2)"}
    ask: chain_rule
    of: y
    wrt: x
  - id: max1d
    tensors: {x: [2, 6]}
    layers: {y: "max_pool1d(x, kernel_size=2)"}
    ask: derivative
    of: y
    wrt: x
  - id: max2d
    tensors: {x: [1, 3, 4]}
    layers: {y: "max_pool2d(x, kernel_size=2, stride=1)"}
    ask: chain_rule
    of: y
    wrt: x
  - id: softmax
    tensors: {z: [2, 3]}
    layers: {q: "softmax(z)"}
    ask: derivative
    of: q
    wrt: z
  - id: linear-ce
    tensors: {x: [3], W: [4, 3], b: [4], p: [4]}
    layers: {z: "linear(x, W, b)", E: "cross_entropy(z, p)"}
    ask: chain_rule
    of: E
    wrt: W
  - id: ce-wrt-layer
    tensors: {x: [3], W: [4, 3], p: [4]}
    layers: {z: "affine(x, W)", E: "cross_entropy(z, p)"}
    ask: derivative
    of: E
    wrt: z
  - id: mse
    tensors: {x: [2, 3], t: [2, 3]}
    layers: {s: "sigmoid(x)", L: "mse(s, t)"}
    ask: derivative
    of: L
    wrt: x
  - id: sum-of-squares
    tensors: {y: [4]}
    layers: {a: "relu(y)", L: "sum_of_squares(a)"}
    ask: chain_rule
    of: L
    wrt: y
  - id: custom
    tensors: {x: [3], W: [2, 3]}
    layers:
      "z[i]": "Sum(W[i, j]*x[j]**2, (j, 1, 3))"
      s: "sigmoid(z)"
    ask: derivative
    of: s
    wrt: x
  - id: symbolic-conv
    sizes: [C, L, K, S]
    tensors: {x: [C, L], w: [2, C, K]}
    layers: {y: "conv1d(x, w, stride=S)"}
    ask: derivative
    of: y
    wrt: x
  - id: size-named-like-an-index        # the convolution's sum runs over an index k; k is also a size
    sizes: [n, k]
    tensors: {X: ["n + k", "n + k"], K: [k, k]}
    layers: {C: "conv2d(X, K)", S: "sigmoid(C)"}
    ask: chain_rule
    of: S
    wrt: K
  - id: symbolic-pool-shape
    sizes: [N, K, S]
    tensors: {x: [3, N]}
    layers: {y: "avg_pool1d(x, kernel_size=K, stride=S)"}
    ask: shape
    of: y
  - id: symbolic-mse
    sizes: [N]
    tensors: {x: [N], t: [N]}
    layers: {L: "mse(x, t)"}
    ask: element
    of: L
  - id: value-sum
    ask: value
    expr: "Sum(exp(-j)/j, (j, 1, 5)) + sqrt(2)"
  - id: conv2d-backward
    tensors: {x: [2, 5, 6], w: [3, 2, 2, 3]}
    layers: {y: "conv2d(x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 2))"}
    ask: backward_conv
    of: y
  - id: conv2d-im2col
    tensors: {x: [6, 6], w: [3, 3]}
    layers: {y: "conv2d(x, w, stride=2, padding=1, dilation=2)"}
    ask: conv_matrix
    of: y
    matrix: im2col
"""


@pytest.fixture(scope="module")
def layer_reports(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "layers.yaml"
    path.write_text(textwrap.dedent(LAYERS_PROBLEM))
    problem = load_problem(path)
    answers = problem.solve()
    return {a.question_id: a for a in answers}, verify.cross_check(problem, answers)


@needs_torch
def test_every_layer_kind_agrees(layer_reports):
    answers, reports = layer_reports
    for r in reports:
        assert answers[r.question].ok, answers[r.question].error
        expected = verify.NO_COUNTERPART if r.question == "custom" else verify.AGREE
        assert r.outcome == expected, f"{r.question}: {r.sentence()}"
        assert r.entries > 0 and r.max_abs <= TOL, f"{r.question}: {r.sentence()}"


@needs_torch
def test_element_formula_layer_has_no_counterpart(layer_reports):
    _, reports = layer_reports
    custom = next(r for r in reports if r.question == "custom")
    assert custom.formula_layers == [("z", "element formula", True)]
    assert "no PyTorch counterpart" in custom.sentence()
    assert "own SymPy formula" in custom.sentence()
    assert not custom.sentence().startswith("Cross-checked")


def test_every_library_layer_has_a_torch_op():
    """A layer kind registered without a torch op fails here; the layer it builds names that kind."""
    import symderive as sd
    from symderive.layers import KINDS, formula_kinds, op_for
    x, w, b = sd.tensor("x", 2, 6), sd.tensor("w", 3, 2, 3), sd.tensor("b", 3)
    x2, w2 = sd.tensor("x2", 2, 6, 6), sd.tensor("w2", 3, 2, 3, 3)
    v, W = sd.tensor("v", 3), sd.tensor("W", 4, 3)
    args = {"conv1d": ((x, w, b), {}), "conv2d": ((x2, w2), {}), "avg_pool1d": ((x,), {"kernel_size": 2}),
            "avg_pool2d": ((x2,), {"kernel_size": 2}), "max_pool1d": ((x,), {"kernel_size": 2}),
            "max_pool2d": ((x2,), {"kernel_size": 2}), "linear": ((v, W), {}), "affine": ((v, W), {}),
            "cross_entropy": ((v, v), {}), "mse": ((x, x), {}), "sum_of_squares": ((x,), {})}
    S, t, M = sd.tensor("S", 2, 3), sd.tensor("t", 2), sd.tensor("M", 3, 2)     # scores, labels, a matrix
    args.update({"nll_loss": ((S, t), {}), "multi_margin_loss": ((S, t), {}), "embedding": ((t, W), {}),
                 "one_hot": ((t,), {"num_classes": 3}), "matmul": ((W, v), {}), "dot": ((v, v), {}),
                 "mv": ((W, v), {}), "mm": ((W, M), {}), "dropout": ((x, x), {}),
                 **{name: ((x, x), {}) for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits",
                                                     "huber_loss", "smooth_l1_loss", "kl_div")}})
    # the kinds of issue 11: normalizations, transposed convolutions, adaptive pooling, cells, attention
    n, m, T = 3, 2, 2
    xs, xt, h, c = sd.tensor("xs", n), sd.tensor("xt", T, n), sd.tensor("h", m), sd.tensor("c", m)
    Q, K, V = sd.tensor("Q", 2, 4), sd.tensor("K", 3, 4), sd.tensor("V", 3, 4)
    P4 = [sd.tensor(f"P{i}", 4, 4) for i in range(4)]
    cells = {"rnn": 1, "gru": 3, "lstm": 4}
    for cell, gates in cells.items():
        state = (h, c) if cell == "lstm" else (h,)
        weights = (sd.tensor(f"Wi{cell}", gates * m, n), sd.tensor(f"Wh{cell}", gates * m, m))
        args[f"{cell}_cell"] = ((xs, *state, *weights), {})
        args[cell] = ((xt, *state, *weights), {})
    args.update({"layer_norm": ((x,), {"normalized_shape": 6}), "group_norm": ((x2,), {"num_groups": 1}),
                 "conv_transpose1d": ((x, sd.tensor("wt", 2, 3, 3)), {}),
                 "conv_transpose2d": ((x2, sd.tensor("wt2", 2, 3, 3, 3)), {}),
                 "adaptive_avg_pool1d": ((x,), {"output_size": 3}), "adaptive_avg_pool2d": ((x2,), {"output_size": 3}),
                 "scaled_dot_product_attention": ((Q, K, V), {}),
                 "multi_head_attention": ((Q, K, V, *P4), {"num_heads": 2})})
    for name, kind in formula_kinds().items():
        positional, keywords = args.get(name, ((x,), {}))
        layer = kind.formula("y", *positional, **keywords)
        op, registered = op_for(layer)
        assert registered and op.counterpart, f"layer '{name}' (kind {layer.kind}) registers no torch op"
    assert not KINDS["element formula"].torch.counterpart


# ---------------------------------------------------------------------------------------------
# Wrong answers are caught
# ---------------------------------------------------------------------------------------------
def _bump_entry(value):
    """The same matrix with one entry off by 1e-6 (relative)."""
    m = sp.Matrix(value)
    r, c = next((r, c) for r in range(m.rows) for c in range(m.cols) if m[r, c] != 0)
    m[r, c] = m[r, c] * (1 + sp.Rational(1, 10**6))
    return type(value)(m) if isinstance(value, sp.SparseMatrix) else m


def _swap_first_two_nonzeros(value):
    """An index slip: two entries of one row of a matrix trade places."""
    m = sp.Matrix(value)
    for r in range(m.rows):
        cols = [c for c in range(m.cols) if m[r, c] != 0]
        if len(cols) >= 2:
            m[r, cols[0]], m[r, cols[1]] = m[r, cols[1]], m[r, cols[0]]
            return sp.SparseMatrix(m)
    raise AssertionError("no row with two nonzeros")


def _unflip(value):
    """The kernels without the flip (a classic backward-pass mistake)."""
    a = sp.Array(value)
    flat = sp.flatten(a.tolist())
    k = a.shape[-1]
    rows = [flat[i:i + k][::-1] for i in range(0, len(flat), k)]
    return sp.Array(sp.flatten(rows)).reshape(*a.shape)


def _shape_plus_one(value):
    return (value[0] + 1,) + tuple(value[1:])


def solve_changed(path, qid, change, monkeypatch, tmp_path, capsys):
    """``--verify --json`` on one question whose answer's results ``change`` alters in place:
    (exit status, its JSON record, stderr)."""
    ask = load_problem(path).question(qid).ask
    original = ASKS[ask]

    def wrong(ctx):
        answer = original.solve(ctx)
        if ctx.question.id == qid:
            change(answer.results)
        return answer

    monkeypatch.setitem(ASKS, ask, Ask(wrong, original.keys))
    status = cli.main(["solve", str(path), "--only", qid, "--verify", "--json", "-o", str(tmp_path), *NO_PDF])
    out, err = capsys.readouterr()
    (record,) = json.loads(out)
    return status, record, err


MUTATIONS = [
    # (problem, question, result label, how to break it)
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-iii", "array", _bump_entry),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-iii", "element", lambda v: v * (1 + sp.Rational(1, 10**6))),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-iv", "array", _bump_entry),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-iv", "element", lambda v: v.xreplace({sp.Integer(2): sp.Integer(3)})),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-matrix", "matrix", _swap_first_two_nonzeros),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-backward", "B", _bump_entry),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1b", "shape", _shape_plus_one),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1a", "shape", _shape_plus_one),
    ("nyu-dl-2021-hw3.yaml", "nyu21-1.1c-i", "element", lambda v: v + sp.Rational(1, 10**6)),
    ("csce636-hw2.yaml", "csce636-q5c", "kernels", _unflip),
    ("hw5-written.yaml", "hw5-p3b", "array", _bump_entry),
    ("nyu-dl-2024-hw2.yaml", "nyu24-1.3d", "exact", lambda v: v + sp.Rational(1, 10**6)),
]


@needs_torch
@pytest.mark.parametrize("problem, qid, label, mutate", MUTATIONS,
                         ids=[f"{m[1]}-{m[2]}" for m in MUTATIONS])
def test_a_wrong_answer_is_a_disagreement(problem, qid, label, mutate, monkeypatch, tmp_path, capsys):
    def change(results):
        for k, r in enumerate(results):
            if r.label == label:
                results[k] = dataclasses.replace(r, value=mutate(r.value))
                return
        raise AssertionError(f"{qid} has no result {label!r}")

    status, record, err = solve_changed(PROBLEMS / problem, qid, change, monkeypatch, tmp_path, capsys)
    assert status == 1, err
    assert record["cross_check"]["outcome"] == verify.DISAGREE, record["cross_check"]
    assert "DISAGREES" in err and qid in err
    assert record["status"] != "failed"          # the engine's status is left as it was
    assert "DISAGREES" in (tmp_path / f"{Path(problem).stem}.tex").read_text()


def _first_question_of_each_ask():
    """(file, question id, ask) for the first shipped question of every ask that has a cross-check."""
    seen = {}
    for path in find_problem_files([PROBLEMS]):
        for q in load_problem(path).questions:
            if q.ask in verify.CHECKS and q.ask not in seen:
                seen[q.ask] = (path.name, q.id, q.ask)
    return sorted(seen.values(), key=lambda v: v[2])


def _spoil(value):
    """The first number in a result, changed a little (an index or count by one)."""
    if isinstance(value, sp.MatrixBase):
        return _bump_entry(value)
    if isinstance(value, tuple):
        if value and all(isinstance(v, str) for v in value):
            return value[:-1]                           # e.g. one axis fewer averaged over
        return (value[0] + 1,) + value[1:]
    if isinstance(value, sp.Array):
        return _unflip(value)
    if isinstance(value, sp.Eq):                        # a claim: its right-hand side a little off
        return sp.Eq(value.lhs, value.rhs * (1 + sp.Rational(1, 10**6)), evaluate=False)
    value = sp.sympify(value)
    if value.is_Integer:
        return value + 1
    return value * (1 + sp.Rational(1, 10**6))


@needs_torch
@pytest.mark.parametrize("problem, qid, ask", _first_question_of_each_ask(),
                         ids=[v[2] for v in _first_question_of_each_ask()])
def test_every_ask_catches_a_wrong_number(problem, qid, ask, monkeypatch, tmp_path, capsys):
    """For each ask with a cross-check, on a shipped question: spoil the first result that holds a
    number, and the cross-check must disagree (exit 1)."""
    def change(results):
        k, r = next((k, r) for k, r in enumerate(results) if not isinstance(r.value, (str, bool, type(None))))
        results[k] = dataclasses.replace(r, value=_spoil(r.value))

    status, record, err = solve_changed(PROBLEMS / problem, qid, change, monkeypatch, tmp_path, capsys)
    assert record["cross_check"]["outcome"] == verify.DISAGREE, record["cross_check"]
    assert status == 1, err


CLAIMS = """\
title: claims
index_base: 1
sizes: [N]
tensors: {z: [N], p: [N], u: [3], W: [2, 3]}
layers:
  q: softmax(z)
  E: cross_entropy(z, p)
  h: linear(u, W)
  L: sum_of_squares(h)
questions:
  - id: softmax-ce
    ask: prove
    lhs: diff(E, z[x])
    rhs: q[x] - p[x]
    constraints: ["Sum(p[i], (i, 1, N)) == 1"]
  - id: linear-sos
    ask: prove
    lhs: diff(L, W[a, b])
    rhs: 2*h[a]*u[b]
"""


@needs_torch
def test_proved_claims_hold_in_torch(tmp_path):
    (tmp_path / "claims.yaml").write_text(CLAIMS)
    problem = load_problem(tmp_path / "claims.yaml")
    answers = problem.solve()
    assert all(a.status.value == "proved" for a in answers), [a.error for a in answers]
    for r in verify.cross_check(problem, answers):
        assert r.outcome == verify.AGREE and r.autograd and r.max_abs <= TOL, r.sentence()


@needs_torch
def test_a_wrong_claim_is_a_disagreement(monkeypatch, tmp_path, capsys):
    (tmp_path / "claims.yaml").write_text(CLAIMS)

    def change(results):
        claim = results[0].value
        results[0] = dataclasses.replace(results[0], value=sp.Eq(claim.lhs, 2 * claim.rhs, evaluate=False))

    status, record, err = solve_changed(tmp_path / "claims.yaml", "softmax-ce", change, monkeypatch, tmp_path,
                                        capsys)
    assert status == 1 and record["cross_check"]["outcome"] == verify.DISAGREE, record["cross_check"]
    assert "lhs" in record["cross_check"]["worst"] and "rhs" in record["cross_check"]["worst"]


@needs_torch
def test_the_unmodified_answers_pass_the_same_route(tmp_path, capsys):
    status = cli.main(["solve", str(PROBLEMS / "nyu-dl-2021-hw3.yaml"), "--only", "nyu21-1.1c-iii",
                       "--verify", "-o", str(tmp_path), *NO_PDF])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "cross-check with PyTorch" in out and "agree: max abs. error" in out


@needs_torch
def test_an_unknown_ask_is_reported_not_passed(monkeypatch, tmp_path):
    monkeypatch.setitem(ASKS, "mystery", ASKS["shape"])
    path = tmp_path / "mystery.yaml"
    path.write_text("title: t\ntensors: {x: [4]}\nlayers: {y: 'relu(x)'}\n"
                    "questions:\n  - {id: q, ask: mystery, of: y}\n")
    problem = load_problem(path)
    (report,) = verify.cross_check(problem, problem.solve())
    assert report.outcome == verify.NOT_CHECKED
    assert "mystery" in report.reason and "Not cross-checked" in report.sentence()


# ---------------------------------------------------------------------------------------------
# torch stays optional
# ---------------------------------------------------------------------------------------------
def test_without_torch_verify_explains_and_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)        # `import torch` now raises ImportError
    status = cli.main(["solve", str(PROBLEMS / "hw5-written.yaml"), "--verify", "-o", str(tmp_path), *NO_PDF])
    _, err = capsys.readouterr()
    assert status == 2
    assert "pip install 'symderive[verify]'" in err and "pip install torch==2.13.0" in err
    assert not list(tmp_path.glob("*.tex"))                 # nothing solved half-way
    with pytest.raises(verify.TorchMissing):
        verify.cross_check(load_problem(PROBLEMS / "hw5-written.yaml"), [])


def test_without_torch_the_rest_still_works(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert cli.main(["solve", str(PROBLEMS / "hw5-written.yaml"), "-o", str(tmp_path), *NO_PDF]) == 0


def test_importing_symderive_does_not_import_torch():
    code = ("import sys, symderive, symderive.cli, symderive.verify, symderive.torch_ops; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_tolerance_helper():
    assert within_tolerance({"max_abs_error": 1e-12, "max_rel_error": 1e-3})
    assert within_tolerance({"max_abs_error": 5.0, "max_rel_error": 1e-10})
    assert not within_tolerance({"max_abs_error": 1e-3, "max_rel_error": 1e-3})
    assert math.isclose(verify.TOLERANCE, TOL)


def test_every_result_an_ask_emits_has_a_kind():
    """verify and checking find results by kind and key, so every result of every shipped question
    must carry one (a result without a kind would be neither checked nor graded)."""
    for path in find_problem_files([PROBLEMS]):
        problem = load_problem(path)
        for answer in problem.solve():
            for r in answer.results:
                assert isinstance(r.kind, Kind), (answer.question_id, r.label)
                assert r.key, (answer.question_id, r.label)
                if r.kind is Kind.ELEMENT and r.axes:
                    assert {g for g, _ in r.axes} <= {"of", "wrt"}, (answer.question_id, r.axes)


@needs_torch
@pytest.mark.parametrize("problem, qid, ask", _first_question_of_each_ask(),
                         ids=[v[2] for v in _first_question_of_each_ask()])
def test_renaming_labels_keeps_every_check(problem, qid, ask, monkeypatch, tmp_path, capsys):
    """Labels are only shown: with every label of the answer changed, the cross-check compares
    the same things and still agrees, and the grading targets keep their kinds and axes."""
    from symderive.checking.targets import question_info
    path = PROBLEMS / problem
    loaded = load_problem(path)
    question = next(q for q in loaded.questions if q.id == qid)
    answer = loaded.solve_question(question, 120)
    before = verify.cross_check(loaded, [answer])[0]
    targets = [(t.kind, t.axes, t.alt_shapes) for t in question_info(loaded, question, answer).targets]
    renamed = dataclasses.replace(answer, results=[dataclasses.replace(r, label=f"renamed {k}")
                                                   for k, r in enumerate(answer.results)])
    after = verify.cross_check(loaded, [renamed])[0]
    assert after.outcome == before.outcome, after.sentence()
    assert after.compared == before.compared and after.entries == before.entries, after.sentence()
    assert before.outcome == verify.AGREE or before.entries or before.also, before.sentence()
    assert [(t.kind, t.axes, t.alt_shapes) for t in question_info(loaded, question, renamed).targets] == targets
