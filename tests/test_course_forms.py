"""Gradients in the form a course writes them (problems/course-forms.yaml): each matrix form is the
one the course's solution writes (the references below are written by hand from CS224n a2, CS224d a1,
CS231n and Learning from Data), and its value, with the named intermediates (ŷ, P, the one-hot y/Y)
computed here in NumPy, equals the gradient PyTorch's autograd computes in float64 at random sizes,
as does the element formula beside it."""
import re

import numpy as np
import pytest
import sympy as sp

from symderive.answer import Kind, Status
from symderive.asks.matrix_view import course_form
from symderive.display_names import declared
from symderive.errors import SymderiveError
from symderive.evaluate import evaluate
from symderive.matrix_form import latex_in_base, tidy_node
from symderive.problem import load_problem
from helpers import derivative_question, result, rng_for  # noqa: E402

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-10
PROBLEM = "problems/course-forms.yaml"

#: The forms the courses write (index base 0), compared without braces.
COURSE_FORMS = {
    "w2v-dv": r"U \left(\hat{y} - y\right)",                              # CS224n a2 (b)
    "w2v-dU": r"v_c\, \left(\hat{y} - y\right)^{T}",                      # CS224n a2 (c), U's columns u_w
    "w2v-one-hot-dv": r"U \left(\hat{y} - y\right)",                      # the same with y declared one-hot
    "softmax-regression-l2": r"\frac{1}{N} X^{T} \left(P - Y\right) + 2 \lambda W",     # CS231n a1
    "softmax-scores": r"\frac{1}{N} \left(P - Y\right)",                  # CS231n: dscores = (probs − onehot)/N
    # CS224d a1 (c): δ₁ = (ŷ − y)W₂ᵀ ∘ σ'(z₁), ∂J/∂x = δ₁W₁ᵀ, as a column vector
    "one-hidden-layer-dx": r"W_1 \left(\left(W_2 \left(\hat{y} - y\right)\right) \odot "
                           r"\sigma'\left(z_1\right)\right)",
    # Learning from Data / CSCE 636: ∇E = (2/N) Xᵀ[(1 − tanh²(Xw)) ⊙ (tanh(Xw) − y)]
    "tanh-regression": r"\frac{2}{N} X^{T} \left(\left(1 - \tanh^{2}\left(X w\right)\right) \odot "
                       r"\left(\tanh\left(X w\right) - y\right)\right)",
    # Ioffe & Szegedy / CS231n a2: ∂L/∂x = (γ/(Nσ))(N g − Σ_n g_n − x̂ Σ_n g_n x̂_n), σ = √(σ² + ε); the sums
    # of entries written with their index (Σ_n g of the vector g would read as N g)
    "batchnorm-dx": r"\frac{\gamma}{N \sqrt{\epsilon + \sigma^2}} \left(N g - \sum_{n=0}^{N - 1} g_{n} - \hat{x} \odot "
                    r"\sum_{n=0}^{N - 1} g_{n} \hat{x}_{n}\right)",
    "layernorm-dx": r"\frac{\gamma}{D \sqrt{\epsilon + \sigma^2}} \left(D g - \sum_{n=0}^{D - 1} g_{n} - \hat{x} \odot "
                    r"\sum_{n=0}^{D - 1} g_{n} \hat{x}_{n}\right)",
}


def unbraced(latex):
    return re.sub(r"[{}]", "", latex)


@pytest.fixture(scope="module")
def solved():
    problem = load_problem(PROBLEM)
    return problem, {a.question_id: a for a in problem.solve()}


@pytest.mark.parametrize("qid", list(COURSE_FORMS))
def test_the_matrix_form_is_the_courses(solved, qid):
    _, answers = solved
    answer = answers[qid]
    assert answer.status is Status.DERIVED, answer.error
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == unbraced(COURSE_FORMS[qid])


def softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def one_hot(labels, count):
    return (np.arange(count) == np.asarray(labels)[..., None]).astype(float)


