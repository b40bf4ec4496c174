"""The recurrent cells and attention layers of issue 11 against PyTorch float64 autograd.

Each layer is built with symbolic sizes (n inputs, m hidden units, a batch N where torch takes
one) and derived once; its forward value, its element derivative and its chain rule are then
evaluated at random sizes and values (the forward value by SymPy itself, ``helpers.sympy_number``;
the derivatives with NumPy, each intermediate layer they name computed from its own definition), and
compared with torch.nn's modules (RNNCell, LSTMCell,
GRUCell, RNN, LSTM, GRU, MultiheadAttention's functional form) and
torch.nn.functional.scaled_dot_product_attention, differentiated by autograd. The references are
torch's, never the engine's.
"""
import numpy as np
import pytest
import sympy as sp

import symderive as sd
from symderive.backprop import backprop
from symderive.errors import ShapeError
from symderive.tensors import flat_positions
from helpers import rng_for, run_cli, sympy_number, NO_PDF

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-9
n, m, N = sd.sizes("n m N")
SAMPLES = 10      # entries of each Jacobian compared (drawn at random)


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _numbers(layer, values, sizes):
    """Values by name for evaluating the engine's formulas: the given tensors, and every layer the
    formula names (a gate, a step, attention weights) computed from its own definition."""
    from symderive.verify.job import EngineValues
    layers = {layer.name: layer, **layer.layer_inputs()}
    return EngineValues(dict(values), layers.get, {sp.Symbol(k, integer=True, positive=True): sp.Integer(v)
                                                    for k, v in sizes.items()})


def _value_at(expr, numbers, names, pos):
    """A formula's value (NumPy float64) at one index position; the sums are written out."""
    from symderive.verify.job import engine_value
    return engine_value(expr, numbers, numbers.sizes, dict(zip(names, pos)))


def _module_call(module, params, *args):
    from torch.func import functional_call
    return functional_call(module, params, args)


# kind: (gates, build(x, h, c, Wih, Whh, bih, bhh) -> layer, reference(x, h, c, params) -> torch tensor)
def _rnn_ref(nonlinearity):
    def ref(x, h, c, p, n_, m_):
        return _module_call(torch.nn.RNNCell(n_, m_, nonlinearity=nonlinearity, dtype=torch.float64), p, x, h)
    return ref


def _lstm_ref(which):
    def ref(x, h, c, p, n_, m_):
        return _module_call(torch.nn.LSTMCell(n_, m_, dtype=torch.float64), p, x, (h, c))[which]
    return ref


def _gru_ref(x, h, c, p, n_, m_):
    return _module_call(torch.nn.GRUCell(n_, m_, dtype=torch.float64), p, x, h)


CELLS = {
    "rnn_cell tanh": (1, lambda x, h, c, *w: sd.rnn_cell(x, h, *w, name="y"), _rnn_ref("tanh")),
    "rnn_cell relu": (1, lambda x, h, c, *w: sd.rnn_cell(x, h, *w, name="y", nonlinearity="relu"), _rnn_ref("relu")),
    "lstm_cell h": (4, lambda x, h, c, *w: sd.lstm_cell(x, h, c, *w, name="y"), _lstm_ref(0)),
    "lstm_cell c": (4, lambda x, h, c, *w: sd.lstm_cell(x, h, c, *w, name="y", output="c"), _lstm_ref(1)),
    "gru_cell": (3, lambda x, h, c, *w: sd.gru_cell(x, h, *w, name="y"), _gru_ref),
}


