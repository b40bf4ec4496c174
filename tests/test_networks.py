"""The network asks (parameter_count, shape_table, same_padding, receptive_field,
batchnorm_shapes, forward_backward, gradient_step, rnn_recurrence) on the shipped questions.

Every expected number is computed here, independently of the engine:

* plain Python and NumPy written in this file: parameter counts from the layer definitions,
  output sizes from PyTorch's size formula, the padding by searching P = 0, 1, 2, ..., the
  receptive field by following index windows back to the input, batch-norm statistics with
  ``np.mean`` over axes, the forward and backward passes written out by hand (bias nodes as in
  *Learning From Data*), the gradient step, and the RNN fixed point by bisection;
* PyTorch (``torch.nn`` modules, autograd, ``torch.optim.SGD``) when torch is importable; those
  tests call ``pytest.importorskip("torch")``.

The seed files' answers are never used: several of them are wrong.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symderive.answer import Status
from symderive.problem import load_problem
from helpers import assert_close  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"
TOL = 1e-12
_SOLVED = {}


def answer(problem, qid):
    """The engine's answer to one shipped question (solved once per test session)."""
    key = (problem, qid)
    if key not in _SOLVED:
        loaded = load_problem(PROBLEMS / problem)
        (_SOLVED[key],) = loaded.solve(ids={qid})
    found = _SOLVED[key]
    assert found.status is not Status.FAILED, found.error
    return found


def results(problem, qid):
    return {r.label: r.value for r in answer(problem, qid).results}


def as_float(value):
    if isinstance(value, sp.MatrixBase):
        return np.array([[float(sp.N(v, 30)) for v in row] for row in value.tolist()])
    return float(sp.N(value, 30))


# ---------------------------------------------------------------------------------------------
# Parameter counts: a convolution has C_in·k_h·k_w weights per filter and one bias per filter.


def conv_params(c_in, c_out, kh, kw, bias):
    return c_out * (c_in * kh * kw + (1 if bias else 0))


def linear_params(n_in, n_out, bias):
    return n_out * (n_in + (1 if bias else 0))


CSCE = "csce636-hw2.yaml"
HW5 = "hw5-written.yaml"
CQ = "conceptual-cnn-rnn.yaml"

STANDARD = [(32, 32, 3, 3)] * 2
BOTTLENECK = [(128, 32, 1, 1), (32, 32, 3, 3), (32, 128, 1, 1)]


@pytest.mark.parametrize("qid, convs", [("csce636-q3a", STANDARD), ("csce636-q3b", BOTTLENECK)])
def test_residual_block_counts(qid, convs):
    got = results(CSCE, qid)
    for k, conv in enumerate(convs, 1):
        assert got[f"block.conv{k}"] == (conv_params(*conv, True), conv_params(*conv, False))
    assert got["total"] == (sum(conv_params(*c, True) for c in convs), sum(conv_params(*c, False) for c in convs))


def test_compare_blocks():
    got = results(CSCE, "csce636-q3c")
    standard = (sum(conv_params(*c, True) for c in STANDARD), sum(conv_params(*c, False) for c in STANDARD))
    bottleneck = (sum(conv_params(*c, True) for c in BOTTLENECK), sum(conv_params(*c, False) for c in BOTTLENECK))
    assert got["standard"] == standard and got["bottleneck"] == bottleneck
    assert got["bottleneck / standard"] == sp.Rational(bottleneck[0], standard[0])
    # Multiply-adds per example: every output position of a convolution costs C_in·k·k per filter;
    # "same" padding keeps 16×16 positions.
    macs = lambda convs: sum(16 * 16 * c_out * c_in * kh * kw for c_in, c_out, kh, kw in convs)  # noqa: E731
    assert got["standard multiply-adds"] == macs(STANDARD)
    assert got["bottleneck multiply-adds"] == macs(BOTTLENECK)
    assert macs(BOTTLENECK) < macs(STANDARD)
    assert answer(CSCE, "csce636-q3c").notes, "the comparison's text is an authored note"


def test_cnn_total_with_biases():
    got = results(CQ, "cq-3.3")
    expected = {"conv1": conv_params(3, 32, 5, 5, True), "conv2": conv_params(32, 48, 3, 3, True),
                "conv3": conv_params(48, 64, 3, 3, True), "flatten1": 0,
                "fc1": linear_params(4 * 4 * 64, 384, True), "fc2": linear_params(384, 192, True),
                "fc3": linear_params(192, 10, True)}
    for name, count in expected.items():
        assert got[name] == count, name
    assert got["total"] == sum(expected.values())