def draw(qid, rng):
    """(sizes, leaf arrays, scalar values, intermediates by name, torch loss of the leaves, variable)."""
    n, c, d, v, h = (int(x) for x in rng.integers(2, 6, size=5))
    if qid in ("w2v-dv", "w2v-dU", "w2v-one-hot-dv"):
        leaves = {"v": rng.normal(size=d), "U": rng.normal(size=(d, v))}
        s = leaves["v"] @ leaves["U"]
        if qid == "w2v-one-hot-dv":
            leaves["y"] = one_hot(rng.integers(v), v)
            scalars = {}
            loss = (lambda t: -(t["y"] * F.log_softmax(t["v"] @ t["U"], dim=0)).sum())
        else:
            o = int(rng.integers(v))
            scalars = {"o": o}
            loss = (lambda t: -F.log_softmax(t["v"] @ t["U"], dim=0)[o])
        named = {"s": s, "yhat": softmax(s), "y": leaves.get("y", one_hot(scalars.get("o", 0), v))}
        return {"d": d, "V": v}, leaves, scalars, named, loss, "U" if qid == "w2v-dU" else "v"
    if qid in ("softmax-regression-l2", "softmax-scores"):
        leaves = {"X": rng.normal(size=(n, d)), "W": rng.normal(size=(d, c))}
        labels = rng.integers(0, c, size=n)
        leaves["y"] = labels.astype(float)
        lam = float(rng.uniform(0.1, 1.0))
        S = leaves["X"] @ leaves["W"]
        named = {"S": S, "P": softmax(S), "Y": one_hot(labels, c)}
        if qid == "softmax-scores":
            return ({"N": n, "D": d, "C": c}, {**leaves, "S": S}, {}, named,
                    (lambda t: F.cross_entropy(t["S"], torch.tensor(labels))), "S")
        return ({"N": n, "D": d, "C": c}, leaves, {"lam": lam}, named,
                (lambda t: F.cross_entropy(t["X"] @ t["W"], torch.tensor(labels)) + lam * (t["W"] ** 2).sum()), "W")
    if qid == "one-hidden-layer-dx":
        leaves = {"x": rng.normal(size=d), "W1": rng.normal(size=(d, h)), "b1": rng.normal(size=h),
                  "W2": rng.normal(size=(h, c)), "b2": rng.normal(size=c)}
        k = int(rng.integers(c))
        z1 = leaves["x"] @ leaves["W1"] + leaves["b1"]
        a = 1 / (1 + np.exp(-z1))
        t = a @ leaves["W2"] + leaves["b2"]
        named = {"z1": z1, "a": a, "t": t, "yhat": softmax(t), "y": one_hot(k, c)}

        def loss(tt):
            hidden = torch.sigmoid(tt["x"] @ tt["W1"] + tt["b1"])
            return -F.log_softmax(hidden @ tt["W2"] + tt["b2"], dim=0)[k]
        return {"D": d, "H": h, "C": c}, leaves, {"k": k}, named, loss, "x"
    if qid == "tanh-regression":
        leaves = {"X": rng.normal(size=(n, d)), "w": rng.normal(size=d) / 2, "y": rng.normal(size=n)}
        return ({"N": n, "D": d}, leaves, {}, {},
                (lambda t: ((torch.tanh(t["X"] @ t["w"]) - t["y"]) ** 2).mean()), "w")
    if qid in ("batchnorm-dx", "layernorm-dx"):
        size = "N" if qid == "batchnorm-dx" else "D"
        leaves = {"x": rng.normal(size=n), "g": rng.normal(size=n)}
        gamma, beta, eps = (float(v) for v in rng.uniform(0.2, 2.0, size=3))
        mu, var = leaves["x"].mean(), leaves["x"].var()                 # biased, as in training
        xhat = (leaves["x"] - mu) / np.sqrt(var + eps)
        scalars = {"gamma": gamma, "beta": beta, "eps": eps, "mu": mu, "var": var}
        g = torch.tensor(leaves["g"])

        def loss(t):
            y = F.batch_norm(t["x"].reshape(-1, 1), None, None, weight=torch.tensor([gamma], dtype=torch.float64),
                             bias=torch.tensor([beta], dtype=torch.float64), training=True, eps=eps)
            return (g * y.reshape(-1)).sum()
        return {size: n}, leaves, scalars, {"xhat": xhat, "y": gamma * xhat + beta}, loss, "x"
    raise KeyError(qid)


def by_name(expr):
    return {s.name: s for s in sp.sympify(expr).free_symbols} | \
        {i.base.label.name: i.base.label for i in sp.sympify(expr).atoms(sp.Indexed)}


