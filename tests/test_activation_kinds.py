"""The activations of issue 11 (elu, gelu both forms, softplus, log_sigmoid, log_softmax,
hardtanh, silu), each against PyTorch float64 autograd at random sizes: the forward value of
every entry, the element derivative ∂y/∂x at every index pair, and the chain rule through a
linear layer (∂l/∂W for a random upstream gradient). Every reference is torch's, computed from
torch.nn.functional; the engine's formulas are evaluated by SymPy (tests/helpers.sympy_number).
"""
import numpy as np
import pytest
import sympy as sp

import symderive as sd
from symderive.errors import ShapeError
from symderive.tensors import flat_positions
from helpers import rng_for, sympy_number

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-10

# kind: (options for symderive, the same computation in torch)
ACTIVATIONS = {
    "elu": ({"alpha": sp.Rational(3, 2)}, lambda t: F.elu(t, 1.5)),
    "elu default": ({}, lambda t: F.elu(t)),
    "gelu": ({}, lambda t: F.gelu(t)),
    "gelu tanh": ({"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
    "softplus": ({"beta": 2}, lambda t: F.softplus(t, beta=2.0)),
    "log_sigmoid": ({}, F.logsigmoid),
    "log_softmax": ({}, lambda t: F.log_softmax(t, dim=-1)),
    "log_softmax dim 0": ({"dim": 0}, lambda t: F.log_softmax(t, dim=0)),
    "hardtanh": ({"min_val": sp.Rational(-1, 2), "max_val": 1}, lambda t: F.hardtanh(t, -0.5, 1.0)),
    "hardtanh default": ({}, F.hardtanh),
    "silu": ({}, F.silu),
}


def _values(rng, shape):
    return rng.uniform(-2.5, 2.5, size=shape)


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_forward_and_jacobian_match_torch_at_random_sizes(case):
    rng = rng_for(case)
    options, reference = ACTIVATIONS[case]
    shape = tuple(int(n) for n in rng.integers(2, 4, size=2))
    x = sd.tensor("x", *shape)
    y = getattr(sd, case.split()[0])(x, **options)
    xv = _values(rng, shape)
    t = torch.tensor(xv, dtype=torch.float64)
    expected = reference(t).numpy()
    got = [sympy_number(y.element(pos), {"x": xv}) for pos in flat_positions(shape)]
    np.testing.assert_allclose(got, expected.reshape(-1), rtol=TOL, atol=TOL)
    d = sd.derivative(y, x)
    jacobian = torch.autograd.functional.jacobian(reference, t).numpy().reshape(xv.size, xv.size)
    names = [i.name for i in d.out_idx + d.wrt_idx]
    for r, out in enumerate(flat_positions(shape)):
        for c, at in enumerate(flat_positions(shape)):
            value = sympy_number(d.value, {"x": xv}, dict(zip(names, out + at)))
            assert value == pytest.approx(jacobian[r, c], rel=TOL, abs=TOL), (case, out, at)


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_chain_rule_through_a_linear_layer_matches_torch(case):
    rng = rng_for("chain " + case)
    options, reference = ACTIVATIONS[case]
    m, n = (int(v) for v in rng.integers(2, 5, size=2))
    x, W = sd.tensor("x", n), sd.tensor("W", m, n)
    h = sd.linear(x, W, name="h")
    if case.split()[0] == "log_softmax":
        options = {}
    a = getattr(sd, case.split()[0])(h, name="a", **options)
    c = sd.chain_rule(a, W)
    xv, Wv, gv = _values(rng, (n,)), _values(rng, (m, n)) / 2, _values(rng, (m,))
    Wt = torch.tensor(Wv, dtype=torch.float64, requires_grad=True)
    out = reference(Wt @ torch.tensor(xv, dtype=torch.float64))
    out.backward(torch.tensor(gv, dtype=torch.float64))
    names = [i.name for i in c.local.wrt_idx]
    values = {"x": xv, "W": Wv, c.upstream.name: gv}
    got = [[sympy_number(c.value, values, dict(zip(names, (p, q)))) for q in range(n)] for p in range(m)]
    np.testing.assert_allclose(got, Wt.grad.numpy(), rtol=TOL, atol=TOL)


def test_defaults_are_pytorchs():
    x = sd.tensor("x", 2)
    assert sd.elu(x).alpha == 1 and float(sd.elu(x).alpha) == torch.nn.ELU().alpha
    assert (sd.softplus(x).beta, sd.softplus(x).threshold) == (1, 20)
    assert (torch.nn.Softplus().beta, torch.nn.Softplus().threshold) == (1.0, 20.0)
    assert (sd.hardtanh(x).min_val, sd.hardtanh(x).max_val) == (-1, 1)
    assert sd.gelu(x).approximate == torch.nn.GELU().approximate == "none"


def test_bad_options_are_refused():
    x = sd.tensor("x", 3)
    with pytest.raises(TypeError, match="approximate"):
        sd.gelu(x, approximate="sigmoid")
    with pytest.raises(ShapeError, match="min_val"):
        sd.hardtanh(x, min_val=1, max_val=1)
    with pytest.raises(ShapeError, match="beta must be positive"):
        sd.softplus(x, beta=0)
    with pytest.raises(ShapeError, match="dim 2"):
        sd.log_softmax(x, dim=2)


NETWORK = """
title: activations in a numeric pass
questions:
  - id: passes
    tensors:
      x: {{shape: [3], value: [1, -2, "1/2"]}}
      W: {{shape: [2, 3], value: [[1, 2, -1], [3, "1/4", 2]]}}
      B: {{shape: [2], value: [-1, "1/2"]}}
      V: {{shape: [1, 2], value: [[2, -1]]}}
      t: {{value: 1}}
    ask: forward_backward
    network:
      input: x
      layers:
        - s: Linear(W, B)
        - a: {module}
        - o: Linear(V)
      loss: {{e: "(o[0] - t)**2"}}
"""


@pytest.mark.parametrize("module, reference", [
    ("ELU(alpha=0.5)", lambda t: F.elu(t, 0.5)),
    ("GELU(approximate='tanh')", lambda t: F.gelu(t, approximate="tanh")),
    ("Softplus(beta=2)", lambda t: F.softplus(t, beta=2.0)),
    ("Hardtanh(-1, 2)", lambda t: F.hardtanh(t, -1.0, 2.0)),
    ("SiLU()", F.silu),
    ("LogSigmoid()", F.logsigmoid),
    ("LogSoftmax()", lambda t: F.log_softmax(t, dim=0)),      # a formula with a sum over the features
])
def test_numeric_pass_matches_torch_backward(tmp_path, module, reference):
    from symderive.answer import Status
    from symderive.problem import load_problem
    path = tmp_path / "net.yaml"
    path.write_text(NETWORK.format(module=module))
    (answer,) = load_problem(path).solve()
    assert answer.status is not Status.FAILED, answer.error
    got = {r.label: r.value for r in answer.results}
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    W = torch.tensor([[1.0, 2.0, -1.0], [3.0, 0.25, 2.0]], dtype=torch.float64, requires_grad=True)
    B = torch.tensor([-1.0, 0.5], dtype=torch.float64, requires_grad=True)
    V = torch.tensor([[2.0, -1.0]], dtype=torch.float64, requires_grad=True)
    e = ((V @ reference(W @ x + B))[0] - 1.0) ** 2
    e.backward()
    assert float(sp.N(got["e"], 30)) == pytest.approx(float(e.detach()), rel=1e-12)
    for name, tensor in (("de/dW", W), ("de/dB", B), ("de/dV", V)):
        value = np.array([[float(sp.N(v, 30)) for v in row] for row in got[name].tolist()])
        np.testing.assert_allclose(value.reshape(tensor.shape), tensor.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_numeric_pass_names_the_jacobians_irrational_entries(tmp_path):
    """GELU's derivative at s is a sum of tanh terms wider than a line: the pass writes J's entries as τ's
    (defined in a step, each with the entry it names), so ∂e/∂s and ∂e/∂W stay short; the τ's stand for
    the derivative torch's autograd computes, and the answers' values have every τ written out."""
    from symderive.problem import load_problem
    path = tmp_path / "net.yaml"
    path.write_text(NETWORK.format(module="GELU(approximate='tanh')"))
    (answer,) = load_problem(path).solve()
    steps = [s for s in answer.steps if "entries of J" in s.why]
    assert len(steps) == 1 and r"\frac{\partial a_{0}}{\partial s_{0}}" in steps[0].latex
    shown = {r.label: r.latex for r in answer.results}
    assert r"\tau_{3}" in shown["de/ds"] and r"\tanh" not in shown["de/ds"] + shown["de/dW"]
    where = {str(s).strip(): m for s, _, m in (d.partition(" = ") for d in answer.results[-1].value.split(", "))}
    s = torch.tensor([1.0 * 1 + 2 * -2 - 0.5 - 1, 3.0 - 0.5 + 1 + 0.5], dtype=torch.float64, requires_grad=True)
    F.gelu(s, approximate="tanh").sum().backward()
    for k, expected in zip(("tau_3", "tau_4"), s.grad.tolist()):
        assert float(sp.N(sp.sympify(where[k]), 30)) == pytest.approx(expected, rel=1e-12)
    values = {r.label: r.value for r in answer.results}
    assert not any(str(v).count("tau") for k, v in values.items() if k != "where")
