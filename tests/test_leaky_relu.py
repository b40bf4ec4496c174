"""leaky_relu, the layer kind added as one module (symderive/layers/leaky_relu.py).

Every expected value comes from PyTorch (float64 autograd, ``torch.nn.functional.leaky_relu``,
``torch.nn.LeakyReLU``), never from the engine: the index formula and its Jacobian, a
``network:`` stack with its numeric forward and backward pass, and ``--verify`` on both.
"""
import textwrap

import numpy as np
import pytest
import sympy as sp

import symderive as sd
from symderive import verify
from symderive.answer import Status
from symderive.problem import load_problem

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-12


def _floats(value):
    if isinstance(value, sp.MatrixBase):
        return np.array([[float(sp.N(v, 30)) for v in row] for row in value.tolist()])
    return float(sp.N(value, 30))


@pytest.mark.parametrize("slope", [sp.Rational(1, 5), sp.Rational(-3, 2), None])
def test_index_formula_and_jacobian_match_torch_autograd(slope):
    x = sd.tensor("x", 6)
    y = sd.leaky_relu(x) if slope is None else sd.leaky_relu(x, negative_slope=slope)
    torch_slope = 0.01 if slope is None else float(slope)
    values = torch.tensor([0.7, -1.3, 2.1, -0.2, 0.05, -4.0], dtype=torch.float64)
    at = {x.base[k]: sp.Float(float(v), 30) for k, v in enumerate(values)}
    forward = np.array([float(y.element((k,)).xreplace(at)) for k in range(6)])
    np.testing.assert_allclose(forward, F.leaky_relu(values, torch_slope).numpy(), atol=TOL, rtol=0)
    jacobian = sd.derivative(y, x).array().xreplace(at)
    expected = torch.autograd.functional.jacobian(lambda t: F.leaky_relu(t, torch_slope), values)
    np.testing.assert_allclose(_floats(jacobian), expected.numpy(), atol=TOL, rtol=0)


def test_default_slope_is_pytorchs():
    layer = sd.leaky_relu(sd.tensor("x", 3))
    assert layer.negative_slope == sp.Rational(1, 100)
    assert float(layer.negative_slope) == torch.nn.LeakyReLU().negative_slope


PROBLEM = """
title: "leaky_relu"
questions:
  - id: jacobian
    tensors: {x: [2, 5]}
    layers: {y: "leaky_relu(x, negative_slope=0.2)"}
    ask: derivative
    of: y
    wrt: x
  - id: through-conv
    tensors: {x: [2, 7], w: [3, 2, 3], p: [3, 5]}
    layers: {c: "conv1d(x, w, stride=1)", a: "leaky_relu(c, negative_slope=0.1)", E: "mse(a, p)"}
    ask: chain_rule
    of: E
    wrt: w
  - id: shapes
    ask: shape_table
    network:
      input: [3, 16, 16]
      layers:
        - conv: Conv2d(3, 8, kernel_size=3, padding=1)
        - act: LeakyReLU(negative_slope=0.2)
        - pool: MaxPool2d(2)
  - id: params
    ask: parameter_count
    network:
      input: [3, 16, 16]
      layers:
        - Conv2d(3, 8, kernel_size=3)
        - LeakyReLU()
        - Flatten()
        - Linear(1568, 10)
  - id: passes
    tensors:
      x: {shape: [3], value: [1, -2, "1/2"]}
      W: {shape: [2, 3], value: [[1, 2, -1], [3, "1/4", 2]]}
      B: {shape: [2], value: [-1, "1/2"]}
      V: {shape: [1, 2], value: [[2, -1]]}
      t: {value: 1}
    ask: forward_backward
    network:
      input: x
      layers:
        - s: Linear(W, B)
        - a: LeakyReLU(0.2)
        - o: Linear(V)
      loss: {e: "(o[0] - t)**2"}
"""


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    path = tmp_path_factory.mktemp("leaky") / "leaky.yaml"
    path.write_text(textwrap.dedent(PROBLEM))
    problem = load_problem(path)
    answers = problem.solve()
    return problem, {a.question_id: a for a in answers}


def test_every_question_is_answered_and_verify_agrees(solved):
    problem, answers = solved
    for answer in answers.values():
        assert answer.status is not Status.FAILED, answer.error
    for report in verify.cross_check(problem, list(answers.values())):
        assert report.outcome == verify.AGREE, f"{report.question}: {report.sentence()}"
        assert report.entries > 0


def test_numeric_pass_matches_torch_autograd(solved):
    _, answers = solved
    got = {r.label: r.value for r in answers["passes"].results}
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    W = torch.tensor([[1.0, 2.0, -1.0], [3.0, 0.25, 2.0]], dtype=torch.float64, requires_grad=True)
    B = torch.tensor([-1.0, 0.5], dtype=torch.float64, requires_grad=True)
    V = torch.tensor([[2.0, -1.0]], dtype=torch.float64, requires_grad=True)
    s = W @ x + B
    s.retain_grad()
    a = F.leaky_relu(s, 0.2)
    a.retain_grad()
    o = V @ a
    e = (o[0] - 1.0) ** 2
    e.backward()
    for name, value in (("s", s), ("a", a), ("o", o)):
        np.testing.assert_allclose(_floats(got[name]).reshape(-1), value.detach().numpy(), atol=TOL, rtol=0)
    assert abs(_floats(got["e"]) - float(e.detach())) < TOL
    for name, value in (("de/ds", s), ("de/da", a)):
        np.testing.assert_allclose(_floats(got[name]).reshape(-1), value.grad.numpy(), atol=TOL, rtol=0)
    for name, value in (("de/dW", W), ("de/dB", B), ("de/dV", V)):
        np.testing.assert_allclose(_floats(got[name]).reshape(value.shape), value.grad.numpy(), atol=TOL, rtol=0)
    assert list(got["s"]) == [sp.Rational(-9, 2), 4]                 # exact, one entry on each side of 0
    assert list(got["a"]) == [sp.Rational(-9, 10), 4]


def test_parameter_count_and_shapes(solved):
    _, answers = solved
    params = {r.label: r.value for r in answers["params"].results}
    total = params["total"]
    assert (total[0] if isinstance(total, tuple) else total) == (3 * 9 + 1) * 8 + (1568 + 1) * 10
    assert all(v == 0 for v in (params["leakyrelu1"] if isinstance(params["leakyrelu1"], tuple)
                                else (params["leakyrelu1"],)))
    shapes = {r.label: r.value for r in answers["shapes"].results}
    assert tuple(shapes["act"]) == (8, 16, 16)


@pytest.mark.parametrize("question, where", [
    ('layers: {y: "leaky_relu(x, negative_slope=(1, 2))"}\n    ask: shape\n    of: y', "bad.yaml:5:47:"),
    ('ask: shape_table\n    network: ["LeakyReLU(negative_slope=(1, 2))"]', "bad.yaml:6:41:"),
])
def test_a_slope_that_is_not_a_number_is_an_error_at_its_place(tmp_path, question, where):
    path = tmp_path / "bad.yaml"
    path.write_text(f"title: bad slope\nquestions:\n  - id: bad\n    tensors: {{x: [3]}}\n    {question}\n")
    (answer,) = load_problem(path).solve()
    assert answer.status is Status.FAILED
    assert "negative_slope must be a number" in str(answer.error) and where in str(answer.error)
