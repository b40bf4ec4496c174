"""Course forms of the backward passes of a vanilla RNN step and of scaled dot-product attention (issue 12),
in problems/recurrent-and-attention.yaml.

Each expected form below is written by hand from the course's own solution: CS231n assignment 3
(rnn_step_backward: da = dnext_h * (1 - next_h**2), dprev_h = da @ Wh.T, dWh = prev_h.T @ da, dx = da @ Wx.T,
db = da.sum(0), with Wh = W_hhᵀ and Wx = W_ihᵀ in PyTorch's layout), CS224n lecture 6 (∂h⁽ᵗ⁾/∂h⁽ᵗ⁻¹⁾ =
diag(tanh'(…)) W_h, so the gradient is W_hᵀ δ), d2l 9.7 (BPTT: ∂L/∂W_hh = Σ_t δ_t h_{t−1}ᵀ) and the FlashAttention
paper's standard backward pass (dV = Pᵀ dO, dP = dO Vᵀ, D = rowsum(dO ∘ O) = rowsum(P ∘ dP), dS = P ∘ (dP − D),
dQ = dS K/√d, dK = dSᵀ Q/√d). The printed form is compared with it; the form, evaluated with the intermediates
computed here in NumPy from those formulas, and the hand-written reference are compared with PyTorch's autograd
in float64 at three random sizes.
"""
import re

import numpy as np
import pytest
import sympy as sp

from symderive.answer import Kind, Status
from symderive.asks.matrix_view import form_of, matrix_result
from symderive.course_forms import BackwardForm, layer_backward, loss_backward
from symderive.derivative import graph_names, upstream_name
from symderive.display_names import declared
from symderive.matrix_form import latex_in_base, tidy_node
from symderive.problem import load_problem
from symderive.tensors import Tensor
from helpers import derivative_question, result, rng_for  # noqa: E402

torch = pytest.importorskip("torch")
TOL = 1e-10
PROBLEM = "problems/recurrent-and-attention.yaml"

#: qid: (the variable, the course's form of ∂L/∂variable at the sheet's index base 1).
COURSE_FORMS = {
    "cs231n-rnn-step-dprev-h": ("hp", r"\delta W_{\mathrm{hh}}"),
    "cs231n-rnn-step-dWhh": ("Whh", r"\delta^{T} h_{\mathrm{prev}}"),
    "cs231n-rnn-step-dx": ("x", r"\delta W_{\mathrm{ih}}"),
    "cs231n-rnn-step-db": ("b", r"\sum_{i=1}^{N} \left(\delta[i]\right)"),     # n is a size here
    "cs224n-rnn-dh-dhprev": ("hp", r"W_h^{T} \delta"),
    # CS231n lstm_step_backward: dnext_c += dnext_h * o * (1 - tanh(next_c)**2); dprev_c = dnext_c * f
    "cs231n-lstm-step-dprev-c-chain": ("cp", r"\delta_{c} \odot f"),
    # d2l 10.1's per-gate weights: dprev_h = Σ_gates W_h·ᵀ δ_· (CS231n: da @ Wh.T with da the four stacked)
    "d2l-lstm-step-dprev-h": ("hp", r"W_{h,f}^{T} \delta_{f} + W_{h,g}^{T} \delta_{g} + W_{h,i}^{T} \delta_{i} + "
                                    r"W_{h,o}^{T} \delta_{o}"),
    "vaswani-sdpa-dV": ("V", r"P^{T} g"),
    "flash-attention-dQ": ("Q", r"\frac{1}{\sqrt{E}} \mathrm{dS} K"),
    "flash-attention-dK": ("K", r"\frac{1}{\sqrt{E}} \mathrm{dS}^{T} Q"),
    "cs224n-attention-dhenc": ("henc", r"P^{T} g + \mathrm{dS}^{T} q"),       # keys and values at once, scale 1
}

#: The intermediates' forms the steps must show (the course's), by question kind.
RNN_STEPS = [r"\delta = \left(1 - \left(h_\mathrm{next}\right)^{\circ 2}\right) \odot g"]
ATTENTION_STEPS = [r"\mathrm{dP} = g VALUES^{T}", r"\Delta = \operatorname{rowsum}\left(P \odot \mathrm{dP}\right)",
                   r"\mathrm{dS} = P \odot \mathrm{dP} - \operatorname{diag}\left(\Delta\right) P"]


def unbraced(latex):
    return re.sub(r"[{}]", "", latex)


#: The LSTM chain-rule questions are test data: their inlined local derivative is wider than a sheet's page.
LSTM_PROBLEM = "tests/data/forms/lstm-chain-forms.yaml"


class Problems:
    """The two problem files as one: each question answered by its own file."""

    def __init__(self, *paths):
        self.files = [load_problem(path) for path in paths]
        self.questions = [q for problem in self.files for q in problem.questions]

    def declarations(self, question):
        return next(p for p in self.files if question in p.questions).declarations(question)