def test_hw5_conv_and_pool_counts():
    got = results(HW5, "hw5-p2a")
    assert got["conv"] == (conv_params(3, 10, 3, 3, True), conv_params(3, 10, 3, 3, False))
    assert got["pool"] == (0, 0)
    assert got["total"] == got["conv"]


def test_counts_with_torch_modules():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    count = lambda *ms: sum(p.numel() for m in ms for p in m.parameters())  # noqa: E731
    for bias, k in ((True, 0), (False, 1)):
        standard = [nn.Conv2d(32, 32, 3, padding=1, bias=bias) for _ in range(2)]
        bottleneck = [nn.Conv2d(128, 32, 1, bias=bias), nn.Conv2d(32, 32, 3, padding=1, bias=bias),
                      nn.Conv2d(32, 128, 1, bias=bias)]
        assert results(CSCE, "csce636-q3a")["total"][k] == count(*standard)
        assert results(CSCE, "csce636-q3b")["total"][k] == count(*bottleneck)
        assert results(HW5, "hw5-p2a")["conv"][k] == count(nn.Conv2d(3, 10, 3, bias=bias))
    cnn = [nn.Conv2d(3, 32, 5), nn.Conv2d(32, 48, 3), nn.Conv2d(48, 64, 3), nn.Linear(1024, 384),
           nn.Linear(384, 192), nn.Linear(192, 10)]
    assert results(CQ, "cq-3.3")["total"] == count(*cnn)
    bn = nn.BatchNorm2d(32)
    assert count(bn) == 2 * 32 and {n for n, _ in bn.named_buffers()} >= {"running_mean", "running_var"}


# ---------------------------------------------------------------------------------------------
# Shapes, "same" padding, receptive field


