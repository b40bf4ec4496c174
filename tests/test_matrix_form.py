"""Matrix forms and the RNN / attention derivations, against references written here.

* nyu21-1.2c / nyu24-1.2.1c (∂l/∂W_x of a gated RNN run for K steps): the derived element
  formula, evaluated numerically, equals torch autograd of the unrolled RNN, both with the
  per-step direct-dependence semantics (h[t−1] detached) and for a real loss whose g[t] are
  the total derivatives ∂L/∂h[t]; so does the "matrix form" shown with the answer;
* the one-step Jacobians ∂h[t]/∂h[t−1] (gated RNN, AttentionRNN(2)) equal
  torch.autograd.functional.jacobian, and so do their matrix forms;
* nyu24-1.2.2f (∂l/∂h[T] from the later steps) equals torch autograd;
* each to_matrix / to_vector rule gives the NumPy matrix it names, and a deliberately broken
  rule (the transpose dropped) is caught by ``check`` and the form is then not shown.

Formulas are 0-based (index values here are 0-based too); every size is random in a small
range and every non-square case uses different sizes, so a transpose cannot pass by accident.
"""
import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symderive import matrix_form
from symderive.answer import Status
from symderive.display_names import declared
from symderive.evaluate import evaluate
from symderive.indices import make_index
from symderive.matrix_form import (Diag, Matrix, Outer, Product, TimeSum, check, latex_in_base,
                                   to_matrix, to_vector)
from symderive.problem import load_problem
from symderive.tensors import size_symbol
from helpers import rng_for  # noqa: E402

torch = pytest.importorskip("torch")

PROBLEMS = Path(__file__).resolve().parents[1] / "problems"
HW21, HW24 = PROBLEMS / "nyu-dl-2021-hw3.yaml", PROBLEMS / "nyu-dl-2024-hw2.yaml"
QUESTIONS = {HW21: ["nyu21-1.2c", "nyu21-1.2d"],
             HW24: ["nyu24-1.2.1c", "nyu24-1.2.1d", "nyu24-1.2.2e", "nyu24-1.2.2f"]}
TOL = 1e-10


@pytest.fixture(scope="module")
def answers():
    """Each RNN / attention question solved once."""
    out = {}
    for path, ids in QUESTIONS.items():
        for answer in load_problem(path).solve(ids=set(ids)):
            out[answer.question_id] = answer
    return out


def result(answer, label):
    found = [r for r in answer.results if r.label == label]
    assert found, f"{answer.question_id}: no {label!r} result ({[r.label for r in answer.results]}); " \
                  f"error {answer.error!r}"
    return found[0]


def free_index_names(element):
    """Index names of the left-hand side, in order: ∂h_{i}/∂hp_{p} → [i, p]; ∂l/∂Wx_{p,q} → [p, q]."""
    lhs = element.latex.split(" = ")[0]
    return [name.strip() for group in re.findall(r"_\{([^}]*)\}", lhs) for name in group.split(",")]


def symbols_by_name(expr):
    return {s.name: s for s in expr.free_symbols if isinstance(s, (sp.Symbol, sp.Idx))}


def element_array(answer, shape, arrays, scalars):
    """The "element" formula evaluated at every index value: an array of ``shape``.

    ``scalars``: {name: value} for sizes and scalar layers (looked up by name in the formula)."""
    element = result(answer, "element")
    value = element.value
    names = symbols_by_name(value)
    indices = [names[n] for n in free_index_names(element)]
    scalar_values = {names[n]: v for n, v in scalars.items() if n in names}
    out = np.zeros(shape)
    for pos in np.ndindex(*shape):
        out[pos] = evaluate(value, arrays, scalar_values, dict(zip(indices, pos)))
    return out


