"""The array evaluator (``evaluate.evaluate_grid``, issue 17) against the entry-by-entry one and NumPy.

* Each kind of node an index formula holds (sums with bounds on an outer index, entries outside a tensor,
  Piecewise, KroneckerDelta, Heaviside, Max, Mod, functions, det, an Idx beside the symbol of its name) gives
  the same array as ``evaluate`` entry by entry, to the last bit (a sheet prints the form check's error,
  1.1e-16), and without calling it (the arrays really are used).
* Multi-head attention's layers, as vaswani-mha-dWv's form check computes them, equal a NumPy forward pass
  written here (per head softmax(Q_h K_hᵀ/√D) V_h, concatenated, times W_oᵀ).
* What the arrays cannot do the same way is left to ``evaluate``: a function of a matrix given entry by
  entry is evaluated, and log of a negative number still raises.
* The form check built on it can still fail: a head's intermediate defined one column off, or dV₁ read from
  the second head, is refused by ``matrix_form.check`` with an error far above the tolerance.
"""
import math

import numpy as np
import pytest
import sympy as sp

from symderive import evaluate as evaluate_module
from symderive.answer import Kind, Status
from symderive.derivative import graph_names
from symderive.evaluate import evaluate, evaluate_grid
from symderive.functions import relu, sigmoid
from symderive.indices import make_index
from symderive.asks.matrix_view import form_of
from symderive.matrix_form import check, tidy_node
from symderive.matrix_functions import det, det_of_entries
from symderive.problem import load_problem
from symderive.tensors import Tensor
from symderive.course_forms import layer_backward
from helpers import result, rng_for  # noqa: E402

N = sp.Symbol("N", integer=True, positive=True)
i, j, k = make_index("i", N), make_index("j", N), make_index("k", N)
x, W = sp.IndexedBase(sp.Symbol("x", real=True)), sp.IndexedBase(sp.Symbol("W", real=True))
lam = sp.Symbol("lam", real=True)

#: name: (formula in i and j, or in i alone).
FORMULAS = {
    "matrix-vector": sp.Sum(W[i, k] * x[k], (k, 0, N - 1)),
    "prefix sum": sp.Sum(x[k], (k, 0, i)),                                   # a bound on the free index
    "nested bounds": sp.Sum(sp.Sum(W[k, j], (j, k, N - 1)), (k, 0, i)),
    "two limits": sp.Sum(W[i, k] * W[j, k] * x[j], (k, 0, N - 1), (j, 0, N - 1)),
    "padding": x[i - 1] + x[i + 1] - 2 * x[i],                               # outside the tensor: 0
    "softmax": sp.exp(W[i, j]) / sp.Sum(sp.exp(W[i, k]), (k, 0, N - 1)),
    "scaled": sp.Sum(W[i, k] * W[j, k], (k, 0, N - 1)) / sp.sqrt(N) + lam * x[i],
    "piecewise": sp.Piecewise((W[i, j], sp.And(i > j, sp.Or(x[i] > 0, sp.Not(sp.Eq(j, 0))))),
                              (-x[j], i < j), (lam, True)),
    "delta and step": sp.KroneckerDelta(i, j) * sp.Heaviside(W[i, j]) + sp.Heaviside(x[j], 0),
    "max and mod": sp.Max(W[i, j], x[i], 0) + sp.Min(W[j, i], 0) + sp.Mod(i + 2 * j, 3),
    "functions": sp.tanh(W[i, j]) + sigmoid(x[i]) + relu(W[j, i]) + sp.erf(x[j]) + sp.Abs(W[i, j]) ** 3,
    "det": det(W) * x[i] + sp.log(1 + W[i, j] ** 2),
    "same name": W[i, j] + x[sp.Symbol("i", integer=True)],                  # the Symbol i is the Idx i
}


def _values(rng, n):
    return {"W": rng.uniform(-1, 1, (n, n)), "x": rng.uniform(-1, 1, n)}