def _cell_setup(case, batched, seed=0):
    gates, build, ref = CELLS[case]
    rng = rng_for(f"{case} {batched} {seed}")
    n_, m_, N_ = (int(v) for v in rng.integers(2, 4, size=3))
    lead = (N,) if batched else ()
    x, h, c = sd.tensor("x", *lead, n), sd.tensor("hp", *lead, m), sd.tensor("cp", *lead, m)
    W = [sd.tensor("Wih", gates * m, n), sd.tensor("Whh", gates * m, m), sd.tensor("bih", gates * m),
         sd.tensor("bhh", gates * m)]
    layer = build(x, h, c, *W)
    nlead = (N_,) if batched else ()
    values = {"x": rng.uniform(-1.5, 1.5, nlead + (n_,)), "hp": rng.uniform(-1, 1, nlead + (m_,)),
              "cp": rng.uniform(-1, 1, nlead + (m_,)), "Wih": rng.uniform(-1, 1, (gates * m_, n_)),
              "Whh": rng.uniform(-1, 1, (gates * m_, m_)), "bih": rng.uniform(-1, 1, gates * m_),
              "bhh": rng.uniform(-1, 1, gates * m_)}
    sizes = {"n": n_, "m": m_, "N": N_}

    def reference(**t):
        params = {"weight_ih": t["Wih"], "weight_hh": t["Whh"], "bias_ih": t["bih"], "bias_hh": t["bhh"]}
        return ref(t["x"], t["hp"], t["cp"], params, n_, m_)
    return layer, {"x": x, "hp": h, "cp": c, "Wih": W[0], "Whh": W[1]}, values, sizes, reference, rng


def _forward_check(layer, values, sizes, expected):
    out = layer.free_indices()
    element = layer.element(out)
    names = [i.name for i in out]
    got = [sympy_number(element, values, {**sizes, **dict(zip(names, pos))})
           for pos in flat_positions(tuple(expected.shape))]
    np.testing.assert_allclose(got, expected.detach().numpy().reshape(-1), rtol=TOL, atol=TOL)


def _jacobian_check(layer, wrt, values, sizes, reference, rng):
    leaves = {k: _t(v) for k, v in values.items()}
    J = torch.autograd.functional.jacobian(lambda t: reference(**{**leaves, wrt.name: t}), leaves[wrt.name])
    out_shape, wrt_shape = tuple(J.shape[:layer.rank]), tuple(values[wrt.name].shape)
    d = sd.derivative(layer, wrt)
    numbers = _numbers(layer, values, sizes)
    names = [i.name for i in d.out_idx + d.wrt_idx]
    pairs = [(o, w) for o in flat_positions(out_shape) for w in flat_positions(wrt_shape)]
    for k in rng.choice(len(pairs), size=min(SAMPLES, len(pairs)), replace=False):
        o, w = pairs[k]
        assert _value_at(d.value, numbers, names, o + w) == pytest.approx(float(J[o + w]), rel=TOL, abs=TOL), \
            (o, w)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("case", sorted(CELLS))
def test_cell_forward_matches_torch(case, batched):
    layer, _, values, sizes, reference, _ = _cell_setup(case, batched)
    assert len(layer.shape) == (2 if batched else 1)
    _forward_check(layer, values, sizes, reference(**{k: _t(v) for k, v in values.items()}))


@pytest.mark.parametrize("case,wrt", [(case, wrt) for case in sorted(CELLS) for wrt in ("x", "hp", "cp", "Whh")
                                      if wrt != "cp" or case.startswith("lstm")])    # only the LSTM has a cell state
def test_cell_element_derivative_matches_torch_autograd(case, wrt):
    layer, tensors, values, sizes, reference, rng = _cell_setup(case, batched=wrt != "Whh", seed=1)
    _jacobian_check(layer, tensors[wrt], values, sizes, reference, rng)


@pytest.mark.parametrize("case", sorted(CELLS))
def test_cell_chain_rule_by_the_input_weights_matches_torch(case):
    layer, tensors, values, sizes, reference, rng = _cell_setup(case, batched=True, seed=2)
    leaves = {k: _t(v, grad=k == "Wih") for k, v in values.items()}
    out = reference(**leaves)
    g = rng.uniform(-1, 1, tuple(out.shape))
    out.backward(_t(g))
    rule = sd.chain_rule(layer, tensors["Wih"])
    values[rule.upstream.name] = g
    numbers = _numbers(layer, values, sizes)
    names = [i.name for i in rule.local.wrt_idx]
    positions = flat_positions(tuple(values["Wih"].shape))
    for k in rng.choice(len(positions), size=min(SAMPLES, len(positions)), replace=False):
        assert _value_at(rule.value, numbers, names, positions[k]) == \
            pytest.approx(float(leaves["Wih"].grad[positions[k]]), rel=TOL, abs=TOL)


# ---------------------------------------------------------------------------------------------
# unrolled over T steps