def matrix_form_array(answer, arrays, scalars):
    """The answer's matrix form rebuilt from its element formula, shown as printed, and evaluated."""
    element = result(answer, "element")
    value = element.value
    names = symbols_by_name(value)
    free = [names[n] for n in free_index_names(element)]
    # laid out as the sheet prints it (tidy_node only reorders and factors; the value is compared below)
    node = matrix_form.tidy_node(to_matrix(value, *free) if len(free) == 2 else to_vector(value, free[0]))
    with declared(answer.names):           # printed with the question's display names, as the sheet
        assert latex_in_base(node, answer.index_base) == result(answer, "matrix form").value
    env_scalars = {names[n]: sp.Float(v) if not isinstance(v, int) else sp.Integer(v)
                   for n, v in scalars.items() if n in names}
    return np.asarray(node.value({"tensors": arrays, "scalars": env_scalars, "indices": {}}))


def assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=TOL, atol=TOL, err_msg=what)


def sizes_for(name, count=3, low=2, high=4):
    """A few random (n, m) pairs with n != m, so transposes show."""
    rng = rng_for(name)
    out = []
    while len(out) < count:
        n, m = (int(v) for v in rng.integers(low, high + 1, size=2))
        if n != m:
            out.append((n, m))
    return out


# ---------------------------------------------------------------------------------------------
# The gated RNN:  c[t] = σ(W_c x[t] + W_h h[t−1]),  h[t] = c[t] ⊙ h[t−1] + (1 − c[t]) ⊙ W_x x[t]
# ---------------------------------------------------------------------------------------------
def gated_step(x, hp, Wc, Wh, Wx):
    c = torch.sigmoid(Wc @ x + Wh @ hp)
    return c * hp + (1 - c) * (Wx @ x), c


def gated_weights(rng, n, m, scale=0.7):
    return {name: torch.tensor(rng.normal(size=shape) * scale) for name, shape in
            (("Wc", (m, n)), ("Wh", (m, m)), ("Wx", (m, n)))}


def run_gated(xs, weights, detach):
    """h[1..K] from h[0] = 0; with ``detach`` each step sees h[t−1] as a constant."""
    m = weights["Wx"].shape[0]
    h, hs, cs = torch.zeros(m, dtype=torch.float64), [], []
    for x in xs:
        hp = h.detach() if detach else h
        h, c = gated_step(x, hp, weights["Wc"], weights["Wh"], weights["Wx"])
        hs.append(h)
        cs.append(c)
    return hs, cs


def chain_arrays(xs, cs, g, weights):
    arrays = {"xs": xs.numpy(), "cs": torch.stack(cs).detach().numpy(), "g": np.asarray(g)}
    arrays.update({k: v.detach().numpy() for k, v in weights.items()})
    return arrays


def gated_cases(name):
    """Random sizes, inputs x[1..K] and weights (requiring grad) for a run of the gated RNN."""
    rng = rng_for(name)
    for n, m in sizes_for(name):
        K = int(rng.integers(2, 5))
        weights = {k: v.requires_grad_() for k, v in gated_weights(rng, n, m).items()}
        yield {"n": n, "m": m, "K": K}, torch.tensor(rng.normal(size=(K, n))), weights, rng


@pytest.mark.parametrize("qid", ["nyu21-1.2c", "nyu24-1.2.1c"])
def test_gated_rnn_dl_dWx_direct_dependence(answers, qid):
    """∂l/∂W_x = Σ_t (∂h[t]/∂W_x with h[t−1] held fixed)ᵀ g[t], l = Σ_t g[t]·h[t]."""
    answer = answers[qid]
    assert answer.status is Status.DERIVED, answer.error
    for sizes, xs, weights, rng in gated_cases(qid):
        g = rng.normal(size=(sizes["K"], sizes["m"]))
        hs, cs = run_gated(xs, weights, detach=True)
        loss = sum(torch.dot(torch.tensor(g_t), h) for g_t, h in zip(g, hs))
        (reference,) = torch.autograd.grad(loss, weights["Wx"])
        arrays = chain_arrays(xs, cs, g, weights)
        shape = (sizes["m"], sizes["n"])
        assert_close(element_array(answer, shape, arrays, sizes), reference.numpy(), f"{qid} element, {sizes}")
        assert_close(matrix_form_array(answer, arrays, sizes), reference.numpy(), f"{qid} matrix form, {sizes}")