def _entry_by_entry(formula, free, dims, arrays, scalars):
    out = np.zeros(dims)
    for pos in np.ndindex(*dims):
        out[pos] = evaluate(formula, arrays, scalars, dict(zip(free, pos)))
    return out


def _free(formula):
    """(i, j), or (i,) where j is not free (summed, or absent)."""
    bound = {limit[0] for s in formula.atoms(sp.Sum) for limit in s.limits}
    return (i, j) if j in formula.atoms(sp.Idx) - bound else (i,)


@pytest.mark.parametrize("name", list(FORMULAS))
def test_the_arrays_give_every_entry_without_the_entry_walk(name, monkeypatch):
    rng = rng_for("grid-" + name)
    formula = FORMULAS[name]
    for n in (2, 3, 4):
        arrays, scalars = _values(rng, n), {N: n, lam: rng.uniform(0.5, 1.5)}
        free = _free(formula)
        dims = (n,) * len(free)
        expected = _entry_by_entry(formula, free, dims, arrays, scalars)
        with monkeypatch.context() as patched:
            patched.setattr(evaluate_module, "evaluate", _no_entry_walk)
            got = evaluate_grid(formula, free, dims, arrays, scalars)
        np.testing.assert_array_equal(got, expected, err_msg=name)     # to the last bit: sheets print the error


def _no_entry_walk(*_):
    raise AssertionError("evaluated entry by entry")


def test_a_function_of_entries_is_left_to_the_entry_walk():
    """det of a matrix given entry by entry has no array form here: it is evaluated entry by entry."""
    rng = rng_for("grid-of-entries")
    r, c = sp.symbols("r c", integer=True)
    formula = det_of_entries(W[r, c] + sp.KroneckerDelta(r, c), r, c, N) * x[i]
    arrays = _values(rng, 3)
    got = evaluate_grid(formula, (i,), (3,), arrays, {N: 3})
    np.testing.assert_allclose(got, np.linalg.det(arrays["W"] + np.eye(3)) * arrays["x"], rtol=1e-12)


def test_what_the_entry_walk_refuses_is_still_refused():
    """log of a negative entry is NaN in NumPy but an error entry by entry; the arrays do not hide it."""
    with pytest.raises(ValueError):
        evaluate_grid(sp.log(x[i]), (i,), (2,), {"x": np.array([1.0, -1.0])})


def test_a_sum_too_large_for_one_array_is_summed_entry_by_entry(monkeypatch):
    monkeypatch.setattr(evaluate_module, "GRID_LIMIT", 5)
    arrays = _values(rng_for("grid-limit"), 3)
    got = evaluate_grid(FORMULAS["matrix-vector"], (i,), (3,), arrays, {N: 3})
    np.testing.assert_allclose(got, arrays["W"] @ arrays["x"], rtol=1e-12)


# Multi-head attention --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mha():
    problem = load_problem("problems/recurrent-and-attention.yaml")
    question = next(q for q in problem.questions if q.id == "vaswani-mha-dWv")
    decls = problem.declarations(question)
    (answer,) = problem.solve(ids={question.id})
    assert answer.status is Status.DERIVED, answer.error
    return problem, question, decls, decls.lookup("y"), decls.lookup("Wv"), answer


