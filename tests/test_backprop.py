"""Backpropagation layer by layer (symderive.backprop) against torch autograd in float64.

The δ steps are evaluated from their own formulas (NumPy, top down); the reference is an
independent torch model of the same network differentiated by autograd."""
import time

import numpy as np
import pytest
import sympy as sp

import symderive as sd
from symderive.backprop import backprop, delta_values, path_layers
from symderive.derivative import derivative
from symderive.tensors import flat_positions
from symderive.verify.job import EngineValues, engine_value

torch = pytest.importorskip("torch")


def mlp(blocks, sizes=None, loss="cross_entropy"):
    """x → (Linear → sigmoid) × blocks → loss; sizes symbolic n0…n_blocks unless given."""
    ns = sizes or sd.sizes(" ".join(f"n{k}" for k in range(blocks + 1)))
    x = sd.tensor("x", ns[0])
    h, params = x, []
    for k in range(1, blocks + 1):
        W, b = sd.tensor(f"W{k}", ns[k], ns[k - 1]), sd.tensor(f"b{k}", ns[k])
        params += [W, b]
        h = sd.sigmoid(sd.linear(h, W, b, name=f"z{k}"), name=f"a{k}")
    p = sd.tensor("p", ns[-1])
    L = sd.cross_entropy(h, p, name="L") if loss == "cross_entropy" else sd.mse(h, p, name="L")
    return L, x, p, params