@pytest.mark.parametrize("qid", ["nyu21-1.2c", "nyu24-1.2.1c"])
def test_gated_rnn_dl_dWx_with_total_upstream_is_the_whole_gradient(answers, qid):
    """With g[t] the TOTAL ∂L/∂h[t] of a real loss (through all later steps), the formula gives
    the full ∂L/∂W_x of the unrolled network (the question's note)."""
    for sizes, xs, weights, rng in gated_cases(qid + "-total"):
        targets = torch.tensor(rng.normal(size=(sizes["K"], sizes["m"])))
        hs, cs = run_gated(xs, weights, detach=False)
        for h in hs:
            h.retain_grad()
        loss = sum(((h - y) ** 2).sum() for h, y in zip(hs, targets)) + torch.tanh(hs[-1]).sum()
        loss.backward()
        g = np.stack([h.grad.numpy() for h in hs])
        arrays = chain_arrays(xs, cs, g, weights)
        assert_close(element_array(answers[qid], (sizes["m"], sizes["n"]), arrays, sizes),
                     weights["Wx"].grad.numpy(), f"{qid} with total g, {sizes}")


@pytest.mark.parametrize("qid", ["nyu21-1.2c", "nyu24-1.2.1c"])
def test_gated_rnn_matrix_form_is_a_sum_of_outer_products(answers, qid):
    shown = result(answers[qid], "matrix form").latex
    assert "odot" in shown and "^{T}" in shown, shown
    assert r"\sum_{t=1}^{K}" in shown, shown          # the time sum, in the sheet's base (1)
    assert "c[t]" in shown and "x[t]^{T}" in shown, shown       # the question's names (tex: c, x)


@pytest.mark.parametrize("qid", ["nyu21-1.2d", "nyu24-1.2.1d"])
def test_gated_rnn_one_step_jacobian(answers, qid):
    answer = answers[qid]
    assert answer.status is Status.DERIVED, answer.error
    rng = rng_for(qid)
    for n, m in sizes_for(qid):
        weights = gated_weights(rng, n, m)
        x, hp = torch.tensor(rng.normal(size=n)), torch.tensor(rng.normal(size=m))
        reference = torch.autograd.functional.jacobian(
            lambda h: gated_step(x, h, weights["Wc"], weights["Wh"], weights["Wx"])[0], hp).numpy()
        _, c = gated_step(x, hp, weights["Wc"], weights["Wh"], weights["Wx"])
        arrays = {"x": x.numpy(), "hp": hp.numpy(), "c": c.numpy(), **{k: v.numpy() for k, v in weights.items()}}
        sizes = {"n": n, "m": m}
        assert_close(element_array(answer, (m, m), arrays, sizes), reference, f"{qid} n={n} m={m}")
        assert_close(matrix_form_array(answer, arrays, sizes), reference, f"{qid} matrix form n={n} m={m}")


# ---------------------------------------------------------------------------------------------
# AttentionRNN(2): w_i = (Q_i s_i)·(K_i s_i), a = softmax(w), h = Σ_i a_i V_i s_i,
# s_0 = x[t], s_1 = h[t−1], s_2 = h[t−2]
# ---------------------------------------------------------------------------------------------
def attention_weights(rng, n, m, scale=0.5):
    out = {}
    for k in range(3):
        cols = n if k == 0 else m
        for letter in "QKV":
            out[f"{letter}{k}"] = torch.tensor(rng.normal(size=(m, cols)) * scale)
    return out