@pytest.fixture(scope="module")
def solved():
    problems = Problems(PROBLEM, LSTM_PROBLEM)
    wanted = set(COURSE_FORMS) | {"d2l-bptt-dWhh", "d2l-attention-regression-dQ", "cs224n-rnn-jacobian",
                                  "vaswani-mha-dWv"}
    return problems, {a.question_id: a for problem in problems.files
                      for a in problem.solve(ids=wanted & {q.id for q in problem.questions})}


@pytest.mark.parametrize("qid", list(COURSE_FORMS))
def test_the_matrix_form_is_the_courses(solved, qid):
    _, answers = solved
    answer = answers[qid]
    assert answer.status is Status.DERIVED, answer.error
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == unbraced(COURSE_FORMS[qid][1])
    steps = unbraced(" ".join(s.latex for s in answer.steps))
    for form in (ATTENTION_STEPS if qid.startswith(("flash", "cs224n-attention")) else
                 RNN_STEPS if qid.startswith("cs231n-rnn") else []):
        values = r"{h^{\mathrm{enc}}}" if qid == "cs224n-attention-dhenc" else "V"
        assert unbraced(form.replace("VALUES", values)) in steps, (qid, form)


def test_bptt_gradient_is_one_outer_product_per_step(solved):
    """d2l 9.7: ∂L/∂W_hh = Σ_t δ^{a_t} h_{t−1}ᵀ, shown beside the last backprop step and checked."""
    _, answers = solved
    last = [s for s in answers["d2l-bptt-dWhh"].steps if s.why.startswith("the gradient")][-1]
    assert unbraced(r"\delta^{a_1}\, h_0^{T} + \delta^{a_2}\, h_1^{T} + \delta^{a_3}\, h_2^{T}") in \
        unbraced(last.latex)


def softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def rnn_case(qid, rng):
    """(leaves, hand-computed intermediates, the course's reference gradient, torch output of the leaves, variable)."""
    N, n, m = (int(v) for v in rng.integers(2, 6, size=3))
    batched = qid != "cs224n-rnn-dh-dhprev"
    lead = (N,) if batched else ()
    x, hp = rng.normal(size=lead + (n,)), rng.normal(size=lead + (m,))
    Wih, Whh, b, g = rng.normal(size=(m, n)), rng.normal(size=(m, m)), rng.normal(size=m), rng.normal(size=lead + (m,))
    h = np.tanh(x @ Wih.T + hp @ Whh.T + b)
    da = g * (1 - h ** 2)                                        # CS231n: dnext_h * (1 - next_h ** 2)
    if batched:
        names = {"x": "x", "hp": "hp", "Wih": "Wih", "Whh": "Whh", "b": "b"}
        reference = {"hp": da @ Whh, "Whh": da.T @ hp, "x": da @ Wih, "b": da.sum(axis=0)}
    else:
        names = {"x": "e", "hp": "hp", "Wih": "We", "Whh": "Wh", "b": "b1"}
        reference = {"hp": Whh.T @ da}
    leaves = {names[k]: v for k, v in {"x": x, "hp": hp, "Wih": Wih, "Whh": Whh, "b": b}.items()}

    def forward(t):
        return torch.tanh(t[names["x"]] @ t[names["Wih"]].T + t[names["hp"]] @ t[names["Whh"]].T + t[names["b"]])
    variable = COURSE_FORMS[qid][0]
    return ({**leaves, "g": g}, {"h": h, "delta": da}, reference[{v: k for k, v in names.items()}[variable]],
            forward, variable)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_case(qid, rng):
    """CS231n's lstm_step_backward written out in NumPy (one example), torch.nn.LSTMCell for autograd."""
    n, m = (int(v) for v in rng.integers(2, 5, size=2))
    leaves = {"x": rng.normal(size=n), "hp": rng.normal(size=m), "cp": rng.normal(size=m),
              "Wih": rng.normal(size=(4 * m, n)), "Whh": rng.normal(size=(4 * m, m)),
              "bih": rng.normal(size=4 * m), "bhh": rng.normal(size=4 * m)}
    up = rng.normal(size=m)
    a = leaves["Wih"] @ leaves["x"] + leaves["bih"] + leaves["Whh"] @ leaves["hp"] + leaves["bhh"]
    i, f, g, o = sigmoid(a[:m]), sigmoid(a[m:2 * m]), np.tanh(a[2 * m:3 * m]), sigmoid(a[3 * m:])
    c = f * leaves["cp"] + i * g
    dc = up * o * (1 - np.tanh(c) ** 2)
    da = np.concatenate([dc * g * i * (1 - i), dc * leaves["cp"] * f * (1 - f), dc * i * (1 - g ** 2),
                         up * np.tanh(c) * o * (1 - o)])
    reference = {"cp": dc * f, "hp": leaves["Whh"].T @ da}            # CS231n: dprev_h = da @ Wh.T (stacked)
    blocks = {f"Wh_{letter}": leaves["Whh"][k * m:(k + 1) * m] for k, letter in enumerate("ifgo")}
    deltas = {f"delta_{letter}": da[k * m:(k + 1) * m] for k, letter in enumerate("ifgo")}
    intermediates = {"i": i, "f": f, "o": o, "c": c, "delta_c": dc, **blocks, **deltas}

    def forward(t):
        from torch.func import functional_call
        cell = torch.nn.LSTMCell(n, m, dtype=torch.float64)
        params = {"weight_ih": t["Wih"], "weight_hh": t["Whh"], "bias_ih": t["bih"], "bias_hh": t["bhh"]}
        return functional_call(cell, params, (t["x"], (t["hp"], t["cp"])))[0]
    variable = COURSE_FORMS[qid][0]
    return {**leaves, "g": up}, intermediates, reference[variable], forward, variable