def torch_gradients(blocks, values, loss="cross_entropy"):
    """The same network in torch, gradients by autograd (float64)."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in values.items()}
    h = t["x"]
    for k in range(1, blocks + 1):
        h = torch.sigmoid(t[f"W{k}"] @ h + t[f"b{k}"])
    if loss == "cross_entropy":
        L = -(t["p"] * torch.log_softmax(h, dim=0)).sum()
    else:
        L = ((h - t["p"]) ** 2).mean()
    L.backward()
    return {k: v.grad.numpy() for k, v in t.items()}


def engine_gradient(bp, values, sizes):
    """∂L/∂wrt at every entry from the δ-form formula, each δ computed from its step."""
    nodes = {n.name: n for n in [bp.of] + list(bp.of.layer_inputs().values())}
    env = EngineValues(dict(values), nodes.get, sizes)
    delta_values(bp, env, sizes)
    shape = tuple(int(sp.sympify(n).subs(sizes)) for n in bp.wrt.shape)
    names = [i.name for i in bp.wrt_idx]
    return np.array([engine_value(bp.value, env, sizes, dict(zip(names, pos)))
                     for pos in flat_positions(shape)]).reshape(shape)


def random_values(shapes, rng):
    return {k: rng.uniform(-1.5, 1.5, size=s) for k, s in shapes.items()}


@pytest.mark.parametrize("blocks, loss", [(2, "cross_entropy"), (3, "cross_entropy"), (2, "mse")])
def test_delta_form_equals_autograd_at_random_sizes(blocks, loss):
    rng = np.random.default_rng(12 + blocks)
    L, x, p, params = mlp(blocks, loss=loss)
    for _ in range(2):
        numbers = [int(v) for v in rng.integers(2, 5, size=blocks + 1)]
        sizes = {sp.Symbol(f"n{k}", integer=True, positive=True): sp.Integer(v) for k, v in enumerate(numbers)}
        shapes = {t.name: tuple(int(sp.sympify(n).subs(sizes)) for n in t.shape) for t in [x, p] + params}
        values = random_values(shapes, rng)
        reference = torch_gradients(blocks, values, loss)
        for wrt in params + [x]:
            got = engine_gradient(backprop(L, wrt), values, sizes)
            np.testing.assert_allclose(got, reference[wrt.name], rtol=1e-10, atol=1e-12,
                                       err_msg=f"dL/d{wrt.name} at sizes {numbers}")


def test_concrete_sizes_and_a_layer_read_twice():
    """z is read by a sigmoid and a tanh, both compared by the loss: δ^z has two terms."""
    x, W, t = sd.tensor("x", 3), sd.tensor("W", 2, 3), sd.tensor("t", 2)
    z = sd.linear(x, W, name="z")
    a, u = sd.sigmoid(z, name="a"), sd.tanh(z, name="u")
    L = sd.mse(a, u, name="L")
    bp = backprop(L, W)
    step_z = next(s for s in bp.steps if s.layer.name == "z")
    assert set(step_z.readers) == {"a", "u"}
    rng = np.random.default_rng(5)
    values = {"x": rng.normal(size=3), "W": rng.normal(size=(2, 3))}
    got = engine_gradient(bp, values, {})
    tx, tW = (torch.tensor(values[k], dtype=torch.float64, requires_grad=k == "W") for k in ("x", "W"))
    zz = tW @ tx
    ((torch.sigmoid(zz) - torch.tanh(zz)) ** 2).mean().backward()
    np.testing.assert_allclose(got, tW.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_steps_are_the_course_formulas():
    """Nielsen's BP1–BP4 for this network: δ^z = δ^a ⊙ a(1 − a), δ^a = Wᵀ δ^z, ∂L/∂W = δ^z xᵀ."""
    L, x, p, params = mlp(2)
    bp = backprop(L, params[0])
    by_layer = {s.layer.name: s for s in bp.steps}
    base = {n.name: n.base for n in [L] + list(L.layer_inputs().values()) + list(L.leaves().values())}
    base.update({s.layer.name + "'": s.delta.base for s in bp.steps})      # δ by the layer's name + '
    i = by_layer["z2"].idx[0]
    assert sp.expand(by_layer["z2"].value - base["a2'"][i] * base["a2"][i] * (1 - base["a2"][i])) == 0   # BP2
    j = by_layer["a1"].idx[0]
    (k, lo, hi), = by_layer["a1"].value.limits
    assert by_layer["a1"].value == sp.Sum(base["W2"][k, j] * base["z2'"][k], (k, 0, hi))          # Wᵀ δ
    assert by_layer["a1"].readers == ("z2",)
    q, r = bp.wrt_idx
    assert bp.value == base["z1'"][q] * base["x"][r]                                             # BP4
    yhat = bp.auxiliaries[0][0]
    assert yhat.name == "yhat" and by_layer["a2"].value.has(yhat.base[by_layer["a2"].idx[0]])     # softmax ŷ
    assert [s.layer.name for s in bp.steps] == ["a2", "z2", "a1", "z1", "W1"]


def test_seventeen_layers_symbolic_and_linear_in_size():
    """8 blocks into cross-entropy (17 layers), symbolic sizes: solved, each step a constant size."""
    L, x, p, params = mlp(8)
    assert len(path_layers(L, x)) == 17
    start = time.process_time()
    bp = backprop(L, params[0])
    elapsed = time.process_time() - start
    assert len(bp.steps) == 17          # δ of the 16 layers below L, then the gradient by W1
    sizes = [sp.count_ops(s.value) for s in bp.steps]
    assert max(sizes) <= 12, sizes
    assert bp.value.free_symbols >= {sp.Symbol("x", real=True)}
    assert elapsed < 5, elapsed          # about 0.3 s; generous for a loaded machine