def attention_step(x, hp, hpp, W):
    s = (x, hp, hpp)
    scores = torch.stack([torch.dot(W[f"Q{k}"] @ s[k], W[f"K{k}"] @ s[k]) for k in range(3)])
    a = torch.softmax(scores, dim=0)
    return sum(a[k] * (W[f"V{k}"] @ s[k]) for k in range(3)), a


def test_attention_rnn_one_step_jacobian(answers):
    answer = answers["nyu24-1.2.2e"]
    assert answer.status is Status.DERIVED, answer.error
    rng = rng_for("attention-e")
    for n, m in sizes_for("attention-e", count=2):
        W = attention_weights(rng, n, m)
        x, hp, hpp = (torch.tensor(rng.normal(size=k)) for k in (n, m, m))
        reference = torch.autograd.functional.jacobian(lambda h: attention_step(x, h, hpp, W)[0], hp).numpy()
        _, a = attention_step(x, hp, hpp, W)
        arrays = {"x": x.numpy(), "hp": hp.numpy(), "hpp": hpp.numpy(), **{k: v.numpy() for k, v in W.items()}}
        scalars = {"n": n, "m": m, "a0": float(a[0]), "a1": float(a[1]), "a2": float(a[2])}
        assert_close(element_array(answer, (m, m), arrays, scalars), reference, f"n={n} m={m}")
        assert_close(matrix_form_array(answer, arrays, scalars), reference, f"matrix form n={n} m={m}")


def test_attention_rnn_gradient_from_later_steps(answers):
    """∂l/∂h[T] = Σ_{t>T} (∂h[t]/∂h[T], direct)ᵀ g[t]: every h[T] a leaf, l = Σ_t g[t]·h[t]
    with step t reading the leaves h[t−1], h[t−2] (zero before the start); only steps T+1 and
    T+2 read h[T], so the gradient at h[T] is exactly the sum over the later steps."""
    answer = answers["nyu24-1.2.2f"]
    assert answer.status is Status.DERIVED, answer.error
    rng = rng_for("attention-f")
    for (n, m), K in zip(sizes_for("attention-f", count=2, high=3), (4, 3)):
        W = attention_weights(rng, n, m)
        xs = torch.tensor(rng.normal(size=(K, n)))
        hs = torch.tensor(rng.normal(size=(K, m)), requires_grad=True)
        g = torch.tensor(rng.normal(size=(K, m)))
        zero = torch.zeros(m, dtype=torch.float64)
        loss, a = 0, []
        for t in range(K):
            h1 = hs[t - 1] if t >= 1 else zero
            h2 = hs[t - 2] if t >= 2 else zero
            h, weights = attention_step(xs[t], h1, h2, W)
            loss = loss + torch.dot(g[t], h)
            a.append(weights.detach().numpy())
        (reference,) = torch.autograd.grad(loss, hs)
        a = np.array(a)
        arrays = {"xs": xs.numpy(), "hs": hs.detach().numpy(), "g": g.numpy(),
                  "a0": a[:, 0], "a1": a[:, 1], "a2": a[:, 2], **{k: v.numpy() for k, v in W.items()}}
        arrays.update(_deltas_of_stack(answers, {"n": n, "m": m, "K": K}, arrays))
        got = element_array(answer, (K, m), arrays, {"n": n, "m": m, "K": K})
        assert_close(got, reference.numpy(), f"n={n} m={m} K={K}")


def _deltas_of_stack(answers, sizes, arrays):
    """The boxed answer of nyu24-1.2.2f is the δ form (derived layer by layer, issue 12): each δ^w
    computed from its own step on the sheet (top down, NumPy), as --verify does."""
    import sympy as sp
    from symderive.asks.chain_rule import stack
    from symderive.backprop import delta_values
    from symderive.verify.job import EngineValues
    problem = load_problem(PROBLEMS / "nyu-dl-2024-hw2.yaml")
    question = problem.question("nyu24-1.2.2f")
    from symderive.asks.context import Context
    ctx = Context(problem, question, problem.declarations(question))
    bp = stack(ctx, ctx.tensor("of"), ctx.tensor("wrt"), "g", "l")
    numbers = {sp.Symbol(k, integer=True, positive=True): sp.Integer(v) for k, v in sizes.items()}
    env = EngineValues(dict(arrays), ctx.decls.lookup, numbers)
    delta_values(bp, env, numbers)
    return {s.delta.name: env[s.delta.name] for s in bp.steps[:-1]}