def attention_case(qid, rng):
    L, S, E = (int(v) for v in rng.integers(2, 6, size=3))
    if qid == "cs224n-attention-dhenc":
        m = int(rng.integers(1, 4))
        hdec, henc, W = rng.normal(size=(1, m)), rng.normal(size=(S, 2 * m)), rng.normal(size=(m, 2 * m))
        q = hdec @ W
        Q, K, V, scale, g = q, henc, henc, 1.0, rng.normal(size=(1, 2 * m))
        leaves = {"hdec": hdec, "henc": henc, "W": W, "g": g}
        extra = {"q": q}

        def forward(t):
            return torch.softmax(t["hdec"] @ t["W"] @ t["henc"].T, dim=-1) @ t["henc"]
    else:
        Q, K, V = rng.normal(size=(L, E)), rng.normal(size=(S, E)), rng.normal(size=(S, E))
        scale, g = 1 / np.sqrt(E), rng.normal(size=(L, E))
        leaves, extra = {"Q": Q, "K": K, "V": V, "g": g}, {}

        def forward(t):
            return torch.nn.functional.scaled_dot_product_attention(t["Q"], t["K"], t["V"])
    P = softmax(scale * Q @ K.T)
    dP = g @ V.T
    D = (P * dP).sum(axis=1)                                     # FlashAttention: D = rowsum(dO ∘ O)
    assert np.allclose(D, (g * (P @ V)).sum(axis=1))
    dS = P * (dP - D[:, None])
    reference = {"V": P.T @ g, "Q": scale * dS @ K, "K": scale * dS.T @ Q, "henc": P.T @ g + scale * dS.T @ Q}
    variable = COURSE_FORMS[qid][0]
    return (leaves, {**extra, "P": P, "dP": dP, "Delta": D, "dS": dS}, reference[variable], forward, variable)


