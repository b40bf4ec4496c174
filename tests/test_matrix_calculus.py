"""Matrix calculus (issue 18): derivatives of scalars by vectors and matrices, their matrix forms,
and two defects, each against torch autograd in float64.

* Defect 1: a quadratic form summed over samples, Σ_n (x_n − μ)ᵀ P (x_n − μ) with x_n the rows of
  X, failed with "expression too deeply nested" (the matrix form recursed without end); written
  four ways (one sum, the difference as a layer, nested sums, expanded) it is now derived, and
  both its element formula and its matrix form equal torch's gradient.
* Defect 2: an answer's indices (free and summation) were sometimes named after a declared
  tensor or layer (a sigmoid layer p beside the free index p; a declared scalar j beside
  softmax's summation index j). No index of an answer may take a declared name, in the
  answer's SymPy value, in `--json` and on the sheet.

Every size is random in a small range, non-square where it matters, so a transpose cannot pass
by accident.
"""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symderive.answer import Kind, Status
from symderive.evaluate import evaluate
from symderive.matrix_form import latex_in_base, tidy_node, to_matrix, to_vector
from symderive.problem import load_problem
from helpers import NO_PDF, rng_for, run_cli  # noqa: E402

sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
torch = pytest.importorskip("torch")
torch.set_default_dtype(torch.float64)

TOL = 1e-9


def solve(tmp_path, text, qid=None):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    answers = load_problem(path).solve(ids={qid} if qid else None)
    return {a.question_id: a for a in answers}


def result(answer, kind):
    found = [r for r in answer.results if r.kind is kind]
    assert found, f"{answer.question_id}: no {kind} result ({[r.label for r in answer.results]}); {answer.error!r}"
    return found[0]


def by_name(expr):
    return {s.name: s for s in expr.free_symbols if isinstance(s, (sp.Symbol, sp.Idx))}


def gradient_from_answer(answer, shape, arrays, sizes):
    """(element formula at every entry, matrix form) of a derivative of a scalar, as arrays of ``shape``."""
    element = result(answer, Kind.ELEMENT)
    names = by_name(element.value)
    free = [idx for _, idx in element.axes]
    scalars = {names[n]: v for n, v in sizes.items() if n in names}
    formula = np.zeros(shape)
    for pos in np.ndindex(*shape):
        formula[pos] = evaluate(element.value, arrays, scalars, dict(zip(free, pos)))
    form = [r for r in answer.results if r.kind is Kind.MATRIX_FORM]
    matrix = None
    if form:
        node = to_matrix(element.value, *free) if len(free) == 2 else to_vector(element.value, free[0])
        node = tidy_node(node)            # laid out as printed: differences, common factors out front
        assert latex_in_base(node, answer.index_base) == form[0].value   # the form shown is this one
        env = {"tensors": arrays, "scalars": {names[n]: sp.Integer(v) for n, v in sizes.items() if n in names},
               "indices": {}}
        matrix = np.asarray(node.value(env), dtype=float).reshape(shape)
    return formula, matrix


def torch_gradient(loss, arrays, wrt):
    tensors = {k: torch.tensor(v, requires_grad=(k == wrt)) for k, v in arrays.items()}
    value = loss(tensors)
    (grad,) = torch.autograd.grad(value, tensors[wrt])
    return grad.numpy()


# ---------------------------------------------------------------------------------------------
# Defect 1: a quadratic form summed over samples
# ---------------------------------------------------------------------------------------------
QUADRATIC = """\
title: quadratic form over samples
sizes: [N, D]
tensors: {X: [N, D], P: [D, D], mu: [D]}
questions:
  - id: one-sum
    ask: derivative
    of: L
    wrt: mu
    layers:
      L: Sum((X[n, i] - mu[i]) * P[i, j] * (X[n, j] - mu[j]), (n, 0, N-1), (i, 0, D-1), (j, 0, D-1))
  - id: difference-layer
    ask: derivative
    of: L
    wrt: mu
    layers:
      "r[n, i]": X[n, i] - mu[i]
      L: Sum(r[n, i] * P[i, j] * r[n, j], (n, 0, N-1), (i, 0, D-1), (j, 0, D-1))
  - id: nested-sums
    ask: derivative
    of: L
    wrt: mu
    layers:
      L: Sum(Sum(Sum((X[n, i] - mu[i]) * P[i, j] * (X[n, j] - mu[j]), (j, 0, D-1)), (i, 0, D-1)), (n, 0, N-1))
  - id: expanded
    ask: derivative
    of: L
    wrt: mu
    layers:
      L: Sum(X[n, i]*P[i, j]*X[n, j] - X[n, i]*P[i, j]*mu[j] - mu[i]*P[i, j]*X[n, j] + mu[i]*P[i, j]*mu[j],
             (n, 0, N-1), (i, 0, D-1), (j, 0, D-1))
"""


@pytest.fixture(scope="module")
def quadratic(tmp_path_factory):
    return solve(tmp_path_factory.mktemp("quadratic"), QUADRATIC)