# ---------------------------------------------------------------------------------------------
# The rules, one by one, on hand-built index expressions
# ---------------------------------------------------------------------------------------------
N, M, T = size_symbol("n"), size_symbol("m"), size_symbol("K")
I, P, J = make_index("i", M), make_index("p", N), make_index("j", N)
IP = make_index("p", M)                     # a column index over the same range as i (square)
TT = make_index("t", T)
a, b, u, v = (sp.IndexedBase(s, real=True) for s in "abuv")
W, S, G, X, C = (sp.IndexedBase(s, real=True) for s in ("W", "S", "G", "X", "C"))
CONCRETE = {"n": 3, "m": 4, "K": 3}          # n != m: a missing transpose changes the shape


def concrete_arrays(seed):
    rng = rng_for(seed)
    n, m, k = CONCRETE["n"], CONCRETE["m"], CONCRETE["K"]
    shapes = {"a": (m,), "b": (n,), "u": (m,), "v": (n,), "W": (m, n), "S": (m, m),
              "G": (k, m), "X": (k, n), "C": (k, m)}
    return {name: rng.normal(size=shape) for name, shape in shapes.items()}


SHAPES = {"a": (M,), "b": (N,), "u": (M,), "v": (N,), "W": (M, N), "S": (M, M), "G": (T, M),
          "X": (T, N), "C": (T, M)}

# name: (index expression, free indices, reference from the arrays, expected node type or None,
#        text the LaTeX must contain)
RULES = {
    "diag": (sp.KroneckerDelta(I, IP) * a[I], (I, IP), lambda A: np.diag(A["a"]), Diag, r"\operatorname{diag}"),
    "matrix": (W[I, P], (I, P), lambda A: A["W"], Matrix, "W"),
    "transpose": (W[I, P], (P, I), lambda A: A["W"].T, Matrix, "W^{T}"),
    "diag-matrix-diag": (a[I] * W[I, P] * b[P], (I, P), lambda A: np.diag(A["a"]) @ A["W"] @ np.diag(A["b"]),
                         Product, r"\operatorname{diag}"),
    "outer": (a[I] * b[P], (I, P), lambda A: np.outer(A["a"], A["b"]), Outer, "^{T}"),
    "matvec": (sp.Sum(W[I, J] * b[J], (J, 0, N - 1)), (I,), lambda A: A["W"] @ A["b"], Product, "W b"),
    "transpose-matvec": (sp.Sum(W[I, P] * a[I], (I, 0, M - 1)), (P,), lambda A: A["W"].T @ A["a"], Product,
                         "W^{T} a"),
    "hadamard": (a[I] * u[I], (I,), lambda A: A["a"] * A["u"], Product, r"\odot"),
    "function": (sp.tanh(a[I]) * u[I] ** 2, (I,), lambda A: np.tanh(A["a"]) * A["u"] ** 2, Product, r"\tanh"),
    # a sum over samples of outer products of rows is a product with the data matrices
    "sample-sum-product": (sp.Sum(G[TT, I] * X[TT, P], (TT, 0, T - 1)), (I, P), lambda A: A["G"].T @ A["X"],
                           Product, "G^{T} X"),
    # ... unless the rows are themselves products: then it stays a sum of outer products
    "time-sum-outer": (sp.Sum(G[TT, I] * C[TT, I] * X[TT, P], (TT, 0, T - 1)), (I, P),
                       lambda A: (A["G"] * A["C"]).T @ A["X"], TimeSum, r"\sum_{t="),
    "time-sum-diag": (sp.Sum(sp.KroneckerDelta(I, IP) * C[TT, I] * G[TT, I], (TT, 0, T - 1)), (I, IP),
                      lambda A: np.diag((A["C"] * A["G"]).sum(axis=0)), TimeSum, r"\operatorname{diag}"),
    "sum-of-terms": (sp.KroneckerDelta(I, IP) * a[I] + a[I] * S[I, IP] - u[I] * S[I, IP], (I, IP),
                     lambda A: np.diag(A["a"]) + np.diag(A["a"] - A["u"]) @ A["S"], None, "S"),
}