@pytest.mark.parametrize("qid", list(COURSE_FORMS))
def test_form_and_element_formula_equal_torch_autograd(solved, qid):
    problem, answers = solved
    answer = answers[qid]
    question, decls, of, wrt, element, free = derivative_question(problem, answer, qid)
    _, node, named, _ = course_form(element.value, free, of, wrt, decls.names())
    node = tidy_node(node)
    with declared(answer.names):                   # the form checked here is the one printed
        assert latex_in_base(node, answer.index_base) == result(answer, Kind.MATRIX_FORM).value
    rng = rng_for(f"course-forms-{qid}")
    for _ in range(3):
        case = draw(qid, rng)
        assert_equal_to_autograd(qid, element, node, *case)
        assert {n.tensor.name for n in named} <= set(case[3]) | set(case[1])


def assert_equal_to_autograd(qid, element, node, sizes, leaves, scalars, intermediates, loss, variable):
    """The element formula at every entry, and the form with the intermediates computed here, equal
    torch's gradient of ``loss`` by ``variable`` in float64."""
    tensors = {k: torch.tensor(val, requires_grad=(k == variable)) for k, val in leaves.items()}
    (expected,) = torch.autograd.grad(loss(tensors), tensors[variable])
    expected = expected.numpy()
    arrays = {**leaves, **intermediates}
    free = tuple(i for _, i in element.axes)
    names = by_name(element.value)
    scalar_values = {names[k]: sp.Integer(val) if isinstance(val, int) else sp.Float(val)
                     for k, val in {**sizes, **scalars}.items() if k in names}
    formula = np.zeros(expected.shape)
    for pos in np.ndindex(*expected.shape):
        formula[pos] = evaluate(element.value, arrays, scalar_values, dict(zip(free, pos)))
    np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: element formula")
    env_scalars = {sp.Symbol(k, real=True) if k in scalars else sp.Symbol(k, integer=True, positive=True): v
                   for k, v in {**sizes, **scalars}.items()}
    env_scalars = {**env_scalars, **scalar_values}
    form = np.asarray(node.value({"tensors": arrays, "scalars": env_scalars, "indices": {}}), dtype=float)
    np.testing.assert_allclose(form.reshape(expected.shape), expected, rtol=TOL, atol=TOL,
                               err_msg=f"{qid}: matrix form {node.latex()}")


def test_without_the_one_hot_fact_a_sum_of_y_is_left(tmp_path):
    """The fact is what removes Σ_i y_i: with y only a tensor, the form keeps its weight (ŷ Σy − y)."""
    text = open(PROBLEM).read().replace("y: {shape: [V], one_hot: true}", "y: [V]")
    path = tmp_path / "no-fact.yaml"
    path.write_text(text)
    problem = load_problem(str(path))
    answer = {a.question_id: a for a in problem.solve(ids={"w2v-one-hot-dv"})}["w2v-one-hot-dv"]
    assert answer.status is Status.DERIVED
    assert "one-hot" not in " ".join(s.why for s in answer.steps)
    forms = [r.value for r in answer.results if r.kind is Kind.MATRIX_FORM]
    assert not forms or unbraced(forms[0]) != unbraced(COURSE_FORMS["w2v-one-hot-dv"])


FACT_ERRORS = [
    ("y: {shape: [V], one_hot: 'true'}", "one_hot is true or false"),
    ("y: {shape: [V], one_hot: 1}", "one_hot is true or false"),
    ("y: {shape: [], one_hot: true}", "a scalar cannot be one-hot"),
    ("y: {shape: [V], labels: true}", "labels gives the number of classes"),
    ("y: {shape: [V], labels: V, positive: true}", "labels (class indices) cannot also be positive"),
    ("y: {shape: [V], one_hot: true, unknown: 1}", "unknown key 'unknown'"),
]


@pytest.mark.parametrize("declaration, message", FACT_ERRORS)
def test_bad_facts_are_refused_with_their_position(tmp_path, declaration, message):
    text = open(PROBLEM).read().replace("y: {shape: [V], one_hot: true}", declaration)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SymderiveError) as caught:
        problem = load_problem(str(path))
        for question in problem.questions:
            problem.declarations(question)
    assert message in str(caught.value)
    assert re.search(r":\d+:\d+", str(caught.value)) or getattr(caught.value, "line", None), str(caught.value)


