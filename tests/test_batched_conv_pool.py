"""Issue 11: the batch axis N of conv1d/conv2d, linear and pooling, grouped / depthwise convolution
(``groups``), pooling with ``padding`` / ``ceil_mode`` / ``count_include_pad``, and
``adaptive_avg_pool1d/2d``, each against PyTorch float64 autograd at random sizes: the forward value
of every entry, the element derivative ∂y/∂x (and ∂y/∂w) at sampled index pairs (half of them where
torch's Jacobian is nonzero), and the chain rule ∂l/∂x, ∂l/∂w for a random upstream gradient. The
engine's formulas are evaluated by SymPy (tests/helpers.sympy_number); references are torch's.
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
N = sp.Symbol("N", integer=True, positive=True)


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def _forward_matches(y, values, expected):
    got = [sympy_number(y.element(pos), values) for pos in flat_positions(y.shape)]
    np.testing.assert_allclose(got, expected.reshape(-1), rtol=TOL, atol=TOL)


def _derivative_matches(rng, y, wrt, values, jacobian, samples=10):
    """∂y/∂wrt at sampled (out, in) pairs, half of them where torch's Jacobian is nonzero."""
    d = sd.derivative(y, wrt)
    outs, ins = flat_positions(y.shape), flat_positions(wrt.shape)
    J = jacobian.reshape(len(outs), len(ins))
    nonzero = np.argwhere(np.abs(J) > 0)
    picks = [tuple(nonzero[i]) for i in rng.choice(len(nonzero), min(samples, len(nonzero)), replace=False)]
    picks += [(int(rng.integers(len(outs))), int(rng.integers(len(ins)))) for _ in range(samples)]
    names = [i.name for i in d.out_idx + d.wrt_idx]
    for r, c in picks:
        value = sympy_number(d.value, values, dict(zip(names, outs[r] + ins[c])))
        assert value == pytest.approx(J[r, c], rel=TOL, abs=TOL), (y.name, outs[r], ins[c])


def _chain_rule_matches(y, wrt, values, upstream, grad, samples=16):
    """∂l/∂wrt at ``samples`` positions (always the first and the last, the edges of the padding)."""
    c = sd.chain_rule(y, wrt)
    names = [i.name for i in c.local.wrt_idx]
    vals = dict(values, **{c.upstream.name: upstream})
    positions = flat_positions(wrt.shape)
    picks = sorted({0, len(positions) - 1} | set(np.linspace(0, len(positions) - 1, samples).astype(int).tolist()))
    got = [sympy_number(c.value, vals, dict(zip(names, positions[k]))) for k in picks]
    np.testing.assert_allclose(got, grad.reshape(-1)[picks], rtol=TOL, atol=TOL)


# ---------------------------------------------------------------------------------------------
# Convolutions: a batch axis and groups