@pytest.mark.parametrize("qid", list(COURSE_FORMS))
def test_form_and_course_reference_equal_torch_autograd(solved, qid):
    problem, answers = solved
    answer = answers[qid]
    question, decls, of, wrt, element, free = derivative_question(problem, answer, qid)
    loss = str(question.spec.get("loss", "l"))
    upstream = upstream_name(of, wrt, question.spec.get("upstream"))
    backward = layer_backward(of, wrt, Tensor(upstream, of.shape), free,
                              decls.names() | graph_names(of, wrt) | {upstream, loss})
    node = tidy_node(form_of(backward.gradient, free))
    with declared(answer.names):                   # the form evaluated here is the one printed
        assert latex_in_base(node, answer.index_base) == result(answer, Kind.MATRIX_FORM).value
    rng = rng_for(f"rnn-attention-forms-{qid}")
    case = {"scaled_dot_product_attention": attention_case, "lstm_cell": lstm_case}.get(of.kind, rnn_case)
    for _ in range(3):
        leaves, intermediates, reference, forward, variable = case(qid, rng)
        tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in leaves.items()}
        out = forward(tensors)
        (expected,) = torch.autograd.grad(out, tensors[variable], grad_outputs=tensors["g"])
        leaves[upstream] = leaves.pop("g")
        expected = expected.numpy()
        np.testing.assert_allclose(reference, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: the course's formula")
        sizes = {sp.Symbol(name, integer=True, positive=True): sp.Integer(n) for name, n in
                 {"E": leaves.get("Q", np.zeros((1, 1))).shape[-1], "N": leaves.get("x", np.zeros((1,))).shape[0]}
                 .items()}
        arrays = {**leaves, **intermediates}
        assert {n.tensor.name for n in backward.named} <= set(arrays)
        form = np.asarray(node.value({"tensors": arrays, "scalars": sizes, "indices": {}}), dtype=float)
        np.testing.assert_allclose(form.reshape(expected.shape), expected, rtol=TOL, atol=TOL,
                                   err_msg=f"{qid}: the printed form {node.latex()}")


def sheet_context():
    """The little of an ask's context ``matrix_result`` reads: index base 1, LaTeX of an expression, no
    declared names to keep clear of, and the intermediates it records for the checker."""
    class Context:
        base = 1
        intermediates = {}

        @staticmethod
        def show(expr):
            return sp.latex(expr)

        @staticmethod
        def declared_names():
            return set()
    return Context


def test_a_wrong_backward_pass_is_not_printed(solved):
    """The form is checked against the element formula: dS without the softmax's rank-one part (dS = P ⊙ dP),
    or Pᵀ g written P g, is refused and the sheet keeps the form it had without the rule."""
    problem, answers = solved
    for qid, break_it in (("flash-attention-dQ", "drop D"), ("vaswani-sdpa-dV", "transpose")):
        question, decls, of, wrt, element, free = derivative_question(problem, answers[qid], qid)
        right = layer_backward(of, wrt, Tensor("g", of.shape), free, decls.names() | graph_names(of, wrt) | {"g", "l"})
        if break_it == "drop D":
            named = list(right.named)
            dS = named[-1]
            named[-1] = type(dS)(dS.tensor, dS.idx, dS.element.xreplace({named[2].tensor.base[dS.idx[0]]: 0}),
                                 dS.why)
            wrong = BackwardForm(tuple(named), right.gradient)
        else:
            P = right.named[0].tensor.base
            wrong = BackwardForm(right.named, right.gradient.replace(
                lambda e: isinstance(e, sp.Indexed) and e.base == P, lambda e: P[e.indices[::-1]]))

        Context = sheet_context()
        steps, label = [], rf"\frac{{\partial l}}{{\partial {wrt.name}}}"
        assert matrix_result(element.value, free, label, of, wrt, Context, extra={"g": of.shape}, steps=steps,
                             backward=wrong) == (None, None), qid
        assert steps == [], qid
        assert matrix_result(element.value, free, label, of, wrt, Context, extra={"g": of.shape}, steps=steps,
                             backward=right)[0] is not None, qid
        assert steps, qid


def test_the_rule_stays_out_where_it_does_not_apply(tmp_path):
    """A variable behind another layer (W through q = h_dec W), a batch of attention heads, or a step of an
    unrolled rnn: no backward form (the ask falls back to its other forms, and still answers)."""
    import symderive as sd
    L, S, E, m = (sp.Symbol(n, integer=True, positive=True) for n in "LSEm")
    Q, K, V = sd.tensor("Q", 2, L, E), sd.tensor("K", 2, S, E), sd.tensor("V", 2, S, E)
    y = sd.scaled_dot_product_attention(Q, K, V, name="y")
    assert layer_backward(y, V, Tensor("g", y.shape), y.free_indices()[-2:], set()) is None
    x, h0 = sd.tensor("x", 3, 2), sd.tensor("h0", m)
    H = sd.rnn(x, h0, sd.tensor("Wih", m, 2), sd.tensor("Whh", m, m), name="H")
    step = H.steps[1]
    assert layer_backward(step, step.cell.weight_hh, Tensor("g", step.shape), step.free_indices() * 2, set()) is None
    problem = load_problem(PROBLEM)
    answer = {a.question_id: a for a in problem.solve(ids={"cs224n-attention-dhenc"})}["cs224n-attention-dhenc"]
    text = open(PROBLEM).read().replace("    of: a\n    wrt: henc\n", "    of: a\n    wrt: W\n")
    path = tmp_path / "through-q.yaml"
    path.write_text(text)
    other = {a.question_id: a for a in load_problem(str(path)).solve(ids={"cs224n-attention-dhenc"})}
    answer = other["cs224n-attention-dhenc"]
    assert answer.status is Status.DERIVED, answer.error
    assert "backward pass of the scaled dot-product attention" not in " ".join(s.why for s in answer.steps)


def test_a_scalar_loss_names_its_upstream_gradient(solved):
    """derivative of J = ‖Attention(Q, K, V) − T‖²_F by Q: G = ∂J/∂O = 2(O − T) is one more intermediate, then
    FlashAttention's backward pass; the printed form, with G, P, dP, D, dS computed here, equals torch autograd."""
    problem, answers = solved
    answer = answers["d2l-attention-regression-dQ"]
    assert answer.status is Status.DERIVED, answer.error
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == unbraced(r"\frac{1}{\sqrt{E}} \mathrm{dS} K")
    steps = unbraced(" ".join(s.latex for s in answer.steps))
    assert unbraced(r"G = 2 y - 2 T") in steps and unbraced(r"\mathrm{dP} = G V^{T}") in steps
    question = next(q for q in problem.questions if q.id == "d2l-attention-regression-dQ")
    decls = problem.declarations(question)
    of, wrt = decls.lookup("J"), decls.lookup("Q")
    free = tuple(i for _, i in result(answer, Kind.ELEMENT).axes)
    backward = loss_backward(of, wrt, free, decls.names() | {i.name for i in free})
    node = tidy_node(form_of(backward.gradient, free))
    rng = rng_for("attention-regression")
    for _ in range(3):
        L, S, E = (int(v) for v in rng.integers(2, 6, size=3))
        Q, K, V, T = (rng.normal(size=shape) for shape in ((L, E), (S, E), (S, E), (L, E)))
        P = softmax(Q @ K.T / np.sqrt(E))
        G = 2 * (P @ V - T)
        dP = G @ V.T
        D = (P * dP).sum(axis=1)
        arrays = {"Q": Q, "K": K, "V": V, "T": T, "G": G, "P": P, "dP": dP, "Delta": D, "dS": P * (dP - D[:, None])}
        t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=(k == "Q")) for k, v in arrays.items()}
        loss = ((torch.nn.functional.scaled_dot_product_attention(t["Q"], t["K"], t["V"]) - t["T"]) ** 2).sum()
        (expected,) = torch.autograd.grad(loss, t["Q"])
        scalars = {sp.Symbol("E", integer=True, positive=True): sp.Integer(E)}
        form = np.asarray(node.value({"tensors": arrays, "scalars": scalars, "indices": {}}), dtype=float)
        np.testing.assert_allclose(form, expected.numpy(), rtol=TOL, atol=TOL)