def test_derivatives_by_labels_or_a_detached_tensor_are_refused(tmp_path):
    text = open(PROBLEM).read()
    text = text.replace("tensors: {X: [N, D], W: [D, C], y: [N]}",
                        "tensors: {X: [N, D], W: {shape: [D, C], detached: true}, y: [N]}")
    text = text.replace("    of: E\n    wrt: S\n", "    of: E\n    wrt: W\n")
    path = tmp_path / "detached.yaml"
    path.write_text(text)
    problem = load_problem(str(path))
    answer = {a.question_id: a for a in problem.solve(ids={"softmax-scores"})}["softmax-scores"]
    assert answer.status is Status.FAILED
    assert "'W' is declared detached: no gradient flows to it" in answer.error
    text = open(PROBLEM).read().replace("    of: L\n    wrt: W\n", "    of: L\n    wrt: y\n", 1)
    path.write_text(text)
    problem = load_problem(str(path))
    answer = {a.question_id: a for a in problem.solve(ids={"softmax-regression-l2"})}["softmax-regression-l2"]
    assert answer.status is Status.FAILED and "holds class labels" in answer.error


#: The shipped coursework questions whose matrix forms are now the courses' (they had none before).
COURSEWORK_FORMS = {
    "cs231n-softmax-dW": r"\frac{1}{N} X^{T} \left(P - Y\right)",
    "cs231n-softmax-dS": r"\frac{1}{N} \left(P - Y\right)",
    "cs231n-full-loss-dW": r"\frac{1}{N} X^{T} \left(P - Y\right) + 2 \lambda W",
    "cs224n-word2vec-dv": r"U \left(\hat{y} - y\right)",
    "cs224n-word2vec-dU": r"v\, \left(\hat{y} - y\right)^{T}",
    "d2l-log-softmax-nll": r"\frac{1}{N} \left(P - Y\right)",          # log_softmax then nll_loss
}


def test_coursework_questions_get_the_courses_forms():
    problem = load_problem("problems/coursework-layers.yaml")
    answers = {a.question_id: a for a in problem.solve(ids=set(COURSEWORK_FORMS))}
    for qid, expected in COURSEWORK_FORMS.items():
        assert answers[qid].status is Status.DERIVED, answers[qid].error
        assert unbraced(result(answers[qid], Kind.MATRIX_FORM).value) == unbraced(expected), qid


TANH_FORMS = [      # a student's tanh-regression gradient, and how the checker must read it
    (r"1 - \tanh^{2}\left(X w\right)", "correct"),
    (r"1 + \tanh^{2}\left(X w\right)", "incorrect"),
    (r"1 - \tanh^{3}\left(X w\right)", "incorrect"),
    (r"1 - \tanh^{-1}\left(X w\right)", "unparseable"),
]
TANH_GRADIENT = r"\frac{2}{N} X^{T} \left(\left(FACTOR\right) \odot \left(\tanh\left(X w\right) - y\right)\right)"


@pytest.mark.parametrize("latex, verdict", TANH_FORMS)
def test_tanh_squared_of_a_vector_is_read_entry_by_entry(latex, verdict):
    """1 − tanh²(Xw), the course's form, is graded: the square of tanh of a vector is entry by entry."""
    problem = load_problem("problems/csce636-hw2.yaml")
    report = problem.check({"csce636-q1": TANH_GRADIENT.replace("FACTOR", latex)}, isolate=False)
    (got,) = [v for v in report.verdicts if v.question == "csce636-q1"]
    assert got.verdict == verdict, got.evidence


# Masks 1{·}: the hinge, ReLU and max pooling (problems/masks-and-stop-gradients.yaml) ---------------

MASKS = "problems/masks-and-stop-gradients.yaml"

#: The forms the courses write, by hand: CS231n "Optimization" (the SVM's ∂L/∂W = (1/N) Xᵀ M with M the
#: margins' mask, the y_n column minus their count; + 2λW from the L2 term), CS231n a2 relu_backward
#: (dz = dh * (z > 0)), CS231n's case study (dW1 = Xᵀ dhidden, dhidden = (dscores W₂ᵀ) with zeros where
#: the hidden unit was off, dscores = (P − Y)/N).
MASK_FORMS = {
    "cs231n-svm-dW": r"\frac{1}{N} X^{T} M + 2 \lambda W",
    "cs231n-relu-backward": r"g \odot \mathbf{1}\{z > 0\}",
    "cs231n-two-layer-relu-dW1": r"\frac{1}{N} X^{T} \left(\left(\left(P - Y\right) {W_{2}}^{T}\right) \odot "
                                 r"\mathbf{1}\{Z > 0\}\right)",
}


