"""The losses and index layers of issue 11 against PyTorch float64 autograd. Each loss is built
with symbolic sizes N (batch) and C (classes) and derived once; its forward value, its element
derivative ∂E/∂input (for reductions 'mean' and 'sum', so the 1/N is checked) and its chain
rule (for reduction 'none', a random upstream gradient per sample) are then evaluated by SymPy at
random sizes and values and compared with torch.nn.functional's loss of the same name and with
autograd. Class labels are random whole numbers 0..C−1. References are torch's, never the engine's.
"""
import warnings

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
N, C = sd.sizes("N C")


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def _labels(rng, n, c):
    return rng.integers(0, c, size=n).astype(float)


# name: (build(z, target, reduction) -> layer, target maker(rng, n, c), input maker, torch loss, target rank)
def _soft(rng, n, c):
    return rng.uniform(0.05, 0.95, size=(n, c))


def _any(rng, n, c):
    return rng.uniform(-2.5, 2.5, size=(n, c))


def _probs(rng, n, c):
    return rng.uniform(0.05, 0.95, size=(n, c))


CASES = {
    "cross_entropy classes": (lambda z, t, r: sd.cross_entropy(z, t, name="E", reduction=r), _labels, _any,
                              lambda z, t, r: F.cross_entropy(z, t.long(), reduction=r)),
    "cross_entropy probabilities": (lambda z, t, r: sd.cross_entropy(z, t, name="E", reduction=r), _soft, _any,
                                    lambda z, t, r: F.cross_entropy(z, t, reduction=r)),
    "nll_loss": (lambda z, t, r: sd.nll_loss(z, t, name="E", reduction=r), _labels, _any,
                 lambda z, t, r: F.nll_loss(z, t.long(), reduction=r)),
    "multi_margin_loss": (lambda z, t, r: sd.multi_margin_loss(z, t, name="E", reduction=r), _labels, _any,
                          lambda z, t, r: F.multi_margin_loss(z, t.long(), reduction=r)),
    "multi_margin_loss margin 1/2": (
        lambda z, t, r: sd.multi_margin_loss(z, t, name="E", reduction=r, margin=sp.Rational(1, 2)), _labels, _any,
        lambda z, t, r: F.multi_margin_loss(z, t.long(), margin=0.5, reduction=r)),
    "binary_cross_entropy": (lambda z, t, r: sd.binary_cross_entropy(z, t, name="E", reduction=r), _probs, _probs,
                             lambda z, t, r: F.binary_cross_entropy(z, t, reduction=r)),
    "binary_cross_entropy_with_logits": (
        lambda z, t, r: sd.binary_cross_entropy_with_logits(z, t, name="E", reduction=r), _probs, _any,
        lambda z, t, r: F.binary_cross_entropy_with_logits(z, t, reduction=r)),
    "huber_loss": (lambda z, t, r: sd.huber_loss(z, t, name="E", reduction=r), _any, _any,
                   lambda z, t, r: F.huber_loss(z, t, reduction=r)),
    "huber_loss delta 1/2": (lambda z, t, r: sd.huber_loss(z, t, name="E", reduction=r, delta=sp.Rational(1, 2)),
                             _any, _any, lambda z, t, r: F.huber_loss(z, t, reduction=r, delta=0.5)),
    "smooth_l1_loss beta 2": (lambda z, t, r: sd.smooth_l1_loss(z, t, name="E", reduction=r, beta=2), _any, _any,
                              lambda z, t, r: F.smooth_l1_loss(z, t, reduction=r, beta=2.0)),
    "kl_div": (lambda z, t, r: sd.kl_div(z, t, name="E", reduction=r), _probs, _any, lambda z, t, r: _kl(z, t, r)),
    "kl_div batchmean": (lambda z, t, r: sd.kl_div(z, t, name="E", reduction="batchmean" if r == "mean" else r),
                         _probs, _any, lambda z, t, r: F.kl_div(z, t, reduction="batchmean" if r == "mean" else r)),
    "mse": (lambda z, t, r: sd.mse(z, t, name="E", reduction=r), _any, _any,
            lambda z, t, r: F.mse_loss(z, t, reduction=r)),
}