def test_the_rnn_jacobian_is_diag_of_tanh_prime_times_w_h(solved):
    """CS224n lecture 6: ∂h⁽ᵗ⁾/∂h⁽ᵗ⁻¹⁾ = diag(1 − h⁽ᵗ⁾²) W_h; written out in NumPy, against torch's jacobian."""
    _, answers = solved
    answer = answers["cs224n-rnn-jacobian"]
    assert answer.status is Status.DERIVED, answer.error
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == \
        unbraced(r"\operatorname{diag}\left(1 - \left(h^{(t)}\right)^{\circ 2}\right) W_h")
    rng = rng_for("cs224n rnn jacobian")
    for _ in range(3):
        n, m = (int(v) for v in rng.integers(2, 6, size=2))
        e, hp, We, Wh, b1 = (rng.normal(size=s) for s in ((n,), (m,), (m, n), (m, m), (m,)))
        h = np.tanh(We @ e + Wh @ hp + b1)
        expected = torch.autograd.functional.jacobian(
            lambda state: torch.tanh(torch.tensor(We @ e + b1) + torch.tensor(Wh) @ state), torch.tensor(hp))
        np.testing.assert_allclose(np.diag(1 - h ** 2) @ Wh, expected.numpy(), rtol=TOL, atol=TOL)


# ---------------------------------------------------------------------------------------------- GRU step
#: The GRU chain-rule questions are test data, like the LSTM's: the closed formula in their appendix is wider
#: than a page.
GRU_PROBLEM = "tests/data/forms/gru-chain-forms.yaml"

#: d2l 10.2 / PyTorch's GRUCell, backward written by hand (CMU 11-785 hw3p1's GRU cell backward):
#: δ_n = g ⊙ (1 − z) ⊙ (1 − n²), δ_z = g ⊙ (h − n) ⊙ z ⊙ (1 − z), δ_r = δ_n ⊙ (W_hn h + b_hn) ⊙ r ⊙ (1 − r),
#: ∂L/∂h = g ⊙ z + W_hrᵀ δ_r + W_hzᵀ δ_z + W_hnᵀ (δ_n ⊙ r),  ∂L/∂x = W_irᵀ δ_r + W_izᵀ δ_z + W_inᵀ δ_n.
GRU_FORMS = {
    "d2l-gru-step-dprev-h": ("hp", r"g \odot z + W_{\mathrm{hr}}^{T} \delta_{r} + W_{\mathrm{hz}}^{T} \delta_{z} + "
                                   r"W_{\mathrm{hn}}^{T} \left(\delta_{n} \odot r\right)"),
    "d2l-gru-step-dx": ("x", r"W_{\mathrm{xn}}^{T} \delta_{n} + W_{\mathrm{xr}}^{T} \delta_{r} + "
                             r"W_{\mathrm{xz}}^{T} \delta_{z}"),
    "gru-step-no-bias-dprev-h": ("hp", r"g \odot z + W_{\mathrm{hr}}^{T} \delta_{r} + W_{\mathrm{hz}}^{T} \delta_{z} + "
                                       r"W_{\mathrm{hn}}^{T} \left(\delta_{n} \odot r\right)"),
}