SEQUENCES = {
    "rnn": (1, lambda x, h, c, *w: sd.rnn(x, h, *w, name="H"),
            lambda n_, m_: torch.nn.RNN(n_, m_, dtype=torch.float64), lambda h, c: h),
    "lstm": (4, lambda x, h, c, *w: sd.lstm(x, h, c, *w, name="H"),
             lambda n_, m_: torch.nn.LSTM(n_, m_, dtype=torch.float64), lambda h, c: (h, c)),
    "gru": (3, lambda x, h, c, *w: sd.gru(x, h, *w, name="H"),
            lambda n_, m_: torch.nn.GRU(n_, m_, dtype=torch.float64), lambda h, c: h),
}


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("case", sorted(SEQUENCES))
def test_unrolled_forward_and_backprop_through_time_match_torch(case, batched):
    """T = 3 steps with shared weights: the output sequence against torch.nn.RNN/LSTM/GRU, and
    ∂L/∂W_hh of L = Σ (H − Y)² from ``backprop`` (one δ step per gate and per step, each δ evaluated
    from its own formula top down) against autograd."""
    gates, build, module, state = SEQUENCES[case]
    rng = rng_for(f"{case} {batched}")
    n_, m_, N_, T = int(rng.integers(2, 4)), int(rng.integers(2, 4)), 2, 3
    lead, nlead = ((N,), (N_,)) if batched else ((), ())
    x, h, c = sd.tensor("x", T, *lead, n), sd.tensor("h0", *lead, m), sd.tensor("c0", *lead, m)
    Wih, Whh, b1, b2 = (sd.tensor("Wih", gates * m, n), sd.tensor("Whh", gates * m, m), sd.tensor("bih", gates * m),
                        sd.tensor("bhh", gates * m))
    H = build(x, h, c, Wih, Whh, b1, b2)
    Y = sd.tensor("Y", *H.shape)
    L = sd.mse(H, Y, name="L", reduction="sum")
    values = {"x": rng.uniform(-1.5, 1.5, (T,) + nlead + (n_,)), "h0": rng.uniform(-1, 1, nlead + (m_,)),
              "c0": rng.uniform(-1, 1, nlead + (m_,)), "Wih": rng.uniform(-1, 1, (gates * m_, n_)),
              "Whh": rng.uniform(-1, 1, (gates * m_, m_)), "bih": rng.uniform(-1, 1, gates * m_),
              "bhh": rng.uniform(-1, 1, gates * m_), "Y": rng.uniform(-1, 1, (T,) + nlead + (m_,))}
    sizes = {"n": n_, "m": m_, "N": N_}
    t = {k: _t(v, grad=k == "Whh") for k, v in values.items()}
    params = {"weight_ih_l0": t["Wih"], "weight_hh_l0": t["Whh"], "bias_ih_l0": t["bih"], "bias_hh_l0": t["bhh"]}
    expected, _ = _module_call(module(n_, m_), params, t["x"], state(t["h0"].unsqueeze(0), t["c0"].unsqueeze(0)))
    # forward: each step computed from its own definition (written out over three steps, the formula
    # would be too long for SymPy to evaluate quickly)
    numbers = _numbers(L, values, sizes)
    np.testing.assert_allclose(numbers[H.name], expected.detach().numpy(), rtol=TOL, atol=TOL)
    ((expected - t["Y"]) ** 2).sum().backward()

    bp = backprop(L, Whh)
    for step in bp.steps[:-1]:                   # each δ from its formula, forward layers from their definitions
        shape = tuple(int(sp.sympify(s).subs({n: n_, m: m_, N: N_})) for s in step.layer.shape)
        names = [i.name for i in step.idx]
        numbers[step.delta.name] = np.array([_value_at(step.value, numbers, names, pos)
                                             for pos in flat_positions(shape)]).reshape(shape)
    names = [i.name for i in bp.wrt_idx]
    for pos in flat_positions(values["Whh"].shape):
        assert _value_at(bp.value, numbers, names, pos) == pytest.approx(float(t["Whh"].grad[pos]), rel=TOL, abs=TOL)