def _kl(z, t, reduction):
    with warnings.catch_warnings():      # PyTorch warns that its 'mean' divides by every entry: we test just that
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(z, t, reduction=reduction)


LABELS = {"cross_entropy classes", "nll_loss", "multi_margin_loss", "multi_margin_loss margin 1/2"}


def _setup(case, reduction, seed):
    build, make_target, make_input, reference = CASES[case]
    rng = rng_for(f"{case} {reduction} {seed}")
    n, c = (int(v) for v in rng.integers(2, 5, size=2))
    z = sd.tensor("z", N, C)
    y = sd.tensor("y", N) if case in LABELS else sd.tensor("y", N, C)
    values = {"z": make_input(rng, n, c), "y": make_target(rng, n, c)}
    return build(z, y, reduction), z, values, {"N": n, "C": c}, reference, rng


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_value_and_derivative_match_torch_with_a_symbolic_batch(case, reduction):
    E, z, values, sizes, reference, _ = _setup(case, reduction, 0)
    n, c = sizes["N"], sizes["C"]
    zt = _t(values["z"]).requires_grad_(True)
    loss = reference(zt, _t(values["y"]), reduction)
    loss.backward()
    assert E.shape == ()
    assert sympy_number(E.element(()), values, sizes) == pytest.approx(float(loss.detach()), rel=TOL, abs=TOL)
    d = sd.derivative(E, z)
    outside_entries = d.value.replace(lambda e: isinstance(e, sp.Indexed), lambda e: sp.Dummy())
    assert outside_entries.has(N) == (reduction == "mean"), d.value      # the 1/N of the mean, and only there
    names = [i.name for i in d.wrt_idx]
    got = [sympy_number(d.value, values, {**sizes, **dict(zip(names, pos))}) for pos in flat_positions((n, c))]
    np.testing.assert_allclose(got, zt.grad.numpy().reshape(-1), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("case", sorted(c for c in CASES if not c.startswith("kl_div batch")))
def test_reduction_none_and_its_chain_rule_match_torch(case):
    E, z, values, sizes, reference, rng = _setup(case, "none", 1)
    n, c = sizes["N"], sizes["C"]
    zt = _t(values["z"]).requires_grad_(True)
    losses = reference(zt, _t(values["y"]), "none")
    per_sample = case in LABELS or case.startswith("cross_entropy")
    assert len(E.shape) == (1 if per_sample else 2)
    positions = flat_positions(tuple(losses.shape))
    out = E.free_indices()
    got = [sympy_number(E.element(out), values, {**sizes, **{i.name: p for i, p in zip(out, pos)}})
           for pos in positions]
    np.testing.assert_allclose(got, losses.detach().numpy().reshape(-1), rtol=TOL, atol=TOL)
    g = rng.uniform(-1, 1, size=tuple(losses.shape))
    losses.backward(_t(g))
    rule = sd.chain_rule(E, z)
    names = [i.name for i in rule.local.wrt_idx]
    values[rule.upstream.name] = g
    got = [sympy_number(rule.value, values, {**sizes, **dict(zip(names, pos))}) for pos in flat_positions((n, c))]
    np.testing.assert_allclose(got, zt.grad.numpy().reshape(-1), rtol=TOL, atol=TOL)


def test_one_sample_with_a_scalar_label_is_cs224ns_naive_softmax():
    """J = −log softmax(Uᵀv)[o]: ∂J/∂v = U(ŷ − y) and ∂J/∂U = v(ŷ − y)ᵀ, at d = 3, V = 5."""
    d, V = sd.sizes("d V")
    v, U, o = sd.tensor("v", d), sd.tensor("U", d, V), sd.tensor("o")
    J = sd.cross_entropy(sd.matmul(v, U, name="s"), o, name="J")
    rng = rng_for("word2vec")
    values = {"v": rng.normal(size=3), "U": rng.normal(size=(3, 5)), "o": np.array(2.0)}
    vt, Ut = _t(values["v"]).requires_grad_(True), _t(values["U"]).requires_grad_(True)
    loss = F.cross_entropy(vt @ Ut, torch.tensor(2))
    loss.backward()
    sizes = {"d": 3, "V": 5}
    assert sympy_number(J.element(()), values, sizes) == pytest.approx(float(loss.detach()), rel=TOL)
    for wrt, tensor in ((v, vt), (U, Ut)):
        dj = sd.derivative(J, wrt)
        names = [i.name for i in dj.wrt_idx]
        got = [sympy_number(dj.value, values, {**sizes, **dict(zip(names, pos))})
               for pos in flat_positions(tuple(tensor.shape))]
        np.testing.assert_allclose(got, tensor.grad.numpy().reshape(-1), rtol=TOL, atol=TOL)


def test_the_class_index_gradient_is_softmax_minus_the_indicator_over_n():
    z, y = sd.tensor("z", N, C), sd.tensor("y", N)
    value = sd.derivative(sd.cross_entropy(z, y, name="E"), z).value
    p, q = (sp.Symbol(n, integer=True) for n in "pq")
    written = value.xreplace({i: sp.Symbol(i.name, integer=True) for i in value.atoms(sp.Idx)})
    softmax = sp.exp(z.base[p, q]) / sp.Sum(sp.exp(z.base[p, sp.Symbol("j", integer=True)]),
                                             (sp.Symbol("j", integer=True), 0, C - 1))
    assert sp.simplify(written - (softmax - sp.KroneckerDelta(q, y.base[p])) / N) == 0


# ---------------------------------------------------------------------------------------------
# dropout, embedding, one_hot, matmul


def _jacobian_check(layer, wrt, values, sizes, reference):
    """The forward value and the element derivative of ``layer`` by ``wrt`` against torch."""
    leaves = {name: _t(v).requires_grad_(name == wrt.name) for name, v in values.items()}
    expected = reference(**leaves)
    shape = tuple(expected.shape)
    out = layer.free_indices()
    got = [sympy_number(layer.element(out), values, {**sizes, **{i.name: p for i, p in zip(out, pos)}})
           for pos in flat_positions(shape)]
    np.testing.assert_allclose(got, expected.detach().numpy().reshape(-1), rtol=TOL, atol=TOL)
    J = torch.autograd.functional.jacobian(lambda t: reference(**{**leaves, wrt.name: t}), leaves[wrt.name])
    J = J.numpy().reshape(int(np.prod(shape)), -1)
    d = sd.derivative(layer, wrt)
    names = [i.name for i in d.out_idx + d.wrt_idx]
    for r, o in enumerate(flat_positions(shape)):
        for c, w in enumerate(flat_positions(leaves[wrt.name].shape)):
            assert sympy_number(d.value, values, {**sizes, **dict(zip(names, o + w))}) == \
                pytest.approx(J[r, c], rel=TOL, abs=TOL), (o, w)


def test_dropout_with_its_mask_is_pytorchs_scaling_and_exact():
    rng = rng_for("dropout")
    x, m = sd.tensor("x", N, C), sd.tensor("m", N, C)
    layer = sd.dropout(x, m, p=sp.Rational(1, 4), name="h")
    mask = rng.integers(0, 2, size=(3, 4)).astype(float)
    values = {"x": rng.normal(size=(3, 4)), "m": mask}
    # torch's own dropout draws the mask: recover it from a seeded F.dropout and compare the scaling
    torch.manual_seed(0)
    ones = F.dropout(torch.ones(3, 4, dtype=torch.float64), p=0.25, training=True)
    assert set(np.unique(ones.numpy())) <= {0.0, 1 / 0.75}
    _jacobian_check(layer, x, values, {"N": 3, "C": 4}, lambda x, m: x * m / 0.75)
    assert sd.derivative(layer, x).value.has(m.base)


def test_embedding_and_one_hot_match_torch():
    rng = rng_for("embedding")
    V, d = sd.sizes("V d")
    w, E = sd.tensor("w", N), sd.tensor("E", V, d)
    values = {"w": rng.integers(0, 5, size=3).astype(float), "E": rng.normal(size=(5, 2))}
    _jacobian_check(sd.embedding(w, E, name="e"), E, values, {"N": 3, "V": 5, "d": 2},
                    lambda w, E: F.embedding(w.long(), E))
    y = sd.tensor("y", N)
    Y = sd.one_hot(y, num_classes=C, name="Y")
    labels = np.array([2.0, 0.0, 3.0])
    out = Y.free_indices()
    got = [sympy_number(Y.element(out), {"y": labels}, {"N": 3, "C": 4, **{i.name: p for i, p in zip(out, pos)}})
           for pos in flat_positions((3, 4))]
    assert got == F.one_hot(torch.tensor([2, 0, 3]), 4).reshape(-1).double().tolist()


@pytest.mark.parametrize("name, shapes", [("matmul", ((3,), (3, 4))), ("matmul", ((2, 3), (3,))),
                                          ("matmul", ((3,), (3,))), ("dot", ((3,), (3,))),
                                          ("mv", ((2, 3), (3,))), ("mm", ((2, 3), (3, 4)))])
def test_matrix_products_match_torch(name, shapes):
    rng = rng_for(name + str(shapes))
    a, b = sd.tensor("a", *shapes[0]), sd.tensor("b", *shapes[1])
    layer = getattr(sd, name)(a, b, name="s")
    values = {"a": rng.normal(size=shapes[0]), "b": rng.normal(size=shapes[1])}
    for wrt in (a, b):
        _jacobian_check(layer, wrt, values, {}, lambda a, b: getattr(torch, name)(a, b))


@pytest.mark.parametrize("build, message", [
    (lambda: sd.cross_entropy(sd.tensor("z", 2, 3), sd.tensor("y", 3), name="E"), "shape"),
    (lambda: sd.cross_entropy(sd.tensor("z", 2, 3), sd.tensor("y", 2), reduction="average", name="E"),
     "reduction is one of"),
    (lambda: sd.nll_loss(sd.tensor("a", 2, 3), sd.tensor("t", 2, 3), name="E"), "class indices"),
    (lambda: sd.multi_margin_loss(sd.tensor("s", 2, 3), sd.tensor("y", 2), p=2, name="E"), "only p=1"),
    (lambda: sd.huber_loss(sd.tensor("x", 2), sd.tensor("t", 2), delta=0, name="E"), "delta must be positive"),
    (lambda: sd.dropout(sd.tensor("x", 2), sd.tensor("m", 2), p=1, name="E"), "below 1"),
    (lambda: sd.mv(sd.tensor("a", 3), sd.tensor("b", 3), name="E"), "expects ranks"),
    (lambda: sd.matmul(sd.tensor("a", 2, 3), sd.tensor("b", 2), name="E"), "columns"),
    (lambda: sd.one_hot(sd.tensor("y", 2), name="E"), "num_classes"),
])
def test_bad_calls_are_refused_with_a_reason(build, message):
    with pytest.raises(ShapeError, match=message):
        build()


def test_labels_are_not_a_variable():
    z, y = sd.tensor("z", N, C), sd.tensor("y", N)
    with pytest.raises(ShapeError, match="'y' holds class labels"):
        sd.derivative(sd.cross_entropy(z, y, name="E"), y)
    w, E = sd.tensor("w", 3), sd.tensor("E", 5, 2)
    with pytest.raises(ShapeError, match="'w' holds class labels or indices"):
        sd.chain_rule(sd.embedding(w, E, name="e"), w)