def test_agrees_with_the_inlined_derivative_on_one_block():
    """The δ form, written out, is the inlined derivative: checked numerically at one point."""
    W, b, x, p = sd.tensor("W", 2, 3), sd.tensor("b", 2), sd.tensor("x", 3), sd.tensor("p", 2)
    L = sd.cross_entropy(sd.sigmoid(sd.linear(x, W, b, name="z"), name="a"), p, name="L")
    inlined = derivative(L, W)
    bp = backprop(L, W)
    rng = np.random.default_rng(3)
    values = {"W": rng.normal(size=(2, 3)), "b": rng.normal(size=2), "x": rng.normal(size=3),
              "p": rng.uniform(size=2)}
    got = engine_gradient(bp, values, {})
    names = [i.name for i in inlined.wrt_idx]
    want = np.array([engine_value(inlined.value, values, {}, dict(zip(names, pos)))
                     for pos in flat_positions((2, 3))]).reshape(2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_errors():
    x, W = sd.tensor("x", 3), sd.tensor("W", 2, 3)
    z = sd.linear(x, W, name="z")
    with pytest.raises(ValueError, match="does not depend"):
        backprop(z, sd.tensor("V", 2, 3))
    with pytest.raises(ValueError, match="not a layer"):
        backprop(x, x)


PROBLEMS = __import__("pathlib").Path(__file__).resolve().parent.parent / "problems"


def test_shipped_questions_agree_with_torch():
    """problems/backprop-by-layers.yaml: every δ-form answer against torch autograd (--verify)."""
    from symderive import load_problem, verify
    problem = load_problem(PROBLEMS / "backprop-by-layers.yaml")
    answers = problem.solve()
    assert [a.status.value for a in answers] == ["derived"] * len(answers), [a.error for a in answers]
    nielsen = " ".join(step.latex for step in answers[0].steps)
    # BP2 and BP4 in vectors, each checked against its step (a form that failed would be left out)
    assert r"\odot" in nielsen and r"{W_{3}}^{T} {\delta^{z_{3}}}" in nielsen and r"x^{T}" in nielsen, nielsen
    reports = verify.cross_check(problem, answers)
    assert len(reports) == len(answers)
    for r in reports:
        # C is an element formula (Nielsen's ½‖a − y‖²): computed from its own formula, so
        # "no PyTorch counterpart"; the differentiation through it is still checked by autograd.
        assert r.outcome in (verify.AGREE, verify.NO_COUNTERPART) and r.autograd and r.max_abs <= 1e-9, \
            r.sentence()


BAD = """\
title: bad backprop questions
sizes: [n]
tensors: {x: [n], W: [n, n], V: [n, n]}
layers:
  z: linear(x, W)
  a: sigmoid(z)
  L: sum_of_squares(a)
questions:
  - id: not-scalar
    ask: backprop
    of: z
    wrt: W
  - id: not-reached
    ask: backprop
    of: L
    wrt: V
  - id: good
    ask: backprop
    of: L
    wrt: W
"""


def test_bad_questions_fail_alone_with_their_position(tmp_path):
    from helpers import NO_PDF, run_cli
    (tmp_path / "bad.yaml").write_text(BAD)
    result = run_cli(["solve", "bad.yaml", "-o", "out", *NO_PDF], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for qid, where, message in (("not-scalar", "bad.yaml:11:9:", "must name a scalar loss layer; z has shape n"),
                                ("not-reached", "bad.yaml:16:10:", "L does not depend on V")):
        (line,) = [l for l in result.stderr.splitlines() if qid in l]
        assert where in line and message in line, line        # the value after of: / wrt:
    assert "good" not in result.stderr
    assert (tmp_path / "out" / "bad.tex").exists()


SHARED = """\
title: shared weights, a skip and an element-formula layer
sizes: [n, m]
tensors: {x: [n], W: [n, n], V: [m, n], t: [m]}
layers:
  z1: linear(x, W)
  a1: tanh(z1)
  z2: linear(a1, W)
  a2: leaky_relu(z2)
  "r[i]": a2[i] * a1[i] + z1[i]
  s: linear(r, V)
  L: mse(s, t)
questions:
  - {id: shared-W, ask: backprop, of: L, wrt: W}
  - {id: by-a-layer, ask: backprop, of: L, wrt: a1}
  - {id: by-x, ask: backprop, of: L, wrt: x, forward: false}
"""


def test_shared_weights_skips_and_layers_as_wrt_agree_with_torch(tmp_path):
    """W is read by two layers (one term each in ∂L/∂W), z1 and a1 by two: all against autograd."""
    from symderive import load_problem, verify
    (tmp_path / "shared.yaml").write_text(SHARED)
    problem = load_problem(tmp_path / "shared.yaml")
    answers = problem.solve()
    assert [a.status.value for a in answers] == ["derived"] * 3, [a.error for a in answers]
    assert "the layers that read W (one term each)" in " ".join(s.why for s in answers[0].steps)
    for r in verify.cross_check(problem, answers):
        assert r.outcome in (verify.AGREE, verify.NO_COUNTERPART) and r.autograd and r.max_abs <= 1e-9, \
            r.sentence()


def test_a_layer_output_with_an_upstream_gradient():
    """of not a scalar: δ^of is the given upstream g, and ∂l/∂W is the vector-Jacobian product."""
    x, W = sd.tensor("x", 3), sd.tensor("W", 2, 3)
    a = sd.tanh(sd.linear(x, W, name="z"), name="a")
    bp = backprop(a, W, upstream="g")
    rng = np.random.default_rng(8)
    values = {"x": rng.normal(size=3), "W": rng.normal(size=(2, 3)), "g": rng.normal(size=2)}
    got = engine_gradient(bp, values, {})
    tW = torch.tensor(values["W"], requires_grad=True)
    torch.tanh(tW @ torch.tensor(values["x"])).backward(torch.tensor(values["g"]))
    np.testing.assert_allclose(got, tW.grad.numpy(), rtol=1e-10, atol=1e-12)


TORCH_ACTIVATIONS = {"sigmoid": lambda v: torch.sigmoid(v), "tanh": lambda v: torch.tanh(v),
                     "relu": lambda v: torch.relu(v),
                     "leaky_relu": lambda v: torch.nn.functional.leaky_relu(v, 0.01)}


@pytest.mark.parametrize("seed", range(4))
def test_random_stacks_agree_with_autograd(seed):
    """Random depth (1-4 blocks), activations, concrete sizes and loss; every parameter's gradient."""
    rng = np.random.default_rng(100 + seed)
    blocks = int(rng.integers(1, 5))
    ns = [int(v) for v in rng.integers(2, 5, size=blocks + 1)]
    kinds = [str(k) for k in rng.choice(list(TORCH_ACTIVATIONS), size=blocks)]
    loss = str(rng.choice(["cross_entropy", "mse", "sum_of_squares"]))
    x = sd.tensor("x", ns[0])
    h, params = x, []
    for k in range(1, blocks + 1):
        W, b = sd.tensor(f"W{k}", ns[k], ns[k - 1]), sd.tensor(f"b{k}", ns[k])
        params += [W, b]
        h = sd.LAYER_FUNCTIONS[kinds[k - 1]](sd.linear(h, W, b, name=f"z{k}"), name=f"a{k}")
    p = sd.tensor("p", ns[-1])
    L = sd.LAYER_FUNCTIONS[loss](h, p, name="L")
    values = {t.name: rng.uniform(-1.5, 1.5, size=tuple(int(n) for n in t.shape)) for t in [x, p] + params}
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in values.items()}
    out = t["x"]
    for k in range(1, blocks + 1):
        out = TORCH_ACTIVATIONS[kinds[k - 1]](t[f"W{k}"] @ out + t[f"b{k}"])
    if loss == "cross_entropy":
        (-(t["p"] * torch.log_softmax(out, dim=0)).sum()).backward()
    else:
        ((out - t["p"]) ** 2).sum().div(out.numel() if loss == "mse" else 1).backward()
    for wrt in params + [x]:
        got = engine_gradient(backprop(L, wrt), values, {})
        np.testing.assert_allclose(got, t[wrt.name].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"dL/d{wrt.name}: {kinds}, {loss}, sizes {ns}")