@pytest.mark.parametrize("qid", ["one-sum", "difference-layer", "nested-sums", "expanded"])
def test_quadratic_form_over_samples_is_derived_and_matches_torch(quadratic, qid):
    answer = quadratic[qid]
    assert answer.status is Status.DERIVED, answer.error
    assert "deeply" not in answer.error
    rng = rng_for(qid)
    for n, d in ((3, 2), (2, 4), (4, 3)):
        arrays = {"X": rng.normal(size=(n, d)), "P": rng.normal(size=(d, d)), "mu": rng.normal(size=d)}
        expected = torch_gradient(lambda t: torch.einsum("ni,ij,nj->", t["X"] - t["mu"], t["P"], t["X"] - t["mu"]),
                                  arrays, "mu")
        formula, matrix = gradient_from_answer(answer, (d,), arrays, {"N": n, "D": d})
        np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: element formula")
        assert matrix is not None, f"{qid}: no matrix form"
        np.testing.assert_allclose(matrix, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: matrix form")


def test_quadratic_form_over_samples_reads_as_matrices(quadratic):
    form = result(quadratic["one-sum"], Kind.MATRIX_FORM).value
    assert "P^{T} + P" in form and r"\sum_{n=0}^{N - 1}" in form and "X[n]" in form, form


# ---------------------------------------------------------------------------------------------
# Defect 2: no index takes a declared name
# ---------------------------------------------------------------------------------------------
NAMES = """\
title: index names
sizes: [N, D]
questions:
  - id: sigmoid-layer-p
    statement: "Logistic regression with the sigmoid layer named p (and an unused tensor q)."
    ask: derivative
    of: E
    wrt: w
    tensors: {X: [N, D], w: [D], y: [N], q: [D]}
    layers:
      "z[n]": Sum(X[n, d] * w[d], (d, 0, D-1))
      p: sigmoid(z)
      E: -Sum(y[n]*log(p[n]) + (1 - y[n])*log(1 - p[n]), (n, 0, N-1))
  - id: softmax-beside-scalar-j
    ask: derivative
    of: E
    wrt: W
    tensors: {W: [D, N], x: [N], t: [D], j: [], k: []}
    layers:
      "z[i]": Sum(W[i, m] * x[m], (m, 0, N-1))
      n: softmax(z)
      E: -Sum(t[a] * log(n[a]), (a, 0, D-1))
  - id: chain-rule-beside-scalars
    ask: chain_rule
    of: s
    wrt: W
    tensors: {W: [D, N], x: [N], i: [], j: [], k: [], p: [], q: []}
    layers:
      "z[a]": Sum(W[a, b] * x[b], (b, 0, N-1))
      s: softmax(z)
"""
DECLARED = {
    "sigmoid-layer-p": {"N", "D", "X", "w", "y", "q", "z", "p", "E"},
    "softmax-beside-scalar-j": {"N", "D", "W", "x", "t", "j", "k", "z", "n", "E"},
    "chain-rule-beside-scalars": {"N", "D", "W", "x", "i", "j", "k", "p", "q", "z", "s"},
}


def index_names(expr):
    """(free index names, bound index names) of an answer's SymPy value."""
    bound = {limit[0].name for s in expr.atoms(sp.Sum) for limit in s.limits}
    used = {a.name for e in expr.atoms(sp.Indexed) for i in e.indices for a in i.free_symbols}
    return used - bound, bound


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    return solve(tmp_path_factory.mktemp("names"), NAMES)


@pytest.mark.parametrize("qid", list(DECLARED))
def test_no_index_takes_a_declared_name(named, qid):
    answer = named[qid]
    assert answer.status is Status.DERIVED, answer.error
    element = result(answer, Kind.ELEMENT)
    free, bound = index_names(element.value)
    assert {idx.name for _, idx in element.axes} <= free | {idx.name for _, idx in element.axes}
    assert not (free | bound) & DECLARED[qid], (qid, free, bound, element.latex)
    assert not {idx.name for _, idx in element.axes} & DECLARED[qid]


def test_logistic_gradient_with_layer_p_matches_torch(named):
    """The renamed answer is still the gradient: Xᵀ(p − y), against torch."""
    rng = rng_for("logistic-p")
    for n, d in ((4, 2), (3, 5)):
        arrays = {"X": rng.normal(size=(n, d)), "w": rng.normal(size=d), "y": rng.uniform(size=n)}

        def loss(t):
            p = torch.sigmoid(t["X"] @ t["w"])
            return -(t["y"] * torch.log(p) + (1 - t["y"]) * torch.log(1 - p)).sum()
        expected = torch_gradient(loss, arrays, "w")
        p = 1 / (1 + np.exp(-arrays["X"] @ arrays["w"]))
        answer = named["sigmoid-layer-p"]
        element = result(answer, Kind.ELEMENT)
        formula = np.array([evaluate(element.value, {**arrays, "p": p}, {by_name(element.value)["N"]: n},
                                     {element.axes[0][1]: q}) for q in range(d)])
        np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL)
        assert result(answer, Kind.MATRIX_FORM).value == r"X^{T} \left(p - y\right)"