def out_size(n, k, s=1, p=0, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def test_hw5_shapes():
    got = results(HW5, "hw5-p2b")
    conv = out_size(128, 3)
    pool = out_size(conv, 2, 2)
    assert got["conv"] == (conv, conv, 10)          # height × width × channels, as the input is given
    assert got["pool"] == (pool, pool, 10)


def test_hw5_shapes_torch():
    torch = pytest.importorskip("torch")
    x = torch.zeros(1, 3, 128, 128)
    conv = torch.nn.Conv2d(3, 10, 3)(x)
    pool = torch.nn.MaxPool2d(2, 2)(conv)
    got = results(HW5, "hw5-p2b")
    assert got["conv"] == (conv.shape[2], conv.shape[3], conv.shape[1])
    assert got["pool"] == (pool.shape[2], pool.shape[3], pool.shape[1])


def test_same_padding():
    got = results(HW5, "hw5-p2c")
    padding = next(p for p in range(10) if out_size(128, 3, 1, p) == 128)
    assert got["padding"] == padding
    assert got["output shape"] == (128, 128, 10)


def receptive_extent(layers, unit):
    """Input positions (one axis) that unit ``unit`` of the last layer depends on, following each
    layer's window (kernel k, stride s, padding p) back to the input."""
    positions = {unit}
    for k, s, p in reversed(layers):
        positions = {s * u - p + t for u in positions for t in range(k)}
    return max(positions) - min(positions) + 1


def test_receptive_field():
    got = results(HW5, "hw5-p2d")
    extent = receptive_extent([(3, 1, 0), (2, 2, 0)], unit=10)
    assert got["receptive field"] == (extent, extent)


def test_residual_shapes_kept():
    network = {"input": [128, 16, 16, 32], "layout": "NHWC", "layers": [{"block": "ResidualBlock(32)"}]}
    (a,) = _problem_from({"q": {"ask": "shape_table", "network": network}}).solve()
    assert a.ok, a.error
    assert a.results[0].value == (128, 16, 16, 32)


# ---------------------------------------------------------------------------------------------
# Batch-norm statistics


@pytest.mark.parametrize("qid, layout, reduced", [("csce636-q4a", "NC", ("N",)),
                                                  ("csce636-q4b", "NHWC", ("N", "H", "W"))])
def test_batchnorm_shapes(qid, layout, reduced):
    got = results(CSCE, qid)
    sizes = {"N": 5, "H": 3, "W": 4, "C": 6}
    x = np.random.default_rng(0).normal(size=[sizes[a] for a in layout])
    mean = x.mean(axis=tuple(layout.index(a) for a in reduced))
    (c,) = got["mean"]
    assert str(c) == "C" and mean.shape == (sizes["C"],)
    assert got["variance"] == got["mean"] == got["gamma, beta"]
    assert tuple(map(str, got["averaged over"])) == reduced


def test_batchnorm_torch():
    torch = pytest.importorskip("torch")
    x = torch.randn(5, 6, 3, 4, dtype=torch.float64)          # PyTorch's N, C, H, W
    bn = torch.nn.BatchNorm2d(6, momentum=None, dtype=torch.float64)
    bn(x)
    assert torch.allclose(bn.running_mean, x.mean(dim=(0, 2, 3)))
    assert tuple(bn.running_mean.shape) == tuple(bn.weight.shape) == tuple(bn.bias.shape) == (6,)
    assert tuple(map(str, results(CSCE, "csce636-q4b")["averaged over"])) == ("N", "H", "W")


# ---------------------------------------------------------------------------------------------
# csce636-q2: forward and backward with bias nodes (Learning From Data's convention), by hand


W1 = np.array([[0.1, 0.2], [0.3, 0.4]])      # rows: bias, input; columns: units
W2 = np.array([[0.2], [1.0], [-3.0]])
W3 = np.array([[1.0], [2.0]])


def bias_node_reference():
    """s^l = (W^l)^T [1; x^{l-1}], tanh hidden, identity output, e = (x^3 - y)^2."""
    x0 = np.array([[2.0]])
    one = np.ones((1, 1))
    x0b = np.vstack([one, x0])
    s1 = W1.T @ x0b
    x1 = np.tanh(s1)
    x1b = np.vstack([one, x1])
    s2 = W2.T @ x1b
    x2 = np.tanh(s2)
    x2b = np.vstack([one, x2])
    s3 = W3.T @ x2b
    x3 = s3
    e = float((x3[0, 0] - 1.0) ** 2)
    d3 = 2 * (x3 - 1.0)                          # identity: θ' = 1
    g2 = (W3 @ d3)[1:]                           # drop the bias row
    d2 = (1 - x2 ** 2) * g2
    g1 = (W2 @ d2)[1:]
    d1 = (1 - x1 ** 2) * g1
    return {"s1": s1, "x1": x1b, "s2": s2, "x2": x2b, "s3": s3, "x3": x3, "e": e,
            "de/dx3": 2 * (x3 - 1.0), "de/ds3": d3, "de/dx2": g2, "de/ds2": d2, "de/dx1": g1, "de/ds1": d1,
            "de/dW1": x0b @ d1.T, "de/dW2": x1b @ d2.T, "de/dW3": x2b @ d3.T}


def test_forward_backward_bias_nodes():
    got = results(CSCE, "csce636-q2")
    for name, expected in bias_node_reference().items():
        assert_close(as_float(got[name]), expected, name, TOL)


def test_forward_backward_is_exact():
    got = results(CSCE, "csce636-q2")
    assert got["s1"] == sp.Matrix([sp.Rational(7, 10), 1])
    assert got["x1"] == sp.Matrix([1, sp.tanh(sp.Rational(7, 10)), sp.tanh(1)])
    assert got["e"].has(sp.tanh) and not got["e"].atoms(sp.Float)


def test_forward_backward_torch():
    torch = pytest.importorskip("torch")
    w = [torch.tensor(m, dtype=torch.float64, requires_grad=True) for m in (W1, W2, W3)]
    x = torch.tensor([[2.0]], dtype=torch.float64)
    for k, weight in enumerate(w):
        x = weight.T @ torch.cat([torch.ones(1, 1, dtype=torch.float64), x])
        if k < 2:
            x = torch.tanh(x)
    e = (x[0, 0] - 1.0) ** 2
    e.backward()
    got = results(CSCE, "csce636-q2")
    assert_close(as_float(got["e"]), float(e.detach()), "e", TOL)
    for k, weight in enumerate(w, 1):
        assert_close(as_float(got[f"de/dW{k}"]), weight.grad.numpy(), f"W{k}", TOL)


# ---------------------------------------------------------------------------------------------
# cq-3.5: one gradient-descent step through ReLU and softmax with cross-entropy


def gradient_step_reference():
    W = np.array([[1.0, 0.0], [0.0, -1.0]])
    B = np.zeros((2, 1))
    x = np.ones((2, 1))
    p = np.array([[0.3], [0.7]])
    c = W @ x + B
    z = np.maximum(c, 0)
    q = np.exp(z) / np.exp(z).sum()
    dz = q - p                               # softmax + cross-entropy, Σ p = 1
    dc = dz * (c > 0)                        # the ReLU mask
    return W - 0.02 * (dc @ x.T), B - 0.02 * dc, float(-(p * np.log(q)).sum())


def test_gradient_step():
    got = results(CQ, "cq-3.5")
    W_new, B_new, _ = gradient_step_reference()
    assert_close(as_float(got["W'"]), W_new, "W'", TOL)
    assert_close(as_float(got["B'"]), B_new, "B'", TOL)
    assert got["W'"][1, :] == sp.Matrix([[0, -1]])              # the masked row does not move


def test_gradient_step_torch():
    torch = pytest.importorskip("torch")
    W = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    B = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    x = torch.ones(2, dtype=torch.float64)
    p = torch.tensor([0.3, 0.7], dtype=torch.float64)
    q = torch.softmax(torch.relu(W @ x + B), dim=0)
    (-(p * torch.log(q)).sum()).backward()
    torch.optim.SGD([W, B], lr=0.02).step()
    got = results(CQ, "cq-3.5")
    assert_close(as_float(got["W'"]), W.detach().numpy(), "W'", TOL)
    assert_close(as_float(got["B'"]).reshape(-1), B.detach().numpy(), "B'", TOL)


# ---------------------------------------------------------------------------------------------
# RNN recurrences a<t> = g(a<t-1>), all inputs 0, b = 0, W_a = 1


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def bisect(f, lo, hi, steps=200):
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(lo) * f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def test_rnn_sigmoid():
    got = results(HW5, "hw5-p1a")
    trajectory = [0.0]
    for _ in range(5):
        trajectory.append(sigmoid(trajectory[-1]))
    assert_close([as_float(v) for v in got["trajectory"]], trajectory[1:], "trajectory", TOL)
    fixed = bisect(lambda a: a - sigmoid(a), 0.0, 1.0)
    slope = sigmoid(fixed) * (1 - sigmoid(fixed))
    assert_close(as_float(got["fixed point"]), fixed, "a*", 1e-12)
    assert_close(as_float(got["derivative at the fixed point"]), slope, "d", 1e-12)
    assert round(fixed, 3) == 0.659 and round(slope, 4) == 0.2247
    assert got["verdict"] == "vanishing"
    # The symbolic derivative W_a σ(z)(1 − σ(z)) against a central difference at a random point.
    a, W_a, W_x, x, b = sp.symbols("a W_a W_x x_t b", real=True)
    point = {a: 0.3, W_a: 1.7, W_x: 0.4, x: -0.8, b: 0.25}
    z = lambda v: point[W_a] * v + point[W_x] * point[x] + point[b]  # noqa: E731
    h = 1e-6
    numeric = (sigmoid(z(point[a] + h)) - sigmoid(z(point[a] - h))) / (2 * h)
    assert_close(float(got["derivative"].subs(point)), numeric, "derivative", 1e-8)


def test_rnn_tanh():
    got = results(HW5, "hw5-p1b")
    assert all(v == 0 for v in got["trajectory"])              # tanh(0) = 0: the state stays at 0
    assert got["fixed point"] == 0
    assert got["derivative at the fixed point"] == 1            # 1 − tanh²(0)
    assert got["verdict"] == "neither"


def test_rnn_torch():
    torch = pytest.importorskip("torch")
    a = torch.tensor(0.0, dtype=torch.float64)
    for _ in range(200):
        a = torch.sigmoid(a)
    leaf = a.clone().requires_grad_(True)
    torch.sigmoid(leaf).backward()
    got = results(HW5, "hw5-p1a")
    assert_close(as_float(got["fixed point"]), float(a), "a*", 1e-12)
    assert_close(as_float(got["derivative at the fixed point"]), float(leaf.grad), "d", 1e-12)


# ---------------------------------------------------------------------------------------------
# The same asks on a problem written here (symbolic sizes, 0-based file, 1-D networks)


def _problem_from(questions, top=None, tmp=None):
    import tempfile

    import yaml
    spec = {"title": "t", **(top or {}), "questions": [{"id": k, **v} for k, v in questions.items()]}
    folder = Path(tmp or tempfile.mkdtemp())
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_problem(path)


def test_symbolic_sizes_count():
    problem = _problem_from({"q": {"ask": "parameter_count", "sizes": ["C", "F", "K"],
                                   "network": ["Conv2d(C, F, K)", "BatchNorm2d(F)", "ReLU()"]}})
    (a,) = problem.solve()
    assert a.ok, a.error
    got = {r.label: r.value for r in a.results}
    C, F, K = (sp.Symbol(n, integer=True, positive=True) for n in "CFK")
    assert sp.expand(got["conv1"][0] - (C * K * K + 1) * F) == 0
    assert sp.expand(got["conv1"][1] - C * K * K * F) == 0
    assert got["bn1"] == (2 * F, 2 * F)
    assert sp.expand(got["total"][0] - ((C * K * K + 1) * F + 2 * F)) == 0


def test_one_dimensional_stack():
    problem = _problem_from({
        "shapes": {"ask": "shape_table", "network": {"input": [4, 50], "layers": [
            "Conv1d(4, 8, 5, stride=2, padding=2, dilation=1)", "AvgPool1d(3)", "Flatten()", "Linear(64, 3)"]}},
        "field": {"ask": "receptive_field", "network": {"input": [4, 50], "layers": [
            "Conv1d(4, 8, 5, stride=2, dilation=2)", "MaxPool1d(3, stride=2)"]}},
    })
    shapes, field = problem.solve()
    assert shapes.ok and field.ok, (shapes.error, field.error)
    conv = out_size(50, 5, 2, 2)
    pool = out_size(conv, 3, 3)
    got = {r.label: r.value for r in shapes.results}
    assert got["conv1"] == (8, conv) and got["pool1"] == (8, pool) and got["flatten1"] == (8 * pool,)
    # Dilation 2: the kernel's taps are 2 apart, so its window spans 2·(5 − 1) + 1 positions.
    dilated = receptive_extent([(9, 2, 0), (3, 2, 0)], unit=3)
    assert field.results[0].value == (dilated,)


# ---------------------------------------------------------------------------------------------
# Bad input: one located line per error, exit status 1, the other questions answered

GOOD_TAIL = "  - id: fine\n    ask: parameter_count\n    network: [\"Linear(3, 2)\"]\n"


def where(text, token, after=None):
    """1-based (line, column) of ``token`` in ``text`` (after the text ``after``)."""
    offset = text.index(token, text.index(after) if after else 0)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


#: question id -> (its YAML after the id, the token the error must point at, part of the message)
BAD = {
    "unknown-layer": ("    ask: parameter_count\n    network: [\"Conv3d(3, 4, 3)\"]\n", "Conv3d",
                      "unknown layer 'Conv3d'"),
    "bad-keyword": ("    ask: parameter_count\n    network: [\"Conv2d(3, 4, kernel=3)\"]\n", "3)",
                    "has no argument 'kernel'"),
    "missing-argument": ("    ask: parameter_count\n    network: [\"Conv2d(3, 4)\"]\n", "Conv2d",
                         "needs kernel_size"),
    "negative-stride": ("    ask: parameter_count\n    network: [\"MaxPool2d(2, stride=-1)\"]\n", "-1",
                        "stride must be a positive"),
    "channels": ("    ask: shape_table\n    network:\n      input: [8, 8, 3]\n      layout: HWC\n"
                 "      layers:\n        - c: Conv2d(4, 5, 3)\n", "Conv2d(4", "expects 4 input channels"),
    "no-flatten": ("    ask: shape_table\n    network:\n      input: [3, 8, 8]\n      layers:\n"
                   "        - Conv2d(3, 5, 3)\n        - Linear(180, 2)\n", "Linear", "add Flatten()"),
    "layout": ("    ask: shape_table\n    network:\n      input: [8, 8, 3]\n      layout: HWX\n"
               "      layers: [\"ReLU()\"]\n", "HWX", "layout 'HWX'"),
    "kernel-too-big": ("    ask: shape_table\n    network:\n      input: [3, 4, 4]\n"
                       "      layers: [\"Conv2d(3, 2, 5)\"]\n", "Conv2d", "larger than the padded input"),
    "skip-shape": ("    ask: parameter_count\n    network:\n      input: [3, 8, 8]\n"
                   "      layers: [\"Residual(Conv2d(3, 4, 3, padding=1))\"]\n", "Residual",
                   "identity skip"),
    "executes": ("    ask: parameter_count\n    network: [\"Linear(__import__('os').getpid(), 2)\"]\n", "__import__",
                 "only named functions can be called"),
    "value-shape": ("    tensors:\n      x: {shape: [1], value: [2]}\n      W: {shape: [2, 2], value: [[1, 2, 3], [4, 5, 6]]}\n"
                    "      y: {value: 1}\n    ask: forward_backward\n    network:\n      input: x\n"
                    "      convention: bias_node\n      layers:\n        - s: Linear(W)\n      loss: {e: \"(s[1] - y)**2\"}\n",
                    "W:", "the value must have shape 2×2"),
    "value-entry": ("    tensors:\n      x: {shape: [2], value: [1, \"two\"]}\n      W: {shape: [1, 2], value: [[1, 2]]}\n"
                    "    ask: forward_backward\n    network:\n      input: x\n      layers:\n        - s: Linear(W)\n"
                    "      loss: \"s[1]**2\"\n", "two", "'two' is not declared"),
    "bias-rows": ("    tensors:\n      x: {shape: [2], value: [1, 2]}\n      W: {shape: [2, 1], value: [[1], [2]]}\n"
                  "    ask: forward_backward\n    network:\n      input: x\n      convention: bias_node\n"
                  "      layers:\n        - s: Linear(W)\n      loss: \"s[1]**2\"\n", "Linear(W)",
                  "with bias nodes W has 2 rows"),
    "loss-name": ("    tensors:\n      x: {shape: [2], value: [1, 2]}\n      W: {shape: [1, 2], value: [[1, 2]]}\n"
                  "    ask: forward_backward\n    network:\n      input: x\n      layers:\n        - s: Linear(W)\n"
                  "      loss: \"(s[1] - target)**2\"\n", "target", "'target' is not declared"),
    "rate": ("    tensors:\n      x: {shape: [2], value: [1, 2]}\n      W: {shape: [1, 2], value: [[1, 2]]}\n"
             "    ask: gradient_step\n    learning_rate: -0.1\n    network:\n      input: x\n"
             "      layers:\n        - s: Linear(W)\n      loss: \"s[1]**2\"\n", "learning_rate", "positive number"),
    "rnn-value": ("    tensors:\n      a: []\n      w: []\n    ask: rnn_recurrence\n    state: a\n"
                  "    update: \"tanh(w*a)\"\n", "\"tanh", "needs a value for w"),
    "even-kernel": ("    ask: same_padding\n    network:\n      input: [3, 8, 8]\n"
                    "      layers:\n        - c: Conv2d(3, 2, 4)\n    of: c\n", "of: c", "no equal padding"),
}


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    from helpers import NO_PDF, run_cli
    folder = tmp_path_factory.mktemp("bad_networks")
    text = "title: bad networks\nindex_base: 1\nquestions:\n"
    for qid, (body, _, _) in BAD.items():
        text += f"  - id: {qid}\n{body}"
    text += GOOD_TAIL
    (folder / "bad.yaml").write_text(text)
    return text, run_cli(["solve", "bad.yaml", "-o", "out", *NO_PDF], folder)


def test_bad_networks_exit_1_and_good_answered(bad_run):
    _, done = bad_run
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert "question fine" not in done.stderr


@pytest.mark.parametrize("qid", list(BAD))
def test_bad_network_error_is_located(bad_run, qid):
    text, done = bad_run
    lines = [line for line in done.stderr.splitlines() if f"question {qid}:" in line]
    assert len(lines) == 1, done.stderr
    body, token, message = BAD[qid]
    assert message in lines[0], lines[0]
    line, column = where(text, token, after=f"id: {qid}\n")
    assert f"bad.yaml:{line}:{column}: question {qid}: " in lines[0], (lines[0], (line, column))