@pytest.fixture(scope="module")
def masks():
    problem = load_problem(MASKS)
    return problem, {a.question_id: a for a in problem.solve()}


@pytest.mark.parametrize("qid", list(MASK_FORMS))
def test_masks_are_written_as_the_course_writes_them(masks, qid):
    _, answers = masks
    answer = answers[qid]
    assert answer.status is Status.DERIVED, answer.error
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == unbraced(MASK_FORMS[qid])


def svm_mask(S, labels, delta):
    """CS231n's M, written from the notes: 1[S_nj − S_{n,y_n} + Δ > 0] for j ≠ y_n, and minus their count
    in column y_n."""
    n = np.arange(len(labels))
    margins = S - S[n, labels][:, None] + delta
    M = (margins > 0).astype(float)
    M[n, labels] = 0
    M[n, labels] = -M.sum(axis=1)
    return M


def mask_case(qid, rng):
    """(sizes, leaf arrays, scalars, intermediates, torch loss of the leaves, variable) for a mask question."""
    n, c, d, h = (int(x) for x in rng.integers(2, 6, size=4))
    if qid == "cs231n-svm-dW":
        X, W = rng.normal(size=(n, d)), rng.normal(size=(d, c))
        labels = rng.integers(0, c, size=n)
        delta, lam = float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.1, 1.0))
        S = X @ W

        def loss(t):
            s = t["X"] @ t["W"]
            rows = torch.arange(n)
            margins = torch.clamp(s - s[rows, torch.tensor(labels)][:, None] + delta, min=0)
            margins = margins * (1 - F.one_hot(torch.tensor(labels), c))          # the sum over j ≠ y_n
            return margins.sum() / n + lam * (t["W"] ** 2).sum()
        return ({"N": n, "D": d, "C": c}, {"X": X, "W": W, "y": labels.astype(float)}, {"Delta": delta, "lam": lam},
                {"S": S, "M": svm_mask(S, labels, delta)}, loss, "W")
    if qid == "cs231n-relu-backward":
        z, g = rng.normal(size=h), rng.normal(size=h)
        return {"H": h}, {"z": z, "g": g}, {}, {}, (lambda t: (torch.tensor(g) * torch.relu(t["z"])).sum()), "z"
    if qid == "cs231n-two-layer-relu-dW1":
        X, W1, W2 = rng.normal(size=(n, d)), rng.normal(size=(d, h)), rng.normal(size=(h, c))
        labels = rng.integers(0, c, size=n)
        Z = X @ W1
        S = np.maximum(Z, 0) @ W2
        named = {"Z": Z, "A": np.maximum(Z, 0), "S": S, "P": softmax(S), "Y": one_hot(labels, c)}
        return ({"N": n, "D": d, "H": h, "C": c}, {"X": X, "W1": W1, "W2": W2, "y": labels.astype(float)}, {}, named,
                (lambda t: F.cross_entropy(torch.relu(t["X"] @ t["W1"]) @ t["W2"], torch.tensor(labels))), "W1")
    raise KeyError(qid)


@pytest.mark.parametrize("qid", list(MASK_FORMS))
def test_masks_form_and_element_formula_equal_torch_autograd(masks, qid):
    """The form (with M from CS231n's definition, not the engine's) and the element formula against
    torch autograd in float64; random normal values, so no margin or entry is at a tie."""
    problem, answers = masks
    answer = answers[qid]
    question, decls, of, wrt, element, free = derivative_question(problem, answer, qid)
    _, node, _, _ = course_form(element.value, free, of, wrt, decls.names())
    node = tidy_node(node)
    rng = rng_for(f"masks-{qid}")
    for _ in range(3):
        assert_equal_to_autograd(qid, element, node, *mask_case(qid, rng))


def test_the_svm_mask_is_defined_on_the_sheet(masks):
    """M is a name the form introduces: the sheet defines it, with the indicator as the sheet writes it."""
    _, answers = masks
    steps = [s.latex for s in answers["cs231n-svm-dW"].steps]
    (definition,) = [s for s in steps if s.startswith("M_{n,q} = ")]
    assert r"\mathbf{1}\{\Delta + {S}_{n,q} - {S}_{n,{y}_{n}} > 0\}" in definition