@pytest.fixture(scope="module")
def gru_solved():
    problem = load_problem(GRU_PROBLEM)
    return problem, {a.question_id: a for a in problem.solve(ids=set(GRU_FORMS))}


def gru_case(rng, bias):
    """One GRU step written out in NumPy from PyTorch's equations, with the course's backward pass by hand."""
    n, m = (int(v) for v in rng.integers(2, 5, size=2))
    leaves = {"x": rng.normal(size=n), "hp": rng.normal(size=m), "Wih": rng.normal(size=(3 * m, n)),
              "Whh": rng.normal(size=(3 * m, m))}
    if bias:
        leaves.update(bih=rng.normal(size=3 * m), bhh=rng.normal(size=3 * m))
    bih, bhh = leaves.get("bih", np.zeros(3 * m)), leaves.get("bhh", np.zeros(3 * m))
    up = rng.normal(size=m)
    gi, gh = leaves["Wih"] @ leaves["x"] + bih, leaves["Whh"] @ leaves["hp"] + bhh
    r, z = sigmoid(gi[:m] + gh[:m]), sigmoid(gi[m:2 * m] + gh[m:2 * m])
    cand = np.tanh(gi[2 * m:] + r * gh[2 * m:])
    d_n = up * (1 - z) * (1 - cand ** 2)
    d_z = up * (leaves["hp"] - cand) * z * (1 - z)
    d_r = d_n * gh[2 * m:] * r * (1 - r)
    Wh, Wx = ({letter: W[k * m:(k + 1) * m] for k, letter in enumerate("rzn")} for W in (leaves["Whh"], leaves["Wih"]))
    reference = {"hp": up * z + Wh["r"].T @ d_r + Wh["z"].T @ d_z + Wh["n"].T @ (d_n * r),
                 "x": Wx["r"].T @ d_r + Wx["z"].T @ d_z + Wx["n"].T @ d_n}
    intermediates = {"r": r, "z": z, "n_h": cand, "delta_n": d_n, "delta_z": d_z, "delta_r": d_r,
                     **{f"Wh{k}": v for k, v in Wh.items()}, **{f"Wx{k}": v for k, v in Wx.items()},
                     "bhn": bhh[2 * m:]}

    def forward(t):
        from torch.func import functional_call
        cell = torch.nn.GRUCell(n, m, bias=bias, dtype=torch.float64)
        params = {"weight_ih": t["Wih"], "weight_hh": t["Whh"]}
        if bias:
            params.update(bias_ih=t["bih"], bias_hh=t["bhh"])
        return functional_call(cell, params, (t["x"], t["hp"]))
    return leaves, up, intermediates, reference, forward


def gru_backward(problem, answer, qid):
    question, decls, of, wrt, element, free = derivative_question(problem, answer, qid)
    taken = decls.names() | graph_names(of, wrt) | {"g", "L"}
    return of, wrt, element, free, layer_backward(of, wrt, Tensor("g", of.shape), free, taken)


@pytest.mark.parametrize("qid", list(GRU_FORMS))
def test_gru_form_is_the_courses_and_equals_torch_autograd(gru_solved, qid):
    """The printed form is d2l's / CMU 11-785's; evaluated with its intermediates computed here from PyTorch's
    GRUCell equations, it and the hand-written backward pass equal torch.nn.GRUCell's autograd (float64)."""
    problem, answers = gru_solved
    answer = answers[qid]
    assert answer.status is Status.DERIVED, answer.error
    variable, course = GRU_FORMS[qid]
    printed = result(answer, Kind.MATRIX_FORM).value
    assert unbraced(printed) == unbraced(course)
    steps = unbraced(" ".join(s.latex for s in answer.steps))
    assert unbraced(r"\delta_{n} = \left(1 - \left(n_{h}\right)^{\circ 2}\right) \odot \left(1 - z\right) \odot g") \
        in steps
    of, wrt, element, free, backward = gru_backward(problem, answer, qid)
    node = tidy_node(form_of(backward.gradient, free))
    with declared(answer.names):
        assert latex_in_base(node, answer.index_base) == printed
    bias = "no-bias" not in qid
    rng = rng_for(f"gru-forms-{qid}")
    for _ in range(3):
        leaves, up, intermediates, reference, forward = gru_case(rng, bias)
        tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in leaves.items()}
        (expected,) = torch.autograd.grad(forward(tensors), tensors[variable],
                                          grad_outputs=torch.tensor(up, dtype=torch.float64))
        expected = expected.numpy()
        np.testing.assert_allclose(reference[variable], expected, rtol=TOL, atol=TOL,
                                   err_msg=f"{qid}: the hand-written backward pass")
        arrays = {**leaves, **intermediates, "g": up}
        assert {n.tensor.name for n in backward.named} <= set(arrays)
        form = np.asarray(node.value({"tensors": arrays, "scalars": {}, "indices": {}}), dtype=float)
        np.testing.assert_allclose(form.reshape(expected.shape), expected, rtol=TOL, atol=TOL,
                                   err_msg=f"{qid}: the printed form {node.latex()}")


