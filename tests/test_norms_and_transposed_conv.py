"""batch_norm (training mode), layer_norm and conv_transpose1d/2d as layer kinds, and the ask
conv_transpose_matrix (T = Aᵀ).

Every expected value comes from PyTorch in float64 (the functional op for the forward value,
autograd for derivatives), never from the engine: the forward value at random sizes with a batch
axis, the element derivative at every (output, input) pair, the chain rule and the matrix T through
``verify.cross_check``; bad inputs are refused with the question's position.
"""
import textwrap

import numpy as np
import pytest
import sympy as sp

import symderive as sd
from symderive import verify
from symderive.answer import Status
from symderive.errors import ShapeError
from symderive.problem import load_problem
from symderive.tensors import flat_positions

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-10
RNG = np.random.default_rng(11)
PAIRS = 40          # (output, input) pairs of a Jacobian compared, drawn at random when there are more


def _values(*tensors):
    """Random float64 values for each tensor: the torch tensor and the SymPy substitution."""
    at, out = {}, []
    for t in tensors:
        shape = tuple(int(n) for n in t.shape)
        data = RNG.normal(size=shape)
        out.append(torch.tensor(data, dtype=torch.float64))
        for pos in flat_positions(shape):
            at[t.base[pos]] = sp.Float(float(data[pos]), 30)
    return at, out


def _explicit(e):
    """Every sum with numeric bounds written out term by term (SymPy's own ``doit`` solves a
    Kronecker delta in a summation index without checking that the solution is a whole number)."""
    if isinstance(e, sp.Sum):
        body = e.function
        for var, lo, hi in e.limits:                 # innermost first; the bounds here are numbers
            body = sp.Add(*[body.xreplace({var: sp.Integer(n)}) for n in range(int(lo), int(hi) + 1)])
        return _explicit(body)
    return e.func(*[_explicit(a) for a in e.args]) if e.args else e


def _number(expr, at):
    return float(sp.N(_explicit(sp.sympify(expr)).xreplace(at), 30))


def _forward(layer, at):
    shape = tuple(int(n) for n in layer.shape)
    return np.array([_number(layer.element(pos), at) for pos in flat_positions(shape)]).reshape(shape)


def _jacobian(layer, wrt, at):
    """The engine's element derivative evaluated at every (output, input) pair: (numel y, numel wrt)."""
    d = sd.derivative(layer, wrt)
    out_shape, in_shape = (tuple(int(n) for n in t.shape) for t in (layer, wrt))
    outs, ins = flat_positions(out_shape), flat_positions(in_shape)
    pairs = [(a, b) for a in range(len(outs)) for b in range(len(ins))]
    if len(pairs) > PAIRS:
        pairs = [pairs[k] for k in RNG.choice(len(pairs), PAIRS, replace=False)]
    values = [_number(d.value.xreplace({**dict(zip(d.out_idx, map(sp.Integer, outs[a]))),
                                        **dict(zip(d.wrt_idx, map(sp.Integer, ins[b])))}), at) for a, b in pairs]
    return pairs, np.array(values)


def _compare_jacobian(layer, wrt, at, expected, atol=1e-9):
    pairs, got = _jacobian(layer, wrt, at)
    np.testing.assert_allclose(got, np.array([expected[a, b] for a, b in pairs]), atol=atol, rtol=0)


def _torch_jacobian(fn, args, which):
    def f(v):
        full = list(args)
        full[which] = v
        return fn(*full).reshape(-1)
    return torch.autograd.functional.jacobian(f, args[which]).reshape(-1, args[which].numel()).numpy()