def test_json_and_sheet_show_no_declared_index(tmp_path):
    """The terminal's --json and the .tex sheet print the same indices as the answers."""
    path = tmp_path / "names.yaml"
    path.write_text(NAMES)
    run = run_cli(["solve", path, *NO_PDF, "--json", "--output", tmp_path / "out"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    records = {r["question"]: r for r in json.loads(run.stdout)}
    sheet = (tmp_path / "out" / "names.tex").read_text()
    for qid, declared in DECLARED.items():
        element = next(a for a in records[qid]["answers"] if a["label"] == "element")
        text = element["sympy"]                   # read, not evaluated: subscripts and sum limits
        subscripts = {name for group in re.findall(r"\w\[([^\]]*)\]", text)
                      for name in re.findall(r"[A-Za-z]\w*", group)}
        bound = set(re.findall(r"\((\w+), [^,()]+, [^()]+\)", text))
        assert subscripts and not (subscripts | bound) & (declared - {"N", "D"}), (qid, text)
        lhs_indices = set(re.findall(r"_\{([a-z])\}", element["latex"].split(" = ")[0]))
        lhs_indices |= {i for group in re.findall(r"_\{([a-z](?:,[a-z])+)\}", element["latex"].split(" = ")[0])
                        for i in group.split(",")}
        assert lhs_indices and not lhs_indices & declared, (qid, element["latex"])
        assert element["latex"] in sheet


# ---------------------------------------------------------------------------------------------
# problems/matrix-calculus.yaml: every answer against torch autograd and finite differences
# ---------------------------------------------------------------------------------------------
MATRIX_CALCULUS = Path(__file__).resolve().parents[1] / "problems" / "matrix-calculus.yaml"


def symmetric_matrix(rng, d):
    """Symmetric, with a positive determinant (diagonally dominant)."""
    m = rng.normal(size=(d, d))
    return m + m.T + (2 * d + 1) * np.eye(d)


def invertible(rng, d):
    """A random matrix with a positive determinant, far from singular (diagonally dominant)."""
    return rng.uniform(-1, 1, size=(d, d)) + (d + 1) * np.eye(d)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


# id: (variable, inputs(rng, N, D, K), torch loss, the layers the answer may name (NumPy, from the inputs))
CASES = {
    "cookbook-aXb": ("X", lambda r, n, d, k: {"a": r.normal(size=d), "X": r.normal(size=(d, k)), "b": r.normal(size=k)},
                     lambda t: t["a"] @ t["X"] @ t["b"], {}),
    "cookbook-xAx": ("x", lambda r, n, d, k: {"x": r.normal(size=d), "A": r.normal(size=(d, d))},
                     lambda t: t["x"] @ t["A"] @ t["x"], {}),
    "cookbook-trace-AX": ("X", lambda r, n, d, k: {"A": r.normal(size=(k, d)), "X": r.normal(size=(d, k))},
                          lambda t: torch.trace(t["A"] @ t["X"]), {}),
    "cookbook-trace-XtBX": ("X", lambda r, n, d, k: {"B": r.normal(size=(d, d)), "X": r.normal(size=(d, k))},
                            lambda t: torch.trace(t["X"].T @ t["B"] @ t["X"]), {}),
    "cookbook-det": ("X", lambda r, n, d, k: {"X": invertible(r, d)}, lambda t: torch.linalg.det(t["X"]),
                     {"d": lambda a: np.linalg.det(a["X"])}),
    "cookbook-logdet": ("X", lambda r, n, d, k: {"X": invertible(r, d)}, lambda t: torch.logdet(t["X"]),
                        {"L": lambda a: np.linalg.slogdet(a["X"])[1]}),
    "cookbook-trace-AXinv": ("X", lambda r, n, d, k: {"A": r.normal(size=(d, d)), "X": invertible(r, d)},
                             lambda t: torch.trace(t["A"] @ torch.linalg.inv(t["X"])), {}),
    "cookbook-norm2": ("x", lambda r, n, d, k: {"x": r.normal(size=d), "a": r.normal(size=d)},
                       lambda t: torch.linalg.norm(t["x"] - t["a"]),
                       {"r": lambda a: np.linalg.norm(a["x"] - a["a"])}),
    "cookbook-frobenius": ("X", lambda r, n, d, k: {"X": r.normal(size=(d, k))},
                           lambda t: torch.linalg.norm(t["X"]) ** 2, {}),
    "cs229-least-squares": ("theta", lambda r, n, d, k: {"X": r.normal(size=(n, d)), "theta": r.normal(size=d),
                                                         "y": r.normal(size=n)},
                            lambda t: ((t["X"] @ t["theta"] - t["y"]) ** 2).sum() / 2, {}),
    "ridge-regression": ("w", lambda r, n, d, k: {"X": r.normal(size=(n, d)), "w": r.normal(size=d),
                                                  "y": r.normal(size=n), "lamda": np.array(r.uniform(0.1, 2))},
                         lambda t: ((t["X"] @ t["w"] - t["y"]) ** 2).sum() + t["lamda"] * (t["w"] ** 2).sum(), {}),
    "lasso": ("w", lambda r, n, d, k: {"X": r.normal(size=(n, d)), "w": r.normal(size=d),
                                       "y": r.normal(size=n), "lamda": np.array(r.uniform(0.1, 2))},
              lambda t: ((t["X"] @ t["w"] - t["y"]) ** 2).sum() + t["lamda"] * t["w"].abs().sum(), {}),
    "multi-output-least-squares": ("W", lambda r, n, d, k: {"X": r.normal(size=(n, d)), "W": r.normal(size=(d, k)),
                                                            "Y": r.normal(size=(n, k))},
                                   lambda t: ((t["X"] @ t["W"] - t["Y"]) ** 2).sum(), {}),
    "logistic-regression": ("w", lambda r, n, d, k: {"X": r.normal(size=(n, d)), "w": r.normal(size=d),
                                                     "y": r.uniform(size=n)},
                            lambda t: -(t["y"] * torch.log(torch.sigmoid(t["X"] @ t["w"]))
                                        + (1 - t["y"]) * torch.log(1 - torch.sigmoid(t["X"] @ t["w"]))).sum(),
                            {"z": lambda a: a["X"] @ a["w"], "p": lambda a: sigmoid(a["X"] @ a["w"])}),
}


def gaussian(t, n):
    diff = t["X"] - t["mu"]
    return n / 2 * torch.logdet(t["Lambda"]) - torch.einsum("ni,ij,nj->", diff, t["Lambda"], diff) / 2


for _qid, _wrt in (("gaussian-mean", "mu"), ("gaussian-precision", "Lambda")):
    CASES[_qid] = (_wrt, lambda r, n, d, k: {"X": r.normal(size=(n, d)), "mu": r.normal(size=d),
                                             "Lambda": invertible(r, d)}, gaussian,
                   {"r": lambda a: a["X"] - a["mu"]})

CASES["gaussian-mean-symmetric"] = ("mu", lambda r, n, d, k: {"X": r.normal(size=(n, d)), "mu": r.normal(size=d),
                                                             "Lambda": symmetric_matrix(r, d)}, gaussian,
                                    {"r": lambda a: a["X"] - a["mu"]})

# By a symmetric Λ: the unconstrained gradient (torch's, at a symmetric value), as the sheet states.
CASES["gaussian-precision-symmetric"] = ("Lambda", CASES["gaussian-mean-symmetric"][1], gaussian,
                                         {"r": lambda a: a["X"] - a["mu"]})

# Functions applied entry by entry in the matrix syntax (tanh(W @ x), exp(X), 1 - y).
CASES["logistic-regression-matrix"] = (
    "w", CASES["logistic-regression"][1],
    lambda t: -(t["y"] @ torch.log(torch.sigmoid(t["X"] @ t["w"]))
                + (1 - t["y"]) @ torch.log(1 - torch.sigmoid(t["X"] @ t["w"]))), {})
CASES["tanh-layer-squared-error"] = (
    "W", lambda r, n, d, k: {"W": r.normal(size=(k, d)), "x": r.normal(size=d), "y": r.normal(size=k)},
    lambda t: ((torch.tanh(t["W"] @ t["x"]) - t["y"]) ** 2).sum() / 2, {})
CASES["entrywise-exp-trace"] = (
    "X", lambda r, n, d, k: {"B": r.normal(size=(d, k)), "X": r.normal(size=(d, k))},
    lambda t: torch.trace(t["B"].T @ torch.exp(t["X"])), {})

CASES["matrixcalculus-trace-AXtBXC"] = (
    "X", lambda r, n, d, k: {"A": r.normal(size=(n, k)), "X": r.normal(size=(d, k)), "B": r.normal(size=(d, d)),
                             "C": r.normal(size=(k, n))},
    lambda t: torch.trace(t["A"] @ t["X"].T @ t["B"] @ t["X"] @ t["C"]), {})

SIZES = ((4, 3, 2), (3, 2, 5), (2, 4, 3))     # (N, D, K), each different: a transpose cannot pass


@pytest.fixture(scope="module")
def matrix_calculus():
    return {a.question_id: a for a in load_problem(MATRIX_CALCULUS).solve()}


def test_every_question_is_derived_and_tested(matrix_calculus):
    assert all(a.status is Status.DERIVED for a in matrix_calculus.values()), \
        {q: a.error for q, a in matrix_calculus.items() if a.status is not Status.DERIVED}
    assert set(matrix_calculus) == set(CASES) | {"cookbook-inverse"}


def answer_gradient(answer, shape, arrays, sizes):
    """The element formula and the matrix form evaluated, with named layers and X^{-1} supplied."""
    named = {**arrays, **{f"{name}^{{-1}}": np.linalg.inv(value) for name, value in arrays.items()
                          if value.ndim == 2 and value.shape[0] == value.shape[1]}}
    scalar_values = {name: float(v) for name, v in named.items() if np.ndim(v) == 0}
    arrays_only = {name: v for name, v in named.items() if np.ndim(v) > 0}
    element = result(answer, Kind.ELEMENT)
    names = by_name(element.value)
    free = [idx for _, idx in element.axes]
    scalars = {names[n]: v for n, v in {**sizes, **scalar_values}.items() if n in names}
    formula = np.zeros(shape)
    for pos in np.ndindex(*shape):
        formula[pos] = evaluate(element.value, arrays_only, scalars, dict(zip(free, pos)))
    form = [r for r in answer.results if r.kind is Kind.MATRIX_FORM]
    if not form:
        return formula, None
    node = tidy_node(to_matrix(element.value, *free) if len(free) == 2 else to_vector(element.value, free[0]))
    assert latex_in_base(node, answer.index_base) == form[0].value
    env = {"tensors": arrays_only, "indices": {},
           "scalars": {names[n]: sp.Float(v) for n, v in {**sizes, **scalar_values}.items() if n in names}}
    return formula, np.asarray(node.value(env), dtype=float).reshape(shape)


def finite_difference(loss, arrays, wrt, h=1e-6):
    out = np.zeros(np.shape(arrays[wrt]))
    for pos in np.ndindex(*out.shape):
        values = []
        for step in (h, -h):
            moved = {k: v.copy() for k, v in arrays.items()}
            moved[wrt][pos] += step
            values.append(float(loss({k: torch.tensor(v) for k, v in moved.items()})))
        out[pos] = (values[0] - values[1]) / (2 * h)
    return out


@pytest.mark.parametrize("qid", list(CASES))
def test_matrix_calculus_against_torch(matrix_calculus, qid):
    wrt, make, loss, layers = CASES[qid]
    answer = matrix_calculus[qid]
    rng = rng_for(qid)
    for n, d, k in SIZES:
        arrays = {name: np.asarray(v, dtype=float) for name, v in make(rng, n, d, k).items()}
        bound = (lambda t: loss(t, n)) if loss is gaussian else loss
        expected = torch_gradient(bound, arrays, wrt)
        np.testing.assert_allclose(finite_difference(bound, arrays, wrt), expected, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{qid}: the torch reference itself")
        named = {**arrays, **{name: np.asarray(f(arrays), dtype=float) for name, f in layers.items()}}
        if loss is gaussian:
            named["ell"] = np.asarray(float(bound({k_: torch.tensor(v) for k_, v in arrays.items()})))
        formula, matrix = answer_gradient(answer, expected.shape, named, {"N": n, "D": d, "K": k})
        np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: element formula")
        assert matrix is not None, f"{qid}: no matrix form"
        np.testing.assert_allclose(matrix, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: matrix form")


def test_inverse_jacobian_against_torch(matrix_calculus):
    """∂(X⁻¹)_ij/∂X_pq = −(X⁻¹)_ip (X⁻¹)_qj, all four indices, against torch's Jacobian of inv."""
    answer = matrix_calculus["cookbook-inverse"]
    element = result(answer, Kind.ELEMENT)
    free = [idx for _, idx in element.axes]
    rng = rng_for("cookbook-inverse")
    for d in (2, 3, 4):
        X = invertible(rng, d)
        expected = torch.autograd.functional.jacobian(torch.linalg.inv, torch.tensor(X)).numpy()
        arrays = {"X": X, "Y": np.linalg.inv(X), "X^{-1}": np.linalg.inv(X)}
        names = by_name(element.value)
        got = np.zeros((d,) * 4)
        for pos in np.ndindex(*got.shape):
            got[pos] = evaluate(element.value, arrays, {names["D"]: d} if "D" in names else {}, dict(zip(free, pos)))
        np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


def test_the_differential_of_an_inverse(matrix_calculus):
    """dX⁻¹ = −X⁻¹ (dX) X⁻¹ (Matrix Cookbook eq. 36; Y is the layer X⁻¹), and that reference is
    torch's directional derivative of inv."""
    found = [r for r in matrix_calculus["cookbook-inverse"].results if r.label == "differential"]
    assert found and found[0].value == r"-Y \mathrm{d}X Y", [r.label for r in found]
    rng = rng_for("differential")
    for d in (2, 3, 4):
        X, dX = invertible(rng, d), rng.normal(size=(d, d))
        _, expected = torch.autograd.functional.jvp(torch.linalg.inv, torch.tensor(X), torch.tensor(dX))
        inverse = np.linalg.inv(X)
        np.testing.assert_allclose(-inverse @ dX @ inverse, expected.numpy(), rtol=TOL, atol=TOL)


def test_the_differential_of_a_product(tmp_path):
    """Y = A X B: dY = A (dX) B, and with X alone on the left (dX) B; ⊙ of X has no such form."""
    text = ("title: d\nsizes: [D, K]\ntensors: {X: [D, D], A: [K, D], B: [D, K]}\nquestions:\n"
            "  - {id: axb, ask: derivative, of: Y, wrt: X, array: false,\n"
            "     layers: {'Y[i:K, j:K]': '(A @ X @ B)[i, j]'}}\n"
            "  - {id: xb, ask: derivative, of: Y, wrt: X, array: false, layers: {'Y[i:D, j:K]': '(X @ B)[i, j]'}}\n"
            "  - {id: xx, ask: derivative, of: Y, wrt: X, array: false, layers: {'Y[i:D, j:D]': 'X[i, j]**2'}}\n")
    answers = solve(tmp_path, text)
    forms = {qid: [r.value for r in a.results if r.label == "differential"] for qid, a in answers.items()}
    assert forms == {"axb": [r"A \mathrm{d}X B"], "xb": [r"\mathrm{d}X B"], "xx": []}, forms


EXPECTED_FORMS = {        # the forms a course writes, as printed (index base 1)
    "cookbook-aXb": r"a\, b^{T}",
    "cookbook-trace-AX": "A^{T}",
    "cookbook-trace-XtBX": r"\left(B^{T} + B\right) X",
    "cookbook-logdet": "X^{-T}",
    "cookbook-norm2": r"\frac{x - a}{\lVert x - a \rVert_2}",
    "cookbook-trace-AXinv": "-X^{-T} A^{T} X^{-T}",
    "multi-output-least-squares": "2 X^{T} X W - 2 X^{T} Y",
    "logistic-regression": r"X^{T} \left(p - y\right)",
    "gaussian-mean-symmetric": r"\Lambda \sum_{n=1}^{N} \left(X[n] - \mu\right)",
    "logistic-regression-matrix": r"X^{T} \left(\sigma\left(X w\right) - y\right)",
    "entrywise-exp-trace": r"B \odot \exp\left(X\right)",
    "matrixcalculus-trace-AXtBXC": r"B^{T} X A^{T} C^{T} + B X C A",       # Matrix Cookbook, section 2.5.2
    "gaussian-precision-symmetric": r"\frac{N}{2} {\Lambda}^{-1} - \frac{1}{2} \sum_{n=1}^{N} "
                                    r"\left(\left(X[n] - \mu\right)\, "
                                    # braces are kept before a script
                                    r"\left(X[n] - \mu\right)^{T}\right)",
}


def test_the_convention_for_a_symmetric_variable_is_stated(matrix_calculus):
    """By a symmetric Λ the sheet says which gradient it gives (the unconstrained one) and the other."""
    steps = " ".join(step.why for step in matrix_calculus["gaussian-precision-symmetric"].steps)
    assert "as if its entries were independent" in steps and "G + G^{T} - \\operatorname{diag}(G)" in steps
    assert "as if its entries" not in " ".join(step.why for step in matrix_calculus["gaussian-precision"].steps)


def unbraced(latex):
    r"""The references are written without the braces a display name is printed in ({\Lambda} -> \Lambda)."""
    return re.sub(r"\{(\\[A-Za-z]+)\}(?![_^])", r"\1", latex)


@pytest.mark.parametrize("qid", list(EXPECTED_FORMS))
def test_matrix_forms_read_as_in_the_references(matrix_calculus, qid):
    assert unbraced(result(matrix_calculus[qid], Kind.MATRIX_FORM).value) == EXPECTED_FORMS[qid]


# ---------------------------------------------------------------------------------------------
# --verify: det, log det and X⁻¹ are computed by torch.linalg, and a wrong rule is caught
# ---------------------------------------------------------------------------------------------
def test_verify_agrees_on_every_question(matrix_calculus):
    from symderive import verify
    problem = load_problem(MATRIX_CALCULUS)
    answers = list(matrix_calculus.values())
    reports = {r.question: r for r in verify.cross_check(problem, answers)}
    for qid, report in reports.items():
        assert report.outcome in (verify.AGREE, verify.NO_COUNTERPART), (qid, report.outcome, report.reason)
        assert report.autograd and report.entries > 0, (qid, report)


def test_verify_catches_a_wrong_logdet_rule(tmp_path, monkeypatch):
    from symderive import matrix_functions, verify
    monkeypatch.setattr(matrix_functions.logdet, "_by_entry", lambda self, inverse_qp: 2 * inverse_qp)
    problem = load_problem(MATRIX_CALCULUS)
    answers = problem.solve(ids={"cookbook-logdet"})
    assert result(answers[0], Kind.ELEMENT).value != 0
    (report,) = verify.cross_check(problem, answers)
    assert report.outcome == verify.DISAGREE, (report.outcome, report.reason)


# ---------------------------------------------------------------------------------------------
# Symmetric matrices as declared facts
# ---------------------------------------------------------------------------------------------
SYMMETRIC = """\
title: symmetric
sizes: [N, D]
questions:
  - id: quadratic-form
    ask: derivative
    of: f
    wrt: x
    tensors: {x: [D], A: {shape: [D, D], symmetric: true}}
    layers:
      f: transpose(x) @ A @ x
  - id: gaussian-mean
    ask: derivative
    of: ell
    wrt: mu
    tensors: {X: [N, D], mu: [D], Lambda: {shape: [D, D], symmetric: true}}
    layers:
      ell: N/2 * logdet(Lambda) - Sum((X[n, i] - mu[i]) * Lambda[i, j] * (X[n, j] - mu[j]),
                                      (n, 1, N), (i, 1, D), (j, 1, D)) / 2
  - id: by-a-symmetric-matrix
    ask: derivative
    of: f
    wrt: A
    tensors: {x: [D], A: {shape: [D, D], symmetric: true}}
    layers:
      f: transpose(x) @ A @ x
  - id: not-square
    ask: shape
    of: A
    tensors: {A: {shape: [D, N], symmetric: true}}
  - id: not-a-boolean
    ask: shape
    of: A
    tensors: {A: {shape: [D, D], symmetric: "yes"}}
"""


@pytest.fixture(scope="module")
def symmetric(tmp_path_factory):
    path = tmp_path_factory.mktemp("symmetric") / "symmetric.yaml"
    path.write_text("index_base: 1\n" + SYMMETRIC)
    return path, {a.question_id: a for a in load_problem(path).solve()}


def test_symmetric_quadratic_form_is_2Ax(symmetric):
    _, answers = symmetric
    answer = answers["quadratic-form"]
    assert result(answer, Kind.MATRIX_FORM).value == "2 A x"
    rng = rng_for("symmetric-quadratic-form")
    for d in (2, 3, 5):
        arrays = {"x": rng.normal(size=d), "A": symmetric_matrix(rng, d)}
        expected = torch_gradient(lambda t: t["x"] @ t["A"] @ t["x"], arrays, "x")
        formula, matrix = gradient_from_answer(answer, (d,), arrays, {"D": d})
        np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(matrix, expected, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(matrix, 2 * arrays["A"] @ arrays["x"], rtol=TOL, atol=TOL)


def test_symmetric_precision_gives_lambda_times_the_residual_sum(symmetric):
    _, answers = symmetric
    answer = answers["gaussian-mean"]
    assert unbraced(result(answer, Kind.MATRIX_FORM).value) == r"\Lambda \sum_{n=1}^{N} \left(X[n] - \mu\right)"
    rng = rng_for("symmetric-gaussian")
    for n, d in ((3, 2), (2, 4)):
        arrays = {"X": rng.normal(size=(n, d)), "mu": rng.normal(size=d), "Lambda": symmetric_matrix(rng, d)}
        expected = torch_gradient(lambda t: gaussian(t, n), arrays, "mu")
        formula, matrix = gradient_from_answer(answer, (d,), {**arrays, "ell": np.array(0.0)}, {"N": n, "D": d})
        np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(matrix, expected, rtol=TOL, atol=TOL)


def test_by_a_symmetric_matrix_the_unconstrained_gradient(symmetric):
    """∂(xᵀAx)/∂A with A symmetric is x xᵀ, torch's gradient at a symmetric A (not the gradient
    among symmetric matrices, 2x xᵀ − diag(x xᵀ)), and the sheet says which."""
    _, answers = symmetric
    answer = answers["by-a-symmetric-matrix"]
    assert answer.status is Status.DERIVED, answer.error
    assert any("as if its entries were independent" in step.why for step in answer.steps)
    rng = rng_for("by-a-symmetric-matrix")
    for d in (2, 3, 4):
        x, a = rng.normal(size=d), rng.normal(size=(d, d))
        arrays = {"x": x, "A": a + a.T}
        expected = torch_gradient(lambda t: t["x"] @ t["A"] @ t["x"], arrays, "A")
        formula, matrix = gradient_from_answer(answer, (d, d), arrays, {"D": d})
        np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(matrix, expected, rtol=TOL, atol=TOL)
        assert not np.allclose(matrix, 2 * expected - np.diag(np.diag(expected)))


def test_symmetric_declarations_refused_where_they_do_not_apply(symmetric):
    _, answers = symmetric
    assert answers["not-square"].status is Status.FAILED
    assert "only a square matrix can be symmetric" in answers["not-square"].error
    assert re.search(r"symmetric\.yaml:\d+:\d+: question not-square", answers["not-square"].error)
    assert "symmetric is true or false" in answers["not-a-boolean"].error


def test_checking_draws_symmetric_values(symmetric):
    """A student's (A + Aᵀ)x is right for a symmetric A, and so is 2Ax; Ax is wrong."""
    path, _ = symmetric
    problem = load_problem(path)
    verdicts = {}
    for latex in (r"$2 A x$", r"$(A + A^{T}) x$", r"$A x$"):
        report = problem.check({"quadratic-form": latex}, workers=1, isolate=False)
        verdicts[latex] = next(v.verdict for v in report.verdicts if v.question == "quadratic-form")
    assert verdicts == {r"$2 A x$": "correct", r"$(A + A^{T}) x$": "correct", r"$A x$": "incorrect"}


# ---------------------------------------------------------------------------------------------
# Bad matrix expressions in a problem file: one line naming the file, line, column and question
# ---------------------------------------------------------------------------------------------
BAD_MATRIX_LAYERS = [
    ("inverse(X)", "inverse needs a square matrix; this one is D×K"),
    ("X**-1", "inverse needs a square matrix; this one is D×K"),
    ("det(x)", "det needs a square matrix; this one is D×1"),
    ("logdet(X)", "logdet needs a square matrix; this one is D×K"),
    ("det(S @ S)", "det takes a declared square matrix by name"),
    ("trace(X)", "trace needs a square matrix; this one is D×K"),
    ("trace(exp(X))", "trace needs a square matrix; this one is D×K"),
    ("norm(X, 1)", "norm(v, 1) is for vectors"),
    ("norm(x, 3)", "norm() has the orders 2"),
    ("trace(S @ X)", "trace needs a square matrix; this one is D×K"),
    ("S**2", "a matrix power is only X**-1"),
    ("trace(exp(S, 2))", "expected a matrix or vector here"),
    ("X @ S", "cannot multiply a D×K matrix by a D×D one"),
]


@pytest.mark.parametrize("layer, message", BAD_MATRIX_LAYERS, ids=[c[0] for c in BAD_MATRIX_LAYERS])
def test_bad_matrix_expressions_get_one_line(tmp_path, layer, message):
    assert_refused_in_one_line(tmp_path, layer, message)


def assert_refused_in_one_line(tmp_path, layer, message):
    """A question whose layer f is ``layer`` fails with one line naming the file, line 10 and the question."""
    text = ("title: bad\nsizes: [D, K]\ntensors: {X: [D, K], S: [D, D], x: [D]}\nquestions:\n"
            f"  - id: q\n    ask: derivative\n    of: f\n    wrt: S\n    layers:\n      f: {layer}\n")
    answers = solve(tmp_path, text)
    error = answers["q"].error
    assert answers["q"].status is Status.FAILED and message in error and "\n" not in error, error
    assert re.search(r"p\.yaml:10:\d+: question q", error), error


# ---------------------------------------------------------------------------------------------
# The same questions with their functions written in LaTeX in the problem file
# ---------------------------------------------------------------------------------------------
LATEX_LAYERS = {
    "cookbook-aXb": r"$a^T X b$",
    "cookbook-xAx": r"$x^\top A x$",
    "cookbook-trace-AX": r"$\operatorname{tr}(A X)$",
    "cookbook-trace-XtBX": r"$\mathrm{tr}(X^{T} B X)$",
    "cookbook-det": r"$\det X$",
    "cookbook-logdet": r"$\log\det X$",
    "cookbook-trace-AXinv": r"$\text{tr}(A X^{-1})$",
    "cookbook-norm2": r"$\|x - a\|_2$",
    "cookbook-frobenius": r"$\|X\|_F^2$",
    "cs229-least-squares": r"$\frac{1}{2}\|X\theta - y\|^2$",
    "ridge-regression": r"$\|Xw - y\|_2^2 + \lambda \lVert w \rVert_2^2$",
    "lasso": r"$\|Xw - y\|^2 + \lambda\|w\|_1$",
    "multi-output-least-squares": r"$\lVert X W - Y \rVert_F^2$",
    "entrywise-exp-trace": r"$\operatorname{tr}(B^T \exp(X))$",
    "tanh-layer-squared-error": r"$\frac{1}{2}\|\tanh(W x) - y\|^2$",
}
#: Other spellings of the same functions, as (question, LaTeX).
LATEX_SPELLINGS = list(LATEX_LAYERS.items()) + [
    ("cookbook-logdet", r"$\ln\det(X)$"),
    ("cookbook-logdet", r"$\operatorname{logdet} X$"),
    ("cookbook-trace-AXinv", r"$\operatorname{Tr}(A X^{-1})$"),
    ("cookbook-trace-AXinv", r"$\operatorname{tr}((X^{-T})^{T} A)$"),
    ("cookbook-aXb", r"$a^{\mathsf{T}} X b$"),
    ("cookbook-xAx", r"$\operatorname{tr}(x^T A x)$"),
    ("cs229-least-squares", r"$\frac{1}{2}(X\theta - y)^T I_N (X\theta - y)$"),
    ("ridge-regression", r"$(Xw - y)^\top (Xw - y) + \lambda\, w^\top w$"),
]


@pytest.fixture(scope="module")
def latex_answers(tmp_path_factory):
    import yaml
    source = yaml.safe_load(MATRIX_CALCULUS.read_text())
    by_id = {q["id"]: q for q in source["questions"]}
    questions = [{**by_id[qid], "id": f"{qid}-{k}", "layers": {by_id[qid]["of"]: latex}}
                 for k, (qid, latex) in enumerate(LATEX_SPELLINGS)]
    path = tmp_path_factory.mktemp("latex") / "latex.yaml"
    path.write_text(yaml.safe_dump({"title": "LaTeX", "index_base": 1, "sizes": source["sizes"],
                                    "questions": questions}))
    return {a.question_id: a for a in load_problem(path).solve()}


@pytest.mark.parametrize("k, qid, latex", [(k, q, t) for k, (q, t) in enumerate(LATEX_SPELLINGS)],
                         ids=[t for _, t in LATEX_SPELLINGS])
def test_latex_matrix_functions_against_torch(latex_answers, k, qid, latex):
    wrt, make, loss, layers = CASES[qid]
    answer = latex_answers[f"{qid}-{k}"]
    assert answer.status is Status.DERIVED, answer.error
    rng = rng_for("latex " + qid)
    for n, d, k in SIZES:
        arrays = {name: np.asarray(v, dtype=float) for name, v in make(rng, n, d, k).items()}
        expected = torch_gradient(loss, arrays, wrt)
        named = {**arrays, **{name: np.asarray(f(arrays), dtype=float) for name, f in layers.items()}}
        formula, matrix = answer_gradient(answer, expected.shape, named, {"N": n, "D": d, "K": k})
        np.testing.assert_allclose(formula, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: element formula")
        assert matrix is not None, f"{qid}: no matrix form"
        np.testing.assert_allclose(matrix, expected, rtol=TOL, atol=TOL, err_msg=f"{qid}: matrix form")


@pytest.mark.parametrize("latex, message", [
    (r"$\det x$", "det needs a square matrix; this one is D×1"),
    (r"$\operatorname{tr}(x^{-1})$", "inverse needs a square matrix; this one is D×1"),
    (r"$\|x\|_3$", "a norm's subscript is 1, 2 or F"),
    (r"$\operatorname{tr}(I)$", "write the identity with its size, I_n"),
    (r"$\operatorname{tr}(S_{1} S)$", "entries (S_{...}) are not read"),
    (r"$\|x\| = 1$", "one expression, not a relation"),
])
def test_bad_latex_matrix_expressions_get_one_line(tmp_path, latex, message):
    assert_refused_in_one_line(tmp_path, f"'{latex}'", message)