def test_a_wrong_gru_backward_pass_is_not_printed(gru_solved):
    """Two slips a student makes: W_hnᵀ δ_n without the reset gate r (δ_n reaches h through r ⊙ (W_hn h + b_hn)),
    and δ_z with (n − h) for (h − n). Each is refused against the element formula; the right one is printed."""
    problem, answers = gru_solved
    qid = "d2l-gru-step-dprev-h"
    of, wrt, element, free, right = gru_backward(problem, answers[qid], qid)
    r = of.n.r
    no_reset = BackwardForm(right.named, right.gradient.replace(
        lambda e: isinstance(e, sp.Sum) and e.function.has(r.base),
        lambda e: sp.Sum(e.function.xreplace({r.base[e.limits[0][0]]: 1}), *e.limits)))
    assert no_reset.gradient != right.gradient
    named = list(right.named)
    k = next(i for i, nd in enumerate(named) if nd.tensor.name == "delta_z")
    dz = named[k]
    named[k] = type(dz)(dz.tensor, dz.idx, -dz.element, dz.why)
    flipped = BackwardForm(tuple(named), right.gradient)

    Context = sheet_context()
    label = r"\frac{\partial L}{\partial h_{t-1}}"
    for wrong in (no_reset, flipped):
        steps = []
        assert matrix_result(element.value, free, label, of, wrt, Context, extra={"g": of.shape}, steps=steps,
                             backward=wrong) == (None, None)
        assert steps == []
    steps = []
    assert matrix_result(element.value, free, label, of, wrt, Context, extra={"g": of.shape}, steps=steps,
                         backward=right)[0] is not None
    assert steps


def test_the_gru_rule_stays_out_where_it_does_not_apply():
    """A batch of GRU steps, a step of an unrolled gru and the weights: no backward form (the element
    formula answers)."""
    import symderive as sd
    n, m = (sp.Symbol(s, integer=True, positive=True) for s in "nm")
    x, hp = sd.tensor("x", 2, n), sd.tensor("hp", 2, m)
    Wih, Whh = sd.tensor("Wih", 3 * m, n), sd.tensor("Whh", 3 * m, m)
    batched = sd.gru_cell(x, hp, Wih, Whh, name="h")
    assert layer_backward(batched, hp, Tensor("g", batched.shape), batched.free_indices()[-1:], set()) is None
    one = sd.gru_cell(sd.tensor("x1", n), sd.tensor("h1", m), Wih, Whh, name="h")
    assert layer_backward(one, Whh, Tensor("g", one.shape), one.free_indices() * 2, set()) is None
    H = sd.gru(sd.tensor("xs", 3, n), sd.tensor("h0", m), Wih, Whh, name="H")
    step = H.steps[1]
    assert layer_backward(step, step.state, Tensor("g", step.shape), step.free_indices(), set()) is None


def test_the_gru_form_reads_back_and_a_slip_does_not():
    """The checker reads the sheet's names W_{\\mathrm{hr}}, δ_r, … as their definitions: the boxed form is
    graded correct, and the same form without the reset gate in the candidate's term is not."""
    from symderive.checking.grade import check_one, prepare
    info = prepare(load_problem(GRU_PROBLEM), {"d2l-gru-step-dprev-h"})["d2l-gru-step-dprev-h"]
    assert info.checkable, info.reason
    lhs = r"\frac{\partial L}{\partial h_{t-1}} = "
    right = lhs + GRU_FORMS["d2l-gru-step-dprev-h"][1]
    assert check_one(info, right, 120).verdict == "correct"
    slip = right.replace(r"\left(\delta_{n} \odot r\right)", r"\delta_{n}")
    assert slip != right
    assert check_one(info, slip, 120).verdict not in ("correct", "unknown name")