def test_backprop_through_time_names_every_step_and_gate():
    x, h0 = sd.tensor("x", 3, n), sd.tensor("h0", m)
    H = sd.lstm(x, h0, sd.tensor("c0", m), sd.tensor("Wih", 4 * m, n), sd.tensor("Whh", 4 * m, m), name="H")
    L = sd.sum_of_squares(H, name="L")
    visited = [s.layer.name for s in backprop(L, H.cell.weight_hh).steps]
    for t in (1, 2, 3):
        assert {f"i{t}", f"f{t}", f"g{t}", f"o{t}", f"c{t}", f"h{t}"} <= set(visited)
    assert visited[-1] == "Whh"


# ---------------------------------------------------------------------------------------------
# attention

L_, S_, E_ = sd.sizes("L S E")


@pytest.mark.parametrize("mask", [None, "float", "bool"])
@pytest.mark.parametrize("batched", [False, True])
def test_scaled_dot_product_attention_matches_torch(mask, batched):
    rng = rng_for(f"sdpa {mask} {batched}")
    l_, s_, e_, v_, b_ = (int(k) for k in rng.integers(2, 4, size=5))
    lead, nlead = ((N,), (b_,)) if batched else ((), ())
    Q, K, V = sd.tensor("Q", *lead, L_, E_), sd.tensor("K", *lead, S_, E_), sd.tensor("V", *lead, S_, 3)
    M = sd.tensor("M", L_, S_) if mask else None
    scale = sp.Rational(1, 3) if mask == "float" else None
    kwargs = {"mask_dtype": mask} if mask else {}
    y = sd.scaled_dot_product_attention(Q, K, V, M, scale=scale, name="y", **kwargs)
    values = {"Q": rng.normal(size=nlead + (l_, e_)), "K": rng.normal(size=nlead + (s_, e_)),
              "V": rng.normal(size=nlead + (s_, 3))}
    if mask == "float":
        values["M"] = rng.normal(size=(l_, s_))
    elif mask == "bool":
        values["M"] = rng.integers(0, 2, size=(l_, s_)).astype(float)
        values["M"][:, 0] = 1.0
    sizes = {"L": l_, "S": s_, "E": e_, "N": b_}

    def reference(Q, K, V, M=None):
        attn = None if M is None else (M > 0.5 if mask == "bool" else M)
        return F.scaled_dot_product_attention(Q, K, V, attn_mask=attn, scale=1 / 3 if mask == "float" else None)
    _forward_check(y, values, sizes, reference(**{k: _t(v) for k, v in values.items()}))
    for wrt in (Q, K, V):
        _jacobian_check(y, wrt, values, sizes, reference, rng)


@pytest.mark.parametrize("batched", [False, True])
def test_multi_head_attention_matches_torch(batched):
    """Two heads of dimension D (embed_dim 2D): forward, ∂y/∂W_q and ∂y/∂W_v against
    torch.nn.functional.multi_head_attention_forward (what nn.MultiheadAttention calls)."""
    D = sd.sizes("D")
    rng = rng_for(f"mha {batched}")
    l_, s_, d_, b_ = (int(k) for k in rng.integers(2, 4, size=4))
    lead, nlead = ((N,), (b_,)) if batched else ((), ())
    q, k = sd.tensor("q", L_, *lead, 2 * D), sd.tensor("k", S_, *lead, 3)
    Wq, Wk, Wv, Wo = (sd.tensor("Wq", 2 * D, 2 * D), sd.tensor("Wk", 2 * D, 3), sd.tensor("Wv", 2 * D, 3),
                      sd.tensor("Wo", 2 * D, 2 * D))
    b, bo = sd.tensor("b", 6 * D), sd.tensor("bo", 2 * D)
    y = sd.multi_head_attention(q, k, k, Wq, Wk, Wv, Wo, b, bo, num_heads=2, name="y")
    E2 = 2 * d_
    values = {"q": rng.normal(size=(l_,) + nlead + (E2,)), "k": rng.normal(size=(s_,) + nlead + (3,)),
              "Wq": rng.normal(size=(E2, E2)) / 2, "Wk": rng.normal(size=(E2, 3)) / 2,
              "Wv": rng.normal(size=(E2, 3)), "Wo": rng.normal(size=(E2, E2)), "b": rng.normal(size=3 * E2),
              "bo": rng.normal(size=E2)}
    sizes = {"L": l_, "S": s_, "D": d_, "N": b_}

    def reference(q, k, Wq, Wk, Wv, Wo, b, bo):
        return F.multi_head_attention_forward(q, k, k, E2, 2, None, b, None, None, False, 0.0, Wo, bo,
                                              training=False, need_weights=False, use_separate_proj_weight=True,
                                              q_proj_weight=Wq, k_proj_weight=Wk, v_proj_weight=Wv)[0]
    # forward: the projections, scores and weights each from their own definition (written out whole,
    # the formula is too long for SymPy to evaluate quickly)
    expected = reference(**{k_: _t(v) for k_, v in values.items()}).detach().numpy()
    np.testing.assert_allclose(_numbers(y, values, sizes)["y"], expected, rtol=TOL, atol=TOL)
    for wrt in (Wq, Wv):     # (∂y/∂key is derived too, but its formula is slow to evaluate entry by entry)
        _jacobian_check(y, wrt, values, sizes, reference, rng)