@pytest.mark.parametrize("shape", [(3, 2), (2, 2, 3), (2, 1, 2, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_value_and_derivative_match_torch(shape, affine):
    x = sd.tensor("x", *shape)
    g, b = sd.tensor("g", shape[1]), sd.tensor("b", shape[1])
    eps = sp.Rational(1, 10)
    y = sd.batch_norm(x, g, b, eps=eps) if affine else sd.batch_norm(x, eps=eps)
    at, (tx, tg, tb) = _values(x, g, b)

    def fn(xx, gg, bb):
        return F.batch_norm(xx, None, None, gg if affine else None, bb if affine else None, training=True, eps=0.1)
    np.testing.assert_allclose(_forward(y, at), fn(tx, tg, tb).numpy(), atol=TOL, rtol=0)
    _compare_jacobian(y, x, at, _torch_jacobian(fn, [tx, tg, tb], 0), atol=1e-9)
    if affine:
        _compare_jacobian(y, g, at, _torch_jacobian(fn, [tx, tg, tb], 1), atol=1e-9)


@pytest.mark.parametrize("shape, normalized", [((3, 4), (4,)), ((2, 2, 3), (3,)), ((2, 2, 3), (2, 3))])
def test_layer_norm_value_and_derivative_match_torch(shape, normalized):
    x = sd.tensor("x", *shape)
    g, b = sd.tensor("g", *normalized), sd.tensor("b", *normalized)
    y = sd.layer_norm(x, g, b, normalized_shape=normalized)
    assert y.eps == sp.Rational(1, 100000) and float(y.eps) == torch.nn.LayerNorm(4).eps
    at, (tx, tg, tb) = _values(x, g, b)

    def fn(xx, gg, bb):
        return F.layer_norm(xx, list(normalized), gg, bb)
    np.testing.assert_allclose(_forward(y, at), fn(tx, tg, tb).numpy(), atol=TOL, rtol=0)
    _compare_jacobian(y, x, at, _torch_jacobian(fn, [tx, tg, tb], 0), atol=1e-8)


@pytest.mark.parametrize("shape, groups", [((2, 4), 2), ((2, 4, 3), 2), ((1, 6, 2, 2), 3), ((2, 3, 2), 1),
                                           ((2, 3, 2), 3)])
def test_group_norm_value_and_derivatives_match_torch(shape, groups):
    x = sd.tensor("x", *shape)
    g, b = sd.tensor("g", shape[1]), sd.tensor("b", shape[1])
    y = sd.group_norm(x, g, b, num_groups=groups, eps=sp.Rational(1, 10))
    at, (tx, tg, tb) = _values(x, g, b)

    def fn(xx, gg, bb):
        return F.group_norm(xx, groups, gg, bb, eps=0.1)
    np.testing.assert_allclose(_forward(y, at), fn(tx, tg, tb).numpy(), atol=TOL, rtol=0)
    _compare_jacobian(y, x, at, _torch_jacobian(fn, [tx, tg, tb], 0), atol=1e-9)
    _compare_jacobian(y, g, at, _torch_jacobian(fn, [tx, tg, tb], 1), atol=1e-9)


def _random_transposed(dims, batch):
    """Random sizes and hyperparameters PyTorch accepts, output_padding below the stride."""
    stride = tuple(int(v) for v in RNG.integers(1, 4, dims))
    dilation = tuple(int(v) for v in RNG.integers(1, 3, dims))
    kernel = tuple(int(v) for v in RNG.integers(1, 4, dims))
    output_padding = tuple(int(RNG.integers(0, s)) for s in stride)
    spatial = tuple(int(v) for v in RNG.integers(2, 4, dims))
    # padding as large as leaves at least one output entry: 2p ≤ (L−1)s + d(K−1) + output_padding
    padding = tuple(int(RNG.integers(0, ((n - 1) * s + d * (k - 1) + op) // 2 + 1))
                    for n, s, d, k, op in zip(spatial, stride, dilation, kernel, output_padding))
    c_in, c_out = (int(v) for v in RNG.integers(1, 3, 2))
    lead = (int(RNG.integers(1, 3)),) if batch else ()
    return lead + (c_in,) + spatial, (c_in, c_out) + kernel, dict(
        stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("draw", range(3))
def test_conv_transpose_value_and_derivatives_match_torch(dims, batch, draw):
    x_shape, w_shape, options = _random_transposed(dims, batch)
    x, w, b = sd.tensor("x", *x_shape), sd.tensor("w", *w_shape), sd.tensor("b", w_shape[1])
    y = (sd.conv_transpose1d if dims == 1 else sd.conv_transpose2d)(x, w, b, **options)
    op = F.conv_transpose1d if dims == 1 else F.conv_transpose2d
    at, (tx, tw, tb) = _values(x, w, b)

    def fn(xx, ww, bb):
        return op(xx, ww, bb, **options) if batch else op(xx[None], ww, bb, **options)[0]
    expected = fn(tx, tw, tb)
    assert tuple(int(n) for n in y.shape) == tuple(expected.shape), options
    np.testing.assert_allclose(_forward(y, at), expected.numpy(), atol=TOL, rtol=0)
    _compare_jacobian(y, x, at, _torch_jacobian(fn, [tx, tw, tb], 0), atol=TOL)
    _compare_jacobian(y, w, at, _torch_jacobian(fn, [tx, tw, tb], 1), atol=TOL)


@pytest.mark.parametrize("dims, batch, groups, c_in, per_group", [(1, False, 2, 4, 3), (1, True, 3, 3, 1),
                                                              (2, True, 2, 2, 2), (2, False, 4, 4, 1)])
def test_grouped_conv_transpose_matches_torch(dims, batch, groups, c_in, per_group):
    """groups: weight (C_in, C_out/groups, K…); output channel o of group g reads the input channels of group g."""
    spatial, kernel = (3,) * dims, (2,) * dims
    options = dict(stride=(2,) * dims, padding=(1,) * dims, output_padding=(1,) * dims, dilation=(1,) * dims)
    x = sd.tensor("x", *(((2,) if batch else ()) + (c_in,) + spatial))
    w, b = sd.tensor("w", c_in, per_group, *kernel), sd.tensor("b", per_group * groups)
    y = (sd.conv_transpose1d if dims == 1 else sd.conv_transpose2d)(x, w, b, groups=groups, **options)
    op = F.conv_transpose1d if dims == 1 else F.conv_transpose2d
    at, (tx, tw, tb) = _values(x, w, b)

    def fn(xx, ww, bb):
        return op(xx, ww, bb, groups=groups, **options) if batch else op(xx[None], ww, bb, groups=groups,
                                                                          **options)[0]
    expected = fn(tx, tw, tb)
    assert tuple(int(n) for n in y.shape) == tuple(expected.shape)
    np.testing.assert_allclose(_forward(y, at), expected.numpy(), atol=TOL, rtol=0)
    _compare_jacobian(y, x, at, _torch_jacobian(fn, [tx, tw, tb], 0), atol=TOL)
    _compare_jacobian(y, w, at, _torch_jacobian(fn, [tx, tw, tb], 1), atol=TOL)


def test_conv_transpose_matrix_refuses_groups(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('title: t\nquestions: [{id: q, tensors: {x: [2, 3], w: [2, 1, 2]}, ask: conv_transpose_matrix,'
                    ' layers: {y: "conv_transpose1d(x, w, groups=2)"}, of: y}]\n')
    answer = load_problem(path).solve()[0]
    assert answer.status is Status.FAILED and "groups=1 only" in answer.error, answer.error
    assert "p.yaml:" in answer.error and "\n" not in answer.error.strip()


def test_conv_transpose_output_size_is_pytorchs_formula_for_symbols():
    L, K, S, P, D, Q = (sp.Symbol(n, integer=True, positive=True) for n in "LKSPDQ")
    y = sd.conv_transpose1d(sd.tensor("x", 2, L), sd.tensor("w", 2, 3, K), stride=S, padding=P, dilation=D,
                            output_padding=Q)
    assert sp.expand(y.shape[1] - ((L - 1) * S - 2 * P + D * (K - 1) + Q + 1)) == 0


PROBLEM = """
title: "norms and transposed convolutions"
sizes: [N, D, C]
questions:
  - id: bn-chain
    tensors: {x: [N, C], g: [C], b: [C]}
    layers: {y: "batch_norm(x, weight=g, bias=b)"}
    ask: chain_rule
    of: y
    wrt: x
  - id: bn-gamma
    tensors: {x: [N, C], g: [C], b: [C]}
    layers: {y: "batch_norm(x, weight=g, bias=b)"}
    ask: chain_rule
    of: y
    wrt: g
  # D is a number: at D = 1 (which the cross-check may draw) y = b, and the engine's expanded
  # derivative, exactly 0 there, cancels terms of size 1/eps^(3/2) in float64 (error ~1e-8)
  - id: ln-chain
    tensors: {x: [N, 4], g: [4], b: [4]}
    layers: {y: "layer_norm(x, normalized_shape=4, weight=g, bias=b)"}
    ask: chain_rule
    of: y
    wrt: x
  - id: ln-bias-only
    tensors: {x: [2, 3], b: [3]}
    layers: {y: "layer_norm(x, normalized_shape=(3,), bias=b)"}
    ask: derivative
    of: y
    wrt: b
  - id: ct-loss
    tensors: {x: [2, 2, 3], w: [2, 3, 2], t: [2, 3, 5]}
    layers: {y: "conv_transpose1d(x, w, stride=2, padding=1, output_padding=1)", E: "mse(y, t)"}
    ask: chain_rule
    of: E
    wrt: w
  - id: ct-matrix-1d
    tensors: {x: [2, 3], w: [2, 1, 3]}
    layers: {y: "conv_transpose1d(x, w, stride=2, padding=1, dilation=2, output_padding=1)"}
    ask: conv_transpose_matrix
    of: y
  - id: deconv-shapes
    ask: shape_table
    network: &deconv
      input: [N, 3, 5, 4]
      layers:
        - ConvTranspose2d(3, 4, (3, 2), stride=(2, 3), padding=1, output_padding=(1, 2), dilation=(1, 2))
        - BatchNorm2d(4)
        - ReLU()
  - id: deconv-parameters
    ask: parameter_count
    network: *deconv
  - id: ct-matrix-2d
    tensors: {x: [1, 2, 2], w: [1, 2, 3, 3]}
    layers: {y: "conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)"}
    ask: conv_transpose_matrix
    of: y
  - id: bn-mse-chain
    tensors: {x: [4, 2], g: [2], b: [2], t: [4, 2]}
    layers: {y: "batch_norm(x, g, b)", E: "mse(y, t)"}
    ask: chain_rule
    of: E
    wrt: x
  - id: gn-chain
    tensors: {x: [2, 4, 2], g: [4], b: [4]}
    layers: {y: "group_norm(x, g, b, num_groups=2)"}
    ask: chain_rule
    of: y
    wrt: x
  - id: ct-groups-loss
    tensors: {x: [2, 4, 3], w: [4, 1, 2], t: [2, 2, 6]}
    layers: {y: "conv_transpose1d(x, w, stride=2, groups=2)", E: "mse(y, t)"}
    ask: chain_rule
    of: E
    wrt: w
"""


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    path = tmp_path_factory.mktemp("norms") / "norms.yaml"
    path.write_text(textwrap.dedent(PROBLEM))
    problem = load_problem(path)
    return problem, {a.question_id: a for a in problem.solve()}


def test_every_question_agrees_with_torch(solved):
    problem, answers = solved
    for answer in answers.values():
        assert answer.status is not Status.FAILED, answer.error
    reports = verify.cross_check(problem, list(answers.values()))
    assert len(reports) == len(answers)
    for report in reports:
        assert report.outcome == verify.AGREE, f"{report.question}: {report.sentence()}"
        assert report.entries > 0


def test_transposed_conv_matrix_is_proved_transpose(solved):
    _, answers = solved
    for qid in ("ct-matrix-1d", "ct-matrix-2d"):
        assert answers[qid].status is Status.PROVED, answers[qid].detail
        assert "for all sizes" in answers[qid].detail


def test_the_proof_can_fail():
    """The index-level comparison tells a different convolution apart: T of stride 2 is not the
    transpose of the stride-1 convolution's derivative."""
    from symderive.asks.conv_transpose_matrix import prove_transpose_of_conv, symbolic_twin
    from symderive.contract import contract, same_terms
    from symderive.derivative import derivative
    from symderive.indices import substitute
    from symderive.layers import Conv
    from symderive.tensors import Tensor
    layer = sd.conv_transpose1d(sd.tensor("x", 1, 3), sd.tensor("w", 1, 1, 3), stride=2)
    *_, proved = prove_transpose_of_conv(symbolic_twin(layer))
    assert proved
    t = derivative(layer, layer.x)
    wrong = Conv("u", Tensor("z", (1, 7)), layer.weight, None, 1, 0, 1, 1)   # stride 1, not 2
    a = derivative(wrong, wrong.x)
    renamed = substitute(a.value, {**dict(zip(a.out_idx, t.wrt_idx)), **dict(zip(a.wrt_idx, t.out_idx))})
    assert not same_terms(contract(t.value), contract(renamed))


@pytest.mark.parametrize("layer, message", [
    ("batch_norm(x, eps=0)", "eps must be a positive number"),
    ("batch_norm(x, eps=-0.5)", "eps must be a positive number"),
    ("layer_norm(x, normalized_shape=(2,))", "normalized_shape (2) must be the last axes of x"),
    ("layer_norm(x, normalized_shape=(3,), weight=v)", "weight v must have shape (3,)"),
    ("conv_transpose1d(x, w, stride=2, output_padding=2)", "output_padding 2 must be smaller than the stride 2"),
    ("conv_transpose1d(x, w, output_padding=1)", "output_padding 1 must be smaller than the stride 1"),
    ("conv_transpose1d(x, v)", "expected input (C_in, …)"),
    ("group_norm(x, num_groups=2)", "num_groups 2 must be a positive integer dividing the 3 channels"),
    ("group_norm(x, v, num_groups=3)", "weight v must have shape (3,)"),
    ("group_norm(x)", "group_norm needs num_groups"),
    ("conv_transpose1d(x, w, groups=3)", "groups 3 must divide in_channels 4"),
    ("conv_transpose1d(x, w, groups=0)", "groups must be a positive integer"),
    ("conv_transpose1d(x, w, v, groups=4)", "bias v must have shape (8,)"),
])
def test_bad_inputs_are_refused_with_their_position(tmp_path, layer, message):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(f"""
        title: bad
        questions:
          - id: fine
            tensors: {{x: [4, 3]}}
            layers: {{y: "relu(x)"}}
            ask: shape
            of: y
          - id: broken
            tensors: {{x: [4, 3], w: [4, 2, 3], v: [4]}}
            layers: {{y: "{layer}"}}
            ask: shape
            of: y
        """))
    answers = {a.question_id: a for a in load_problem(path).solve()}
    assert answers["fine"].status is not Status.FAILED
    error = answers["broken"].error
    assert answers["broken"].status is Status.FAILED and message in error, error
    assert "bad.yaml:" in error and "broken" in error and "\n" not in error.strip()


def test_a_stack_entry_with_a_bad_output_padding_is_refused_at_its_call(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""
        title: bad
        questions:
          - id: broken
            ask: shape_table
            network:
              input: [3, 8, 8]
              layers:
                - ConvTranspose2d(3, 4, 3, stride=2, output_padding=2)
        """))
    (answer,) = load_problem(path).solve()
    assert answer.status is Status.FAILED
    assert "bad.yaml:9:11:" in answer.error and "output_padding 2 must be smaller than the stride 2" in answer.error


def test_batch_norm_needs_more_than_one_value_per_channel():
    with pytest.raises(ShapeError, match="more than one value per channel"):
        sd.batch_norm(sd.tensor("x", 1, 3))


# The library norms' gradients in the form courses write (CS231n assignment 2, batchnorm_backward; Ba
# et al. 2016 for layer norm). The expected numbers are torch autograd through F.batch_norm/F.layer_norm;
# the course form is evaluated with μ, var and x̂ computed here by NumPy from x, not by the engine.
COURSE_FORMS = """
title: library norms in course form
index_base: 0
sizes: [N, D]
questions:
  - id: bn
    tensors: {x: [N, 3], g: [3], b: [3]}
    layers: {y: "batch_norm(x, weight=g, bias=b)"}
    ask: chain_rule
    of: y
    wrt: x
    upstream: dy
  - id: bn-plain
    tensors: {x: [N, D]}
    layers: {y: "batch_norm(x, eps=1/10)"}
    ask: chain_rule
    of: y
    wrt: x
    upstream: dy
  - id: ln
    tensors: {x: [N, D], g: [D], b: [D]}
    layers: {y: "layer_norm(x, g, b, normalized_shape=D)"}
    ask: chain_rule
    of: y
    wrt: x
    upstream: dy
"""


def _course_element(answer):
    (result,) = [r for r in answer.results if r.key == "course element"]
    return result.value


def _entrywise(expr, arrays, sizes, shape):
    """``expr`` (free indices: its Idx symbols, in name order p, q) at every position of ``shape``, each
    tensor's entries from ``arrays`` by name and the sizes from ``sizes`` by name."""
    expr = expr.xreplace({s: sp.Integer(sizes[s.name]) for s in expr.free_symbols if s.name in sizes})
    free = sorted((s for s in expr.free_symbols if isinstance(s, sp.Idx)), key=lambda s: s.name)
    out = np.empty(shape)
    for pos in np.ndindex(*shape):
        e = _explicit(expr.xreplace(dict(zip(free, map(sp.Integer, pos)))))
        out[pos] = float(e.xreplace({a: sp.Float(arrays[a.base.label.name][tuple(int(i) for i in a.indices)], 30)
                                     for a in e.atoms(sp.Indexed)}))
    return out


@pytest.fixture(scope="module")
def course_forms(tmp_path_factory):
    path = tmp_path_factory.mktemp("norm-forms") / "forms.yaml"
    path.write_text(textwrap.dedent(COURSE_FORMS))
    problem = load_problem(path)
    return {a.question_id: a for a in problem.solve()}


@pytest.mark.parametrize("qid, n, d", [("bn", 5, 3), ("bn", 2, 3), ("bn-plain", 4, 2), ("ln", 3, 4)])
def test_library_norm_gradients_are_in_the_course_form(course_forms, qid, n, d):
    """dx = (γ / (M √(var + ε))) (M dy − Σ dy − x̂ Σ dy x̂) over the M entries sharing statistics: the
    course element names x̂ and var (x itself is gone) and equals torch's gradient."""
    form = _course_element(course_forms[qid])
    bases = {a.base.label.name for a in form.atoms(sp.Indexed)}
    assert "x" not in bases and "var" in bases, bases
    assert ("xhat" if qid != "bn-plain" else "y") in bases, bases
    x, dy = RNG.normal(size=(n, d)), RNG.normal(size=(n, d))
    g, b = RNG.normal(size=d), RNG.normal(size=d)
    eps, axis = (0.1 if qid == "bn-plain" else 1e-5), (0 if qid.startswith("bn") else 1)
    mean, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, keepdims=True)      # biased, as torch
    xhat = (x - mean) / np.sqrt(var + eps)
    arrays = {"x": x, "dy": dy, "g": g, "b": b, "mu": mean.ravel(), "var": var.ravel(),
              "xhat": xhat, "y": xhat}
    got = _entrywise(form, arrays, {"N": n, "D": d}, (n, d))
    tx = torch.tensor(x, requires_grad=True)
    tg, tb = torch.tensor(g), torch.tensor(b)
    if qid == "ln":
        out = F.layer_norm(tx, [d], tg, tb, eps=eps)
    else:
        out = F.batch_norm(tx, None, None, *((tg, tb) if qid == "bn" else (None, None)), training=True, eps=eps)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(got, tx.grad.numpy(), atol=1e-10, rtol=0)


def test_library_batch_norm_goes_through_its_statistics():
    """μ, var and x̂ are layers inside batch_norm (named so, and apart from a weight already called mu), and
    its entry written out is still the whole formula."""
    x, mu = sd.tensor("x", 4, 2), sd.tensor("mu", 2)
    y = sd.batch_norm(x, mu, None)
    inner = {name: layer.kind for name, layer in y.layer_inputs().items()}
    assert "mu" not in inner and inner.get("mu_y") == "batch_norm mean", inner
    assert inner.get("var") == "batch_norm variance" and inner.get("xhat") == "batch_norm standardized input"
    written = {a.base.label.name for a in y.element((1, 0)).atoms(sp.Indexed)}
    assert written == {"x", "mu"}, written           # x and the weight called mu: no inner layer left