def test_max_pooling_routes_the_gradient_to_the_windows_maximum(masks):
    """CS231n: max pooling passes g to the entry that won its window, 1{x_p > its neighbour}; against
    F.max_pool1d's backward in float64."""
    _, answers = masks
    element = result(answers["cs231n-max-pool-1d"], Kind.ELEMENT)
    assert r"\mathbf{1}\{{x}_{p} > {x}_{p + 1}\}" in element.latex
    free = tuple(i for _, i in element.axes)
    rng = rng_for("masks-max-pool")
    for _ in range(3):
        x, g = rng.normal(size=4), rng.normal(size=2)
        xt = torch.tensor(x, requires_grad=True)
        (F.max_pool1d(xt.reshape(1, 1, 4), 2, 2).reshape(2) * torch.tensor(g)).sum().backward()
        got = [evaluate(element.value, {"x": x, "g": g}, {}, {free[0]: p}) for p in range(4)]
        np.testing.assert_allclose(got, xt.grad.numpy(), rtol=TOL, atol=TOL)


MASK_READING = [      # a student's ReLU backward, and how the checker must read it
    (r"\frac{\partial l}{\partial z_p} = g_p \mathbf{1}\{z_p > 0\}", "correct"),
    (r"\frac{\partial l}{\partial z_p} = g_p \mathbb{1}[z_p > 0]", "correct"),
    (r"\frac{\partial l}{\partial z} = g \odot \mathbf{1}\{z > 0\}", "correct"),
    (r"\frac{\partial l}{\partial z_p} = g_p \mathbf{1}\{z_p < 0\}", "incorrect"),
]


@pytest.mark.parametrize("latex, verdict", MASK_READING)
def test_the_mask_is_read_back(latex, verdict):
    report = load_problem(MASKS).check({"cs231n-relu-backward": latex}, isolate=False)
    (got,) = [v for v in report.verdicts if v.question == "cs231n-relu-backward"]
    assert got.verdict == verdict, got.evidence


# positive: SymPy is told, so |σ| = σ ---------------------------------------------------------

def solve_one(text, qid, tmp_path):
    path = tmp_path / "variant.yaml"
    path.write_text(text)
    answer = {a.question_id: a for a in load_problem(str(path)).solve(ids={qid})}[qid]
    assert answer.status is Status.DERIVED, answer.error
    return answer


def gaussian_case(rng):
    n = int(rng.integers(2, 6))
    y, mu, sigma = rng.normal(size=n), rng.normal(size=n), float(rng.uniform(0.5, 2.0))
    return y, mu, sigma


def test_a_positive_sigma_gives_the_gaussian_gradient_without_abs(masks, tmp_path):
    """d2l 3.1.3: ∂L/∂σ = (1/N) Σ_n (1/σ − (y_n − μ_n)²/σ³), with no |σ| or sign(σ) once σ > 0 is declared;
    against that reference and torch autograd. Without the fact the answer keeps |σ| sign(σ)."""
    _, answers = masks
    element = result(answers["d2l-gaussian-nll-dsigma"], Kind.ELEMENT)
    assert not element.value.has(sp.Abs, sp.sign)
    rng = rng_for("masks-gaussian")
    for _ in range(3):
        y, mu, sigma = gaussian_case(rng)
        reference = np.mean(1 / sigma - (y - mu) ** 2 / sigma ** 3)             # written from d2l, by hand
        s = torch.tensor(sigma, dtype=torch.float64, requires_grad=True)
        nll = -torch.distributions.Normal(torch.tensor(mu), s).log_prob(torch.tensor(y)).mean()
        (expected,) = torch.autograd.grad(nll, s)
        names = by_name(element.value)
        got = evaluate(element.value, {"y": y, "mu": mu}, {names["sigma"]: sp.Float(sigma), names["N"]: len(y)}, {})
        np.testing.assert_allclose([got, reference], [expected.item()] * 2, rtol=TOL, atol=TOL)
    text = open(MASKS).read().replace("sigma: {shape: [], tex: \\sigma, positive: true}",
                                      "sigma: {shape: [], tex: \\sigma}")
    plain = result(solve_one(text, "d2l-gaussian-nll-dsigma", tmp_path), Kind.ELEMENT)
    assert plain.value.has(sp.Abs)                 # the fact is what removes it