def node_for(expr, free):
    return to_matrix(expr, *free) if len(free) == 2 else to_vector(expr, free[0])


@pytest.mark.parametrize("name", list(RULES))
def test_rule_gives_the_named_matrix(name):
    expr, free, reference, kind, text = RULES[name]
    node = node_for(expr, free)
    if kind is not None:
        assert isinstance(node, kind), (name, node)
    assert text in node.latex(), (name, node.latex())
    arrays = concrete_arrays(name)
    scalars = {s: sp.Integer(CONCRETE[s.name]) for s in (N, M, T)}
    got = np.asarray(node.value({"tensors": arrays, "scalars": scalars, "indices": {}}))
    assert_close(got, reference(arrays), name)


@pytest.mark.parametrize("name", list(RULES))
def test_rule_passes_check(name):
    expr, free, _, _, _ = RULES[name]
    node = node_for(expr, free)
    used = {s.name for s in expr.free_symbols}
    tensors = {k: shape for k, shape in SHAPES.items() if k in used}
    assert check(node, expr, free, tensors, [N, M, T]) < 1e-12


def test_transpose_rule_latex_in_base_one():
    node = to_matrix(sp.Sum(G[TT, I] * C[TT, I] * X[TT, P], (TT, 0, T - 1)), I, P)
    assert latex_in_base(node, 1).startswith(r"\sum_{t=1}^{K}")
    assert latex_in_base(node, 0).startswith(r"\sum_{t=0}^{K - 1}")


# ---------------------------------------------------------------------------------------------
# A wrong rule is caught
# ---------------------------------------------------------------------------------------------
TRANSPOSED = """\
title: transposed
index_base: 1
sizes: [n]
tensors:
  x: [n]
  A: [n, n]
layers:
  "y[i]": Sum(A[j, i] * x[j], (j, 1, n))
questions:
  - id: dy-dx
    ask: derivative
    of: y
    wrt: x
"""


def drop_transpose(monkeypatch):
    monkeypatch.setattr(matrix_form.Matrix, "value", lambda self, env: env["tensors"][self.name])


def test_dropped_transpose_is_caught_by_check(monkeypatch):
    square = W[IP, I]                       # entry (i, p) is W_pi: the matrix is Wᵀ (square)
    node = to_matrix(square, I, IP)
    assert node == Matrix("W", transpose=True)
    tensors = {"W": (M, M)}
    assert check(node, square, (I, IP), tensors, [M]) < 1e-12
    drop_transpose(monkeypatch)
    assert check(node, square, (I, IP), tensors, [M]) > 1e-2


def test_dropped_transpose_omits_the_matrix_form(tmp_path, monkeypatch):
    path = tmp_path / "transposed.yaml"
    path.write_text(TRANSPOSED)
    (answer,) = load_problem(path).solve()
    assert answer.status is Status.DERIVED, answer.error
    assert "^{T}" in result(answer, "matrix form").latex
    drop_transpose(monkeypatch)
    (answer,) = load_problem(path).solve()
    assert answer.status is Status.DERIVED, answer.error
    assert "matrix form" not in [r.label for r in answer.results]
    assert "element" in [r.label for r in answer.results]