CONVS = {  # name: (dims, groups, options)
    "conv1d batched": (1, 1, {"stride": 2, "padding": 1}),
    "conv1d groups 2": (1, 2, {"padding": 1}),
    "conv1d depthwise": (1, "depthwise", {"dilation": 2}),
    "conv2d batched": (2, 1, {"padding": 1}),
    "conv2d depthwise": (2, "depthwise", {"stride": 2, "padding": 1}),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_batched_grouped_convolution_matches_torch(case):
    rng = rng_for(case)
    dims, groups, options = CONVS[case]
    batch = int(rng.integers(2, 4))
    per_group = int(rng.integers(1, 3))
    groups = per_group * 2 if groups == "depthwise" else groups
    per_group = 1 if CONVS[case][1] == "depthwise" else per_group
    channels = per_group * groups
    out_channels = groups * int(rng.integers(1, 3))
    spatial = tuple(int(n) for n in rng.integers(5, 7 if dims == 1 else 6, size=dims))
    kernel = tuple(int(k) for k in rng.integers(2, 4, size=dims))
    x = sd.tensor("x", batch, channels, *spatial)
    w = sd.tensor("w", out_channels, per_group, *kernel)
    b = sd.tensor("b", out_channels)
    conv = sd.conv1d if dims == 1 else sd.conv2d
    y = conv(x, w, b, groups=groups, **options)
    values = {"x": rng.normal(size=x.shape), "w": rng.normal(size=w.shape), "b": rng.normal(size=b.shape)}
    fn = F.conv1d if dims == 1 else F.conv2d

    def forward(xt, wt):
        return fn(xt, wt, _t(values["b"]), groups=groups, **options)

    expected = forward(_t(values["x"]), _t(values["w"]))
    assert tuple(y.shape) == tuple(expected.shape)
    _forward_matches(y, values, expected.numpy())
    jx, jw = torch.autograd.functional.jacobian(forward, (_t(values["x"]), _t(values["w"])))
    _derivative_matches(rng, y, x, values, jx.numpy())
    _derivative_matches(rng, y, w, values, jw.numpy())
    xt, wt = _t(values["x"]).requires_grad_(), _t(values["w"]).requires_grad_()
    g = rng.normal(size=expected.shape)
    forward(xt, wt).backward(_t(g))
    _chain_rule_matches(y, w, values, g, wt.grad.numpy())
    _chain_rule_matches(y, x, values, g, xt.grad.numpy())


def test_symbolic_batch_convolution_has_the_per_sample_derivative():
    """With N symbolic the shape keeps N and ∂y/∂x carries δ(n, n'): evaluated at N = 2 it is torch's."""
    x, w = sd.tensor("x", N, 2, 5), sd.tensor("w", 3, 2, 2)
    y = sd.conv1d(x, w)
    assert y.shape[0] == N and tuple(y.shape[1:]) == (3, 4)
    d = sd.derivative(y, x)
    assert d.value.has(sp.KroneckerDelta(d.out_idx[0], d.wrt_idx[0]))
    rng = rng_for("symbolic N conv")
    values = {"x": rng.normal(size=(2, 2, 5)), "w": rng.normal(size=(3, 2, 2))}
    J = torch.autograd.functional.jacobian(lambda t: F.conv1d(t, _t(values["w"])), _t(values["x"])).numpy()
    names = [i.name for i in d.out_idx + d.wrt_idx]
    for out in flat_positions((2, 3, 4)):
        for at in flat_positions((2, 2, 5))[::3]:
            assert sympy_number(d.value, values, dict(zip(names, out + at))) == pytest.approx(
                J[out + at], abs=TOL)


def test_bad_groups_are_refused():
    with pytest.raises(ShapeError, match="groups 2 must divide in_channels 3"):
        sd.conv1d(sd.tensor("x", 3, 5), sd.tensor("w", 4, 1, 2), groups=2)
    with pytest.raises(ShapeError, match="groups 2 must divide out_channels 3"):
        sd.conv1d(sd.tensor("x", 4, 5), sd.tensor("w", 3, 2, 2), groups=2)
    with pytest.raises(ShapeError, match="expects 4 input channels per group"):
        sd.conv1d(sd.tensor("x", 4, 5), sd.tensor("w", 2, 4, 2), groups=2)
    with pytest.raises(ShapeError, match="groups must be a positive integer"):
        sd.conv2d(sd.tensor("x", 4, 5, 5), sd.tensor("w", 2, 4, 2, 2), groups=0)


# ---------------------------------------------------------------------------------------------
# Linear with a batch axis


def test_batched_linear_matches_torch():
    rng = rng_for("linear batched")
    n, i, o = (int(v) for v in rng.integers(2, 5, size=3))
    x, W, b = sd.tensor("x", n, i), sd.tensor("W", o, i), sd.tensor("b", o)
    y = sd.linear(x, W, b)
    values = {"x": rng.normal(size=(n, i)), "W": rng.normal(size=(o, i)), "b": rng.normal(size=o)}

    def forward(xt, Wt):
        return F.linear(xt, Wt, _t(values["b"]))

    expected = forward(_t(values["x"]), _t(values["W"]))
    _forward_matches(y, values, expected.numpy())
    jx, jw = torch.autograd.functional.jacobian(forward, (_t(values["x"]), _t(values["W"])))
    _derivative_matches(rng, y, x, values, jx.numpy())
    _derivative_matches(rng, y, W, values, jw.numpy())
    xt, Wt = _t(values["x"]).requires_grad_(), _t(values["W"]).requires_grad_()
    g = rng.normal(size=(n, o))
    forward(xt, Wt).backward(_t(g))
    _chain_rule_matches(y, W, values, g, Wt.grad.numpy())      # ∂l/∂W = Gᵀ X: summed over the batch
    _chain_rule_matches(y, x, values, g, xt.grad.numpy())


def test_symbolic_batch_linear_gradient_sums_over_the_batch():
    x, W = sd.tensor("x", N, 3), sd.tensor("W", 2, 3)
    y = sd.linear(x, W)
    assert tuple(y.shape) == (N, 2)
    c = sd.chain_rule(y, W)
    sums = c.value.atoms(sp.Sum)
    assert sums and all(lim[2] == N - 1 for s in sums for lim in s.limits), c.value


# ---------------------------------------------------------------------------------------------
# Pooling: batch, padding, ceil_mode, count_include_pad, adaptive

POOLS = {  # name: (kind, options, torch function)
    "max1d pad": ("max_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1}, F.max_pool1d),
    "max1d ceil": ("max_pool1d", {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True},
                   F.max_pool1d),
    # CS231n's 2 × 2 / stride 2 on an odd 5 × 5 input: the last row and column are in no window (issue 14)
    "max2d odd floor": ("max_pool2d", {"kernel_size": 2, "stride": 2}, F.max_pool2d),
    "max2d pad ceil": ("max_pool2d", {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True},
                       F.max_pool2d),
    "avg1d pad": ("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1}, F.avg_pool1d),
    "avg1d ceil": ("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
                   F.avg_pool1d),
    "avg1d exclude pad": ("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                                         "count_include_pad": False}, F.avg_pool1d),
    "avg2d ceil exclude": ("avg_pool2d", {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True,
                                          "count_include_pad": False}, F.avg_pool2d),
    "avg2d batched": ("avg_pool2d", {"kernel_size": 2}, F.avg_pool2d),
    "adaptive1d": ("adaptive_avg_pool1d", {"output_size": 3}, F.adaptive_avg_pool1d),
    "adaptive2d": ("adaptive_avg_pool2d", {"output_size": (2, 3)}, F.adaptive_avg_pool2d),
}


@pytest.mark.parametrize("case", sorted(POOLS))
def test_pooling_matches_torch(case):
    rng = rng_for(case)
    kind, options, fn = POOLS[case]
    dims = 2 if "2d" in kind else 1
    spatial = tuple(int(n) for n in rng.integers(5, 8 if dims == 1 else 6, size=dims))
    shape = (int(rng.integers(2, 4)), int(rng.integers(1, 3))) + spatial
    x = sd.tensor("x", *shape)
    y = getattr(sd, kind)(x, **options)
    values = {"x": rng.permutation(np.linspace(-2, 2, int(np.prod(shape)))).reshape(shape)}   # no ties

    def forward(t):
        return fn(t, **options)

    expected = forward(_t(values["x"]))
    assert tuple(y.shape) == tuple(expected.shape), (y.shape, expected.shape)
    _forward_matches(y, values, expected.numpy())
    _derivative_matches(rng, y, x, values, torch.autograd.functional.jacobian(forward, _t(values["x"])).numpy())
    xt = _t(values["x"]).requires_grad_()
    g = rng.normal(size=expected.shape)
    forward(xt).backward(_t(g))
    _chain_rule_matches(y, x, values, g, xt.grad.numpy())


@pytest.mark.parametrize("n,k,s,p", [(n, k, s, p) for n in range(3, 9) for k in (2, 3, 4) for s in (1, 2, 3)
                                     for p in range(0, k // 2 + 1) if n + 2 * p >= k])
def test_ceil_mode_output_size_is_pytorchs(n, k, s, p):
    x = sd.tensor("x", 1, n)
    expected = F.max_pool1d(torch.zeros(1, 1, n), k, s, p, ceil_mode=True).shape[-1]
    assert sd.max_pool1d(x, kernel_size=k, stride=s, padding=p, ceil_mode=True).shape[-1] == expected
    assert sd.avg_pool1d(x, kernel_size=k, stride=s, padding=p, ceil_mode=True).shape[-1] == expected


def test_bad_pooling_is_refused():
    x = sd.tensor("x", 2, 6)
    with pytest.raises(ShapeError, match="padding 2 must be at most half the kernel size 3"):
        sd.max_pool1d(x, kernel_size=3, padding=2)
    L = sp.Symbol("L", integer=True, positive=True)
    with pytest.raises(ShapeError, match="ceil_mode: cannot decide"):
        sd.max_pool1d(sd.tensor("x", 2, L), kernel_size=2, stride=2, padding=1, ceil_mode=True)
    with pytest.raises(ShapeError, match="output_size must be positive"):
        sd.adaptive_avg_pool1d(x, output_size=0)


def test_symbolic_batch_pooling_keeps_n():
    y = sd.avg_pool2d(sd.tensor("x", N, 3, 4, 4), kernel_size=2)
    assert tuple(y.shape) == (N, 3, 2, 2)


@pytest.mark.parametrize("call,message,where", [
    ("max_pool1d(x, kernel_size=2, ceil_mode=1)", "ceil_mode is True or False", "bad.yaml:5:57:"),
    ("conv1d(x, w, groups=3)", "groups 3 must divide in_channels 4", "bad.yaml:5:18:"),
    ("avg_pool1d(x, kernel_size=2, padding=2)", "padding 2 must be at most half the kernel size 2", "bad.yaml:5:18:"),
])
def test_bad_options_in_a_problem_file_name_the_position(tmp_path, call, message, where):
    from symderive.answer import Status
    from symderive.problem import load_problem
    path = tmp_path / "bad.yaml"
    path.write_text("title: bad\nquestions:\n  - id: q\n    tensors: {x: [2, 4, 6], w: [4, 2, 3]}\n"
                    f"    layers: {{y: \"{call}\"}}\n    ask: shape\n    of: y\n")
    (answer,) = load_problem(path).solve()
    assert answer.status is Status.FAILED
    assert message in str(answer.error) and where in str(answer.error), answer.error


# ---------------------------------------------------------------------------------------------
# The convolution matrix with a batch axis and groups: A vec(x) and X vec(w) are torch's output,
# B (read off the chain rule) equals Aᵀ exactly, and B = Aᵀ is proved for symbolic sizes


@pytest.mark.parametrize("dims,batch,channels,out_channels,groups,options", [
    (1, 2, 4, 6, 2, {"padding": 1}),
    (1, 3, 3, 3, 3, {"stride": 2, "dilation": 2}),
    (2, 2, 4, 4, 4, {"padding": 1}),
    (2, 2, 2, 3, 1, {"stride": 2}),
])
def test_conv_matrix_with_batch_and_groups(dims, batch, channels, out_channels, groups, options):
    from symderive.backward import check_transpose, prove_transpose
    from symderive.conv_matrix import conv_matrix, im2col_matrix, symbolic_twin
    rng = rng_for(f"matrix {dims} {batch} {channels} {groups}")
    spatial = (5,) * dims
    x, w = sd.tensor("x", batch, channels, *spatial), sd.tensor("w", out_channels, channels // groups, *(2,) * dims)
    y = (sd.conv1d if dims == 1 else sd.conv2d)(x, w, groups=groups, **options)
    xv, wv = rng.normal(size=x.shape), rng.normal(size=w.shape)
    reference = (F.conv1d if dims == 1 else F.conv2d)(_t(xv), _t(wv), groups=groups, **options).numpy().reshape(-1)
    np.testing.assert_allclose(conv_matrix(y).numeric(wv) @ xv.reshape(-1), reference, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(im2col_matrix(y).numeric(xv) @ wv.reshape(-1), reference, rtol=TOL, atol=TOL)
    _, _, equal, difference = check_transpose(y)
    assert equal, difference
    twin = symbolic_twin(y)
    assert twin.batch and twin.x.shape[0].is_Symbol and twin.groups == groups
    assert prove_transpose(twin)[2]


def test_backward_convolution_refuses_batch_and_groups():
    from symderive.backward import backward_as_convolution
    y = sd.conv1d(sd.tensor("x", 2, 2, 5), sd.tensor("w", 2, 1, 2), groups=2)
    with pytest.raises(ShapeError, match="ask backward_matrix"):
        backward_as_convolution(y)