# detach: a stop-gradient ----------------------------------------------------------------------

def td_case(rng):
    d = int(rng.integers(2, 6))
    return {"w": rng.normal(size=d), "x": rng.normal(size=d), "xn": rng.normal(size=d)}, \
        float(rng.normal()), float(rng.uniform(0.5, 1.0))


def test_the_semi_gradient_treats_the_detached_target_as_a_constant(masks):
    """Sutton & Barto (9.7): the semi-gradient of ½(r + γ v̂(s′) − v̂(s))² is −(r + γ v̂(s′) − v̂(s)) x(s); against
    that reference and torch with .detach() on the target, element formula and matrix form."""
    problem, answers = masks
    answer = answers["semi-gradient-td0"]
    element = result(answer, Kind.ELEMENT)
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == \
        unbraced(r"-\left(\gamma v'_{\mathrm{sg}} + r - v\right) x")
    question = next(q for q in problem.questions if q.id == "semi-gradient-td0")
    decls = problem.declarations(question)
    of, wrt = decls.lookup("L"), decls.lookup("w")
    _, node, _, _ = course_form(element.value, tuple(i for _, i in element.axes), of, wrt, decls.names())
    rng = rng_for("masks-td0")
    for _ in range(3):
        leaves, r, gamma = td_case(rng)
        v, vn = leaves["w"] @ leaves["x"], leaves["w"] @ leaves["xn"]
        reference = -(r + gamma * vn - v) * leaves["x"]                          # written from the book, by hand

        def loss(t):
            return (r + gamma * (t["w"] @ t["xn"]).detach() - t["w"] @ t["x"]) ** 2 / 2
        assert_equal_to_autograd("semi-gradient-td0", element, tidy_node(node), {"D": len(leaves["w"])}, leaves,
                                 {"r": r, "gamma": gamma, "v": v, "vn": vn, "vt": vn}, {}, loss, "w")
        tensors = {k: torch.tensor(a, dtype=torch.float64, requires_grad=k == "w") for k, a in leaves.items()}
        (expected,) = torch.autograd.grad(loss(tensors), tensors["w"])
        np.testing.assert_allclose(reference, expected.numpy(), rtol=TOL, atol=TOL)


def test_without_detach_the_full_gradient_is_derived(tmp_path):
    """The same loss with the target not detached: the full gradient −δ (x − γ x′), as torch without
    .detach() (so the stop-gradient is what changed the answer)."""
    text = open(MASKS).read().replace("expr: detach(vn)", "expr: vn")
    element = result(solve_one(text, "semi-gradient-td0", tmp_path), Kind.ELEMENT)
    rng = rng_for("masks-td0-full")
    leaves, r, gamma = td_case(rng)
    tensors = {k: torch.tensor(a, dtype=torch.float64, requires_grad=k == "w") for k, a in leaves.items()}
    loss = (r + gamma * tensors["w"] @ tensors["xn"] - tensors["w"] @ tensors["x"]) ** 2 / 2
    (expected,) = torch.autograd.grad(loss, tensors["w"])
    v, vn = leaves["w"] @ leaves["x"], leaves["w"] @ leaves["xn"]
    names = by_name(element.value)
    scalars = {names[k]: sp.Float(val) for k, val in (("r", r), ("gamma", gamma), ("v", v), ("vn", vn), ("vt", vn))
               if k in names}
    (p,) = [i for _, i in element.axes]
    got = [evaluate(element.value, leaves, scalars, {p: k})
           for k in range(len(leaves["w"]))]
    np.testing.assert_allclose(got, expected.numpy(), rtol=TOL, atol=TOL)
    assert not np.allclose(got, -(r + gamma * vn - v) * leaves["x"])


def test_detach_is_a_layer_and_a_function():
    """detach(x) as a layer (its derivative by x is 0, refused by nothing) and inside a formula."""
    import symderive as sd
    from symderive.derivative import derivative
    from symderive.functions import detach
    x = sd.tensor("x", 3)
    y = sd.detach(x, name="y")
    assert derivative(y, x).value == 0
    w = sp.Symbol("w", real=True)
    assert sp.diff(w * detach(w ** 2), w) == detach(w ** 2)