# ---------------------------------------------------------------------------------------------- multi-head attention
def mha_case(rng):
    """Vaswani et al. §3.2.2 self-attention with two heads, written out in NumPy (the heads' backward pass by
    hand: dO = g W_o, dV_h = A_hᵀ dO_h, ∂ℓ/∂W_v = dVᵀ X), and torch's multi_head_attention_forward."""
    L, D = (int(v) for v in rng.integers(2, 4, size=2))
    E = 2 * D
    leaves = {name: rng.normal(size=(E, E)) for name in ("Wq", "Wk", "Wv", "Wo")}
    leaves["X"] = rng.normal(size=(L, E))
    X = leaves["X"]
    Q, K = X @ leaves["Wq"].T, X @ leaves["Wk"].T
    A = [softmax(Q[:, h * D:(h + 1) * D] @ K[:, h * D:(h + 1) * D].T / np.sqrt(D)) for h in range(2)]
    g = rng.normal(size=(L, E))
    dO = g @ leaves["Wo"]
    dV = np.concatenate([A[h].T @ dO[:, h * D:(h + 1) * D] for h in range(2)], axis=1)
    intermediates = {"dO": dO, "dV": dV, **{f"A{h + 1}": A[h] for h in range(2)},
                     **{f"dO{h + 1}": dO[:, h * D:(h + 1) * D] for h in range(2)},
                     **{f"dV{h + 1}": dV[:, h * D:(h + 1) * D] for h in range(2)}}

    def forward(t):
        import torch.nn.functional as F
        return F.multi_head_attention_forward(
            t["X"], t["X"], t["X"], E, 2, None, None, None, None, False, 0.0, t["Wo"], None, training=False,
            need_weights=False, use_separate_proj_weight=True, q_proj_weight=t["Wq"], k_proj_weight=t["Wk"],
            v_proj_weight=t["Wv"])[0]
    return leaves, g, intermediates, dV.T @ X, forward, D


def test_mha_dWv_is_written_head_by_head_and_equals_torch_autograd(solved):
    """∂ℓ/∂W_v = dVᵀ X with dV_h = A_hᵀ dO_h per head: the printed steps and form, evaluated with the
    intermediates computed here, equal torch's autograd of multi_head_attention_forward (float64)."""
    problem, answers = solved
    answer = answers["vaswani-mha-dWv"]
    assert answer.status is Status.DERIVED, answer.error
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == unbraced(r"\mathrm{dV}^{T} X")
    steps = unbraced(" ".join(s.latex for s in answer.steps))
    for form in (r"\mathrm{dO} = g W_{o}", r"\mathrm{dV}_{1} = A_{1}^{T} \mathrm{dO}_{1}",
                 r"\mathrm{dV}_{2} = A_{2}^{T} \mathrm{dO}_{2}"):
        assert unbraced(form) in steps, form
    question = next(q for q in problem.questions if q.id == "vaswani-mha-dWv")
    decls = problem.declarations(question)
    of, wrt = decls.lookup("y"), decls.lookup("Wv")
    free = tuple(i for _, i in result(answer, Kind.ELEMENT).axes)
    backward = layer_backward(of, wrt, Tensor("g", of.shape), free, decls.names() | graph_names(of, wrt) | {"g", "l"})
    node = tidy_node(form_of(backward.gradient, free))
    rng = rng_for("mha-dWv-heads")
    for _ in range(3):
        leaves, g, intermediates, reference, forward, D = mha_case(rng)
        tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in leaves.items()}
        (expected,) = torch.autograd.grad(forward(tensors), tensors["Wv"],
                                          grad_outputs=torch.tensor(g, dtype=torch.float64))
        expected = expected.numpy()
        np.testing.assert_allclose(reference, expected, rtol=TOL, atol=TOL, err_msg="the hand-written heads")
        arrays = {**leaves, **intermediates, "g": g}
        assert {n.tensor.name for n in backward.named} <= set(arrays)
        scalars = {sp.Symbol("D", integer=True, positive=True): sp.Integer(D)}
        form = np.asarray(node.value({"tensors": arrays, "scalars": scalars, "indices": {}}), dtype=float)
        np.testing.assert_allclose(form, expected, rtol=TOL, atol=TOL)


def test_a_head_without_its_transpose_is_refused(solved):
    """dV_h = A_h dO_h (the transpose forgotten; square here, L = S) disagrees with the element formula."""
    problem, answers = solved
    question = next(q for q in problem.questions if q.id == "vaswani-mha-dWv")
    decls = problem.declarations(question)
    of, wrt = decls.lookup("y"), decls.lookup("Wv")
    element = result(answers["vaswani-mha-dWv"], Kind.ELEMENT)
    free = tuple(i for _, i in element.axes)
    right = layer_backward(of, wrt, Tensor("g", of.shape), free, decls.names() | graph_names(of, wrt) | {"g", "l"})
    named = list(right.named)
    k = next(i for i, n in enumerate(named) if n.tensor.name == "dV1")
    weights = named[k - 2].tensor.base
    dv = named[k]
    named[k] = type(dv)(dv.tensor, dv.idx, dv.element.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == weights, lambda e: weights[e.indices[::-1]]), dv.why)
    assert named[k].element != dv.element
    label = r"\frac{\partial l}{\partial W_v}"
    for form, refused in ((BackwardForm(tuple(named), right.gradient), True), (right, False)):
        steps = []
        got = matrix_result(element.value, free, label, of, wrt, sheet_context(), extra={"g": of.shape},
                            steps=steps, backward=form)
        assert (got == (None, None)) is refused