def _mha_numpy(X, Wq, Wk, Wv, Wo, D):
    """PyTorch's MultiheadAttention with two heads of dimension D, written out in NumPy."""
    Q, K, V = X @ Wq.T, X @ Wk.T, X @ Wv.T
    heads, weights = [], []
    for h in range(2):
        cols = slice(h * D, (h + 1) * D)
        scores = Q[:, cols] @ K[:, cols].T / math.sqrt(D)
        P = np.exp(scores - scores.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        weights.append(P)
        heads.append(P @ V[:, cols])
    return np.concatenate(heads, axis=1) @ Wo.T, np.stack(weights)


def _mha_values(rng, of, wrt):
    D, L = rng.integers(2, 4, size=2)
    sizes = {s: sp.Integer(int(v)) for s, v in zip(sorted({s for n in of.shape for s in sp.sympify(n).free_symbols},
                                                          key=str), (D, L))}
    shapes = {name: [int(sp.sympify(n).xreplace(sizes)) for n in leaf.shape] for name, leaf in of.leaves().items()}
    return int(D), sizes, {name: rng.uniform(-1, 1, shape) for name, shape in shapes.items()}


def test_attention_layers_as_arrays_equal_numpy(mha, monkeypatch):
    """y and its attention weights, each from its own element formula in one array walk."""
    *_, of, wrt, _ = mha
    layers = {**of.layer_inputs(), of.name: of}
    rng = rng_for("grid-mha-forward")
    monkeypatch.setattr(evaluate_module, "evaluate", _no_entry_walk)
    for _ in range(3):
        D, sizes, arrays = _mha_values(rng, of, wrt)
        y, weights = _mha_numpy(arrays["X"], arrays["Wq"], arrays["Wk"], arrays["Wv"], arrays["Wo"], D)
        got = {}
        for name in (of.name, of.name + "_weights"):
            layer = layers[name]
            idx = layer.free_indices()
            dims = [int(sp.sympify(n).xreplace(sizes)) for n in layer.shape]
            got[name] = evaluate_grid(layer.element(idx, expand=True), idx, dims, arrays, sizes)
        np.testing.assert_allclose(got[of.name], y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[of.name + "_weights"], weights, rtol=1e-12, atol=1e-12)


def _gradient_check(mha, named):
    """``check`` of the form dVᵀ X of ∂ℓ/∂W_v against its element formula, as the sheet's check runs it: the
    layers and each intermediate computed from their own definitions (``named``), one array walk each."""
    problem, question, decls, of, wrt, answer = mha
    element = result(answer, Kind.ELEMENT)
    free = tuple(index for _, index in element.axes)
    right = layer_backward(of, wrt, Tensor("g", of.shape), free, decls.names() | graph_names(of, wrt) | {"g", "l"})
    layers = {**of.layer_inputs(), of.name: of}
    derived = [(name, layer.shape, layer.element(layer.free_indices(), expand=True), layer.free_indices())
               for name, layer in layers.items() if name != wrt.name][::-1]
    tensors = {name: leaf.shape for name, leaf in of.leaves().items()} | {"g": of.shape}
    sizes = sorted({s for shape in tensors.values() for n in shape for s in sp.sympify(n).free_symbols}, key=str)
    node = tidy_node(form_of(right.gradient, free))
    return check(node, element.value, free, tensors, sizes, derived + [n.derived() for n in (named or right.named)])


def test_a_wrong_attention_intermediate_is_refused(mha):
    """The right intermediates pass; dO₁ defined one column off (dO[i, a + 1], the second head's first column
    at a = D − 1), or A₁ read from the second head's weights, make dVᵀ X differ from the element formula."""
    problem, question, decls, of, wrt, answer = mha
    assert _gradient_check(mha, None) < 1e-12
    element = result(answer, Kind.ELEMENT)
    free = tuple(index for _, index in element.axes)
    named = layer_backward(of, wrt, Tensor("g", of.shape), free,
                           decls.names() | graph_names(of, wrt) | {"g", "l"}).named
    by_name = {step.tensor.name: n for n, step in enumerate(named)}
    changes = {"dO1": lambda e, idx: e.xreplace({idx[-1]: idx[-1] + 1}),
               "A1": lambda e, idx: e.replace(lambda t: isinstance(t, sp.Indexed) and t.indices[0] == 0,
                                              lambda t: t.base[(1,) + tuple(t.indices[1:])])}
    for name, change in changes.items():
        step = named[by_name[name]]
        changed = change(step.element, step.idx)
        assert changed != step.element, name
        wrong = list(named)
        wrong[by_name[name]] = type(step)(step.tensor, step.idx, changed, step.why)
        assert _gradient_check(mha, wrong) > 1e-3, name