# ---------------------------------------------------------------------------------------------
# bad inputs: one line with file:line:column and the question

BAD = [
    ("h: rnn_cell(x, hp, Wih, Wih)", "weight_hh Wih has 3 rows, but 1 gate(s) × hidden size 2 is 2"),
    ("h: lstm_cell(x, hp, hp, Wih, Whh)", "weight_hh Whh has 3 rows, but 4 gate(s) × hidden size 3 is 12"),
    ("h: gru_cell(X3, hp, Wih, Whh)", "input X3 must have shape (input_size,) or (N, input_size), got rank 3"),
    ("h: rnn(x, hp, Wih, Whh)", "input x must have shape (T, input_size) or (T, N, input_size), got rank 1"),
    ("h: rnn_cell(x, x, Wih, Whh)", "hx x must have shape (3), got (2)"),
    ("h: rnn_cell(x, hp, Wih, Whh, nonlinearity='sigmoid')", "nonlinearity is one of 'tanh', 'relu'"),
    ("h: multi_head_attention(X, X, X, W6, W6, W6, W6, num_heads=4)", "embed_dim 6 is not divisible by num_heads 4"),
    ("h: scaled_dot_product_attention(X, Z, X)", "query X has 6 features but key Z has 2"),
]


@pytest.mark.parametrize("layer,message", BAD)
def test_bad_inputs_get_one_line_with_their_position(tmp_path, layer, message):
    text = f"""title: bad
questions:
  - id: q1
    tensors: {{x: [2], hp: [3], Wih: [3, 2], Whh: [3, 3], X3: [1, 1, 2], X: [4, 6], Z: [4, 2], W6: [6, 6]}}
    layers:
      {layer}
    ask: shape
    of: h
"""
    (tmp_path / "bad.yaml").write_text(text)
    out = run_cli(["bad.yaml", *NO_PDF], tmp_path)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error:")]
    assert out.returncode == 1
    assert len(errors) == 1, out.stdout + out.stderr
    assert errors[0].startswith("error: bad.yaml:6:") and "question q1" in errors[0] and message in errors[0], errors[0]


def test_an_unrolled_sequence_needs_a_numeric_length():
    T = sd.sizes("T")
    with pytest.raises(ShapeError, match="sequence length T .* must be a number"):
        sd.rnn(sd.tensor("x", T, n), sd.tensor("h0", m), sd.tensor("A", m, n), sd.tensor("B", m, m), name="H")


# ---------------------------------------------------------------------------------------------
# problems/recurrent-and-attention.yaml: the course questions

def _course_problem():
    import pathlib
    from symderive.problem import load_problem
    path = pathlib.Path(__file__).resolve().parents[1] / "problems" / "recurrent-and-attention.yaml"
    problem = load_problem(path)
    return problem, {a.question_id: a for a in problem.solve()}


@pytest.fixture(scope="module")
def course():
    return _course_problem()


def test_every_course_question_is_answered_and_verify_agrees_with_torch(course):
    from symderive import verify
    from symderive.answer import Status
    problem, answers = course
    assert len(answers) >= 6
    assert all(a.status is Status.DERIVED for a in answers.values()), \
        [(a.question_id, a.error) for a in answers.values() if a.status is not Status.DERIVED]
    for report in verify.cross_check(problem, list(answers.values())):
        assert report.entries > 0 and report.outcome == verify.AGREE, f"{report.question}: {report.sentence()}"


def _element(answer):
    from symderive.answer import Kind
    (result,) = [r for r in answer.results if r.kind is Kind.ELEMENT and r.key == "element"]
    return result.value, [idx.name for _, idx in result.axes]


def test_cs231n_rnn_step_backward_from_the_assignments_own_formula(course):
    """CS231n writes next_h = tanh(x Wx + prev_h Wh + b) with Wx (D, H), Wh (H, H): here in torch with
    W_ih = Wxᵀ, W_hh = Whᵀ; dWh and dprev_h by autograd against the answers' element formulas."""
    problem, answers = course
    rng = rng_for("cs231n rnn_step_backward")
    N_, n_, m_ = 3, 4, 2
    values = {"x": rng.normal(size=(N_, n_)), "hp": rng.normal(size=(N_, m_)), "Wih": rng.normal(size=(m_, n_)),
              "Whh": rng.normal(size=(m_, m_)), "b": rng.normal(size=m_), "g": rng.normal(size=(N_, m_))}
    t = {k: _t(v, grad=True) for k, v in values.items()}
    Wx, Wh = t["Wih"].T, t["Whh"].T
    next_h = torch.tanh(t["x"] @ Wx + t["hp"] @ Wh + t["b"])
    next_h.backward(t["g"])
    sizes = {"N": N_, "n": n_, "m": m_}
    for qid, wrt in (("cs231n-rnn-step-dprev-h", "hp"), ("cs231n-rnn-step-dWhh", "Whh")):
        layer = problem.declarations(problem.questions[[q.id for q in problem.questions].index(qid)]).lookup("h")
        value, names = _element(answers[qid])
        numbers = _numbers(layer, values, sizes)
        got = [_value_at(value, numbers, names, pos) for pos in flat_positions(values[wrt].shape)]
        np.testing.assert_allclose(got, t[wrt].grad.numpy().reshape(-1), rtol=TOL, atol=TOL, err_msg=qid)


def test_vaswani_attention_dv_is_the_attention_weights_transposed_times_g(course):
    """∂ℓ/∂V = Aᵀ g with A = softmax(QKᵀ/√E) (Vaswani et al. 3.2.1), A written out here in torch."""
    problem, answers = course
    rng = rng_for("vaswani dV")
    l_, s_, e_ = 3, 4, 2
    values = {"Q": rng.normal(size=(l_, e_)), "K": rng.normal(size=(s_, e_)), "V": rng.normal(size=(s_, e_)),
              "g": rng.normal(size=(l_, e_))}
    A = torch.softmax(_t(values["Q"]) @ _t(values["K"]).T / np.sqrt(e_), dim=-1)
    expected = (A.T @ _t(values["g"])).numpy()
    question = problem.questions[[q.id for q in problem.questions].index("vaswani-sdpa-dV")]
    layer = problem.declarations(question).lookup("y")
    value, names = _element(answers["vaswani-sdpa-dV"])
    numbers = _numbers(layer, values, {"L": l_, "S": s_, "E": e_})
    got = [_value_at(value, numbers, names, pos) for pos in flat_positions((s_, e_))]
    np.testing.assert_allclose(got, expected.reshape(-1), rtol=TOL, atol=TOL)


def test_an_inner_gate_is_renamed_apart_from_a_declared_tensor_of_its_name():
    """The LSTM's cell candidate is named g; a tensor g beside it (L = gᵀh) must stay a different node."""
    x, hp, cp, g = sd.tensor("x", n), sd.tensor("hp", m), sd.tensor("cp", m), sd.tensor("g", m)
    h = sd.lstm_cell(x, hp, cp, sd.tensor("Wih", 4 * m, n), sd.tensor("Whh", 4 * m, m), name="h")
    L = sd.dot(g, h, name="L")
    inner = {node.name: node for node in L.layer_inputs().values()}
    assert "g" not in inner and inner["g_h"].inner_of == "h"
    assert L.leaves()["g"] is g
