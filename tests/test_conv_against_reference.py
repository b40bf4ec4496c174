"""symderive's derived results against independent references.

Every expected value here is computed without symderive:

* PyTorch (``torch.nn.functional`` and autograd) when torch is importable;
  those tests call ``pytest.importorskip("torch")`` and are skipped otherwise;
* NumPy written in this file (a direct-loop convolution, pooling, activations,
  losses), differentiated with the complex step f'(v) = Im f(v + ih) / h, which
  is exact to rounding (no truncation error, no cancellation), so the NumPy
  path uses the same 1e-9 tolerance as the torch path and the suite stays
  meaningful without torch.

The engine's symbolic arrays are evaluated by substituting the same random
float64 values for their tensor entries. Entries of the engine's *arrays* must
all lie inside their tensors' ranges (the engine promises to zero the rest);
only the forward element formula is evaluated with zero padding applied here.
"""
import functools
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symderive.derivative import chain_rule, derivative
from symderive.errors import ShapeError
from symderive.layers import Conv, Elementwise, Linear, Loss, Pool, Softmax, conv1d, conv2d
from symderive.layers.cross_entropy import CrossEntropy
from symderive.shapes import conv_output_size
from symderive.tensors import Tensor, flat_positions
from helpers import assert_close, rng_for  # noqa: E402

TOL = 1e-9
H_STEP = 1e-30  # complex-step size
ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"






def away_from_zero(rng, shape):
    """Random values with |v| in [0.25, 2] (for ReLU / max: no ties, no kinks)."""
    return rng.uniform(0.25, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def matrix_view(a):
    """The documented matrix view of a gradient with a tensor's shape: rank 0 -> 1x1,
    rank 1 -> column, rank 2 -> as is, rank >= 3 -> leading axes merged into rows."""
    a = np.asarray(a)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(-1, 1)
    return a.reshape(-1, a.shape[-1])


# ---------------------------------------------------------------------------------------------
# Numerical evaluation of engine output (substitution only; no symderive code involved)
# ---------------------------------------------------------------------------------------------
def numeric(expr, values, pad=False):
    """Evaluate a SymPy expression or Matrix whose tensor entries are ``name[i, ...]``.

    ``values`` maps tensor names to NumPy arrays (0-d arrays for scalar symbols). With
    ``pad`` an out-of-range subscript reads 0 (zero padding); without it, an out-of-range
    entry is an error: the engine must already have removed it.
    """
    if isinstance(expr, sp.MatrixBase):
        return np.array([[numeric(expr[r, c], values, pad) for c in range(expr.cols)]
                         for r in range(expr.rows)], dtype=float).reshape(expr.rows, expr.cols)
    scalars = {sp.Symbol(k, real=True): sp.Float(float(v)) for k, v in values.items()
               if np.ndim(v) == 0}

    def lookup(e):
        name = e.base.label.name
        assert name in values, f"unexpected tensor entry {e}"
        arr = np.asarray(values[name])
        try:
            idx = tuple(int(i) for i in e.indices)
        except TypeError:
            raise AssertionError(f"entry {e} has a non-numeric subscript") from None
        assert len(idx) == arr.ndim, f"entry {e} has {len(idx)} subscripts, tensor rank {arr.ndim}"
        if not all(0 <= i < n for i, n in zip(idx, arr.shape)):
            assert pad, f"out-of-range entry {e} left in the engine's output (should be 0)"
            return sp.S.Zero
        return sp.Float(float(arr[idx]))

    e = sp.sympify(expr)
    if e.has(sp.Sum):
        e = e.doit()
    e = e.replace(lambda a: isinstance(a, sp.Indexed), lookup).xreplace(scalars)
    v = e.evalf(30)
    try:
        return float(v)
    except TypeError:
        raise AssertionError(f"could not evaluate {expr} numerically: left with {v}") from None


# ---------------------------------------------------------------------------------------------
# NumPy references (complex-capable, for the complex step)
# ---------------------------------------------------------------------------------------------
def window_count(n, k, s, p, d):
    """Number of placements of a dilated kernel in the zero-padded input, by counting."""
    count = 0
    while s * count + d * (k - 1) <= n + 2 * p - 1:
        count += 1
    return count


def np_conv(x, w, b, stride, padding, dilation):
    """Direct-loop cross-correlation, like torch.nn.functional.conv{1,2}d on an unbatched input.

    x: (C, *spatial), w: (O, C, *kernel), b: (O,) or None; stride/padding/dilation: tuples.
    """
    C, spatial = x.shape[0], x.shape[1:]
    O, kernel = w.shape[0], w.shape[2:]
    out = tuple(window_count(n, k, s, p, d)
                for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation))
    y = np.zeros((O,) + out, dtype=np.result_type(x, w, float))
    for o in range(O):
        for pos in itertools.product(*map(range, out)):
            acc = b[o] if b is not None else 0.0
            for c in range(C):
                for ks in itertools.product(*map(range, kernel)):
                    src = tuple(s * i + d * k - p for i, k, s, d, p in
                                zip(pos, ks, stride, dilation, padding))
                    if all(0 <= a < n for a, n in zip(src, spatial)):
                        acc = acc + w[(o, c) + ks] * x[(c,) + src]
            y[(o,) + pos] = acc
    return y


def np_pool(x, mode, kernel, stride, padding):
    """avg (count_include_pad) / max pooling over the trailing len(kernel) axes of (C, *spatial)."""
    C, spatial = x.shape[0], x.shape[1:]
    out = tuple(window_count(n, k, s, p, 1) for n, k, s, p in zip(spatial, kernel, stride, padding))
    y = np.zeros((C,) + out, dtype=np.result_type(x, float))
    for c in range(C):
        for pos in itertools.product(*map(range, out)):
            entries = []
            for ks in itertools.product(*map(range, kernel)):
                src = tuple(s * i + k - p for i, k, s, p in zip(pos, ks, stride, padding))
                inside = all(0 <= a < n for a, n in zip(src, spatial))
                entries.append(x[(c,) + src] if inside else 0.0)
            if mode == "avg":
                y[(c,) + pos] = sum(entries) / math.prod(kernel)
            else:
                y[(c,) + pos] = max(entries, key=lambda v: np.real(v))
    return y


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_relu(z):
    return np.where(np.real(z) > 0, z, 0.0)


def np_softmax(z):
    e = np.exp(z - np.max(np.real(z), axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_log_softmax(z):
    m = np.max(np.real(z), axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def np_jacobian(fn, values, wrt):
    """d vec(fn(values)) / d vec(values[wrt]) by the complex step (exact to rounding)."""
    base = {k: np.asarray(v, dtype=complex) for k, v in values.items()}
    v = base[wrt]
    n_out = np.asarray(fn(base)).size
    J = np.zeros((n_out, v.size))
    for k in range(v.size):
        pert = v.copy().reshape(-1)
        pert[k] += 1j * H_STEP
        J[:, k] = np.asarray(fn({**base, wrt: pert.reshape(v.shape)})).reshape(-1).imag / H_STEP
    return J


def np_vjp(fn, values, wrt, g):
    """dl/d values[wrt] for l = sum(g * fn(values)), with the shape of values[wrt]."""
    J = np_jacobian(fn, values, wrt)
    return (J.T @ np.asarray(g, dtype=float).reshape(-1)).reshape(np.shape(values[wrt]))


# ---------------------------------------------------------------------------------------------
# torch references
# ---------------------------------------------------------------------------------------------
def torch_values(values):
    import torch
    return {k: torch.tensor(np.asarray(v, dtype=float), dtype=torch.float64) for k, v in values.items()}


def torch_jacobian(fn, values, wrt):
    import torch
    t = torch_values(values)
    J = torch.autograd.functional.jacobian(lambda v: fn({**t, wrt: v}), t[wrt])
    out = fn(t)
    return J.reshape(out.numel(), t[wrt].numel()).numpy()


def torch_vjp(fn, values, wrt, g):
    import torch
    t = torch_values(values)
    t[wrt].requires_grad_(True)
    out = fn(t)
    out.backward(torch.tensor(np.asarray(g, dtype=float), dtype=torch.float64).reshape(out.shape))
    return t[wrt].grad.numpy()


def torch_conv(x, w, b, stride, padding, dilation):
    """Unbatched (C, *spatial) input through F.conv1d / F.conv2d (adds and removes the batch axis)."""
    import torch.nn.functional as F
    fn = F.conv1d if x.dim() == 2 else F.conv2d
    return fn(x.unsqueeze(0), w, b, stride=stride, padding=padding, dilation=dilation).squeeze(0)


# ---------------------------------------------------------------------------------------------
# 1-4. Convolutions
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvCase:
    id: str
    dims: int
    in_ch: object        # None: single-channel form, x of rank dims and a bare kernel
    out_ch: int
    spatial: tuple
    kernel: tuple
    stride: object = 1   # passed to the engine exactly as written (int or tuple)
    padding: object = 0
    dilation: object = 1
    bias: bool = False

    def axis(self, v):
        return tuple(v) if isinstance(v, tuple) else (v,) * self.dims

    @property
    def hyper(self):
        return self.axis(self.stride), self.axis(self.padding), self.axis(self.dilation)

    @property
    def x_shape(self):
        return self.spatial if self.in_ch is None else (self.in_ch,) + self.spatial

    @property
    def w_shape(self):
        return self.kernel if self.in_ch is None else (self.out_ch, self.in_ch) + self.kernel

    @property
    def wrts(self):
        return ("x", "W", "b") if self.bias else ("x", "W")


CONV_CASES = [
    # conv1d
    ConvCase("1d-single-s2", 1, None, 1, (5,), (3,), stride=2),
    ConvCase("1d-single-s1-p1-d2", 1, None, 1, (7,), (3,), padding=1, dilation=2),
    ConvCase("1d-hw-c2-o1-s2", 1, 2, 1, (5,), (3,), stride=2),
    ConvCase("1d-c2-o3-k2-bias", 1, 2, 3, (7,), (2,), bias=True),
    ConvCase("1d-c1-o2-s2-p1-d2-bias", 1, 1, 2, (8,), (3,), 2, 1, 2, True),
    ConvCase("1d-c3-o2-s2-p1-d2", 1, 3, 2, (9,), (3,), 2, 1, 2, False),
    ConvCase("1d-c2-o2-k4-s3-p2-bias", 1, 2, 2, (6,), (4,), 3, 2, 1, True),
    ConvCase("1d-c2-o2-k1-p2-bias", 1, 2, 2, (4,), (1,), 1, 2, 1, True),
    ConvCase("1d-c1-o1-full-kernel", 1, 1, 1, (5,), (5,)),
    # conv2d
    ConvCase("2d-single-k2x3", 2, None, 1, (4, 5), (2, 3)),
    ConvCase("2d-single-s2-p1-d2", 2, None, 1, (5, 5), (2, 2), 2, 1, 2),
    ConvCase("2d-c2-o1-s2", 2, 2, 1, (5, 5), (3, 3), stride=2),
    ConvCase("2d-c2-o3-s2-p1-d2-bias", 2, 2, 3, (6, 6), (2, 3), 2, 1, 2, True),
    ConvCase("2d-c1-o2-tuples-bias", 2, 1, 2, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2), True),
    ConvCase("2d-c3-o2-p1", 2, 3, 2, (3, 3), (2, 2), 1, 1, 1, False),
    ConvCase("2d-c2-o2-tuples", 2, 2, 2, (4, 6), (2, 2), (1, 3), (2, 1), (3, 1), False),
]


@functools.lru_cache(maxsize=None)
def engine_conv(case):
    x, W = Tensor("x", case.x_shape), Tensor("W", case.w_shape)
    b = Tensor("b", (case.out_ch,)) if case.bias else None
    build = conv1d if case.dims == 1 else conv2d
    y = build("y", x, W, b, stride=case.stride, padding=case.padding, dilation=case.dilation)
    return y, {"x": x, "W": W, "b": b}


@functools.lru_cache(maxsize=None)
def conv_values(case):
    rng = rng_for(case.id)
    values = {"x": rng.standard_normal(case.x_shape), "W": rng.standard_normal(case.w_shape)}
    if case.bias:
        values["b"] = rng.standard_normal((case.out_ch,))
    out = (case.out_ch,) if case.in_ch is not None else ()
    out += tuple(window_count(n, k, s, p, d) for n, k, s, p, d in zip(case.spatial, case.kernel, *case.hyper))
    values["g"] = rng.standard_normal(out)
    return values


def np_conv_model(case):
    stride, padding, dilation = case.hyper

    def fn(v):
        if case.in_ch is None:
            return np_conv(v["x"][None], v["W"][None, None], None, stride, padding, dilation)[0]
        return np_conv(v["x"], v["W"], v.get("b"), stride, padding, dilation)
    return fn


def torch_conv_model(case):
    stride, padding, dilation = case.hyper

    def fn(v):
        if case.in_ch is None:
            return torch_conv(v["x"].unsqueeze(0), v["W"][None, None], None, stride, padding, dilation)[0]
        return torch_conv(v["x"], v["W"], v.get("b"), stride, padding, dilation)
    return fn


@functools.lru_cache(maxsize=None)
def engine_jacobian(case, wrt):
    y, t = engine_conv(case)
    return numeric(derivative(y, t[wrt]).array(), conv_values(case))


@functools.lru_cache(maxsize=None)
def engine_gradient(case, wrt):
    y, t = engine_conv(case)
    c = chain_rule(y, t[wrt], "g")
    assert c.upstream.base == Tensor("g", y.shape).base
    return numeric(c.array(), conv_values(case))


def conv_wrt_params():
    return [pytest.param(case, wrt, id=f"{case.id}-{wrt}") for case in CONV_CASES for wrt in case.wrts]


def conv_params():
    return [pytest.param(case, id=case.id) for case in CONV_CASES]


def jacobian_reference_shape(case, wrt):
    values = conv_values(case)
    return np.size(values["g"]), np.size(values[wrt])


@pytest.mark.parametrize("case, wrt", conv_wrt_params())
def test_conv_jacobian_vs_numpy(case, wrt):
    expected = np_jacobian(np_conv_model(case), conv_values(case), wrt)
    assert expected.shape == jacobian_reference_shape(case, wrt)
    assert_close(engine_jacobian(case, wrt), expected, f"d vec(y)/d vec({wrt})")


@pytest.mark.parametrize("case, wrt", conv_wrt_params())
def test_conv_jacobian_vs_torch(case, wrt):
    pytest.importorskip("torch")
    expected = torch_jacobian(torch_conv_model(case), conv_values(case), wrt)
    assert_close(engine_jacobian(case, wrt), expected, f"d vec(y)/d vec({wrt})")


@pytest.mark.parametrize("case, wrt", conv_wrt_params())
def test_conv_jacobian_dimensions(case, wrt):
    y, t = engine_conv(case)
    d = derivative(y, t[wrt])
    values = conv_values(case)
    assert tuple(int(s) for s in d.tensor_shape) == np.shape(values["g"]) + np.shape(values[wrt])
    assert tuple(int(s) for s in d.matrix_shape) == jacobian_reference_shape(case, wrt)


@pytest.mark.parametrize("case, wrt", conv_wrt_params())
def test_conv_chain_rule_vs_numpy(case, wrt):
    values = conv_values(case)
    expected = np_vjp(np_conv_model(case), values, wrt, values["g"])
    assert_close(engine_gradient(case, wrt), matrix_view(expected), f"dl/d{wrt}")


@pytest.mark.parametrize("case, wrt", conv_wrt_params())
def test_conv_chain_rule_vs_torch(case, wrt):
    pytest.importorskip("torch")
    values = conv_values(case)
    expected = torch_vjp(torch_conv_model(case), values, wrt, values["g"])
    assert_close(engine_gradient(case, wrt), matrix_view(expected), f"dl/d{wrt}")


@functools.lru_cache(maxsize=None)
def engine_forward(case):
    """y[idx] from the element formula at every concrete idx (zero padding applied here)."""
    y, _ = engine_conv(case)
    idx = y.free_indices()
    expr = y.element(idx).doit()   # SymPy expands the finite sums once; indices stay symbolic
    values = conv_values(case)
    out = np.zeros(tuple(int(s) for s in y.shape))
    for pos in flat_positions(y.shape):
        out[pos] = numeric(expr.xreplace(dict(zip(idx, map(sp.Integer, pos)))), values, pad=True)
    return out


@pytest.mark.parametrize("case", conv_params())
def test_conv_forward_element_vs_numpy(case):
    assert_close(engine_forward(case), np_conv_model(case)(conv_values(case)), "y")


@pytest.mark.parametrize("case", conv_params())
def test_conv_forward_element_vs_torch(case):
    pytest.importorskip("torch")
    expected = torch_conv_model(case)(torch_values(conv_values(case))).numpy()
    assert_close(engine_forward(case), expected, "y")


@pytest.mark.parametrize("case", conv_params())
def test_conv_output_shape_vs_torch(case):
    torch = pytest.importorskip("torch")
    y, _ = engine_conv(case)
    x = torch.zeros(case.x_shape, dtype=torch.float64)
    w = torch.zeros(case.w_shape, dtype=torch.float64)
    assert tuple(int(s) for s in y.shape) == tuple(torch_conv_model(case)({"x": x, "W": w}).shape)


# --- shape grids ------------------------------------------------------------------------------
def conv1d_shape_grid():
    return list(itertools.product(range(1, 10), range(1, 5), range(1, 4), range(0, 3), range(1, 4)))


def conv2d_shape_grid():
    rng = rng_for("conv2d-shape-grid")
    combos = []
    for _ in range(120):
        combos.append((int(rng.integers(1, 4)), int(rng.integers(1, 4)),                   # C, O
                       tuple(int(v) for v in rng.integers(1, 9, size=2)),                  # H, W
                       tuple(int(v) for v in rng.integers(1, 5, size=2)),                  # KH, KW
                       tuple(int(v) for v in rng.integers(1, 4, size=2)),                  # stride
                       tuple(int(v) for v in rng.integers(0, 3, size=2)),                  # padding
                       tuple(int(v) for v in rng.integers(1, 4, size=2))))                 # dilation
    return combos


def engine_shape_or_error(build, *args, **kw):
    try:
        return tuple(int(s) for s in build("y", *args, **kw).shape)
    except ShapeError:
        return "error"


def test_conv1d_output_shapes_grid_vs_numpy_count():
    checked = errors = 0
    for n, k, s, p, d in conv1d_shape_grid():
        got = engine_shape_or_error(conv1d, Tensor("x", (2, n)), Tensor("w", (3, 2, k)),
                                    stride=s, padding=p, dilation=d)
        count = window_count(n, k, s, p, d)
        expected = (3, count) if count > 0 else "error"
        assert got == expected, f"n={n} k={k} s={s} p={p} d={d}: {got} != {expected}"
        checked += 1
        errors += expected == "error"
    assert checked == 972 and 0 < errors < checked


def test_conv1d_output_shapes_grid_vs_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    for n, k, s, p, d in conv1d_shape_grid()[::2]:
        got = engine_shape_or_error(conv1d, Tensor("x", (n,)), Tensor("w", (k,)),
                                    stride=s, padding=p, dilation=d)
        try:
            expected = tuple(F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), stride=s, padding=p,
                                      dilation=d).shape[2:])
        except RuntimeError:
            expected = "error"
        assert got == expected, f"n={n} k={k} s={s} p={p} d={d}: {got} != {expected}"


def test_conv2d_output_shapes_grid_vs_torch_and_numpy():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    for C, O, hw, k, s, p, d in conv2d_shape_grid():
        got = engine_shape_or_error(conv2d, Tensor("x", (C,) + hw), Tensor("w", (O, C) + k),
                                    stride=s, padding=p, dilation=d)
        counts = tuple(window_count(*a) for a in zip(hw, k, s, p, d))
        expected = (O,) + counts if min(counts) > 0 else "error"
        assert got == expected, f"{(C, O, hw, k, s, p, d)}: {got} != {expected}"
        if torch is not None:
            try:
                t_shape = tuple(F.conv2d(torch.zeros((1, C) + hw), torch.zeros((O, C) + k), stride=s,
                                         padding=p, dilation=d).shape[1:])
            except RuntimeError:
                t_shape = "error"
            assert got == t_shape, f"{(C, O, hw, k, s, p, d)}: {got} != torch {t_shape}"


N_, K_, S_, P_, D_ = (sp.Symbol(n, integer=True, positive=True) for n in "NKSPD")


def symbolic_size_at(n, k, s, p, d):
    expr = conv_output_size(N_, K_, S_, P_, D_)
    return expr.xreplace({N_: n, K_: k, S_: s, P_: p, D_: d})


def test_conv_output_size_symbolic_vs_numpy_count():
    checked = 0
    for n, k, s, p, d in conv1d_shape_grid():
        count = window_count(n, k, s, p, d)
        if count == 0:
            continue
        value = symbolic_size_at(n, k, s, p, d)
        assert value.is_Integer and int(value) == count, f"n={n} k={k} s={s} p={p} d={d}: {value}"
        checked += 1
    assert checked > 500


def test_conv_output_size_symbolic_vs_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    for n, k, s, p, d in conv1d_shape_grid()[::3]:
        try:
            expected = F.conv1d(torch.zeros(1, 1, n), torch.zeros(1, 1, k), stride=s, padding=p,
                                dilation=d).shape[-1]
        except RuntimeError:
            continue
        value = symbolic_size_at(n, k, s, p, d)
        assert value.is_Integer and int(value) == expected, f"n={n} k={k} s={s} p={p} d={d}: {value}"


# ---------------------------------------------------------------------------------------------
# 5. Activations, softmax, losses, linear, pooling and small compositions
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerCase:
    id: str
    build: object          # () -> (layer, {name: Tensor})
    shapes: tuple          # ((name, shape), ...) of the leaves
    np_fn: object          # dict of np arrays -> array
    torch_fn: object       # dict of torch tensors -> tensor
    wrts: tuple
    kinks: bool = False    # draw values away from 0 (ReLU, max)
    positive: tuple = ()   # names drawn positive (soft targets)


def _t(name, shape):
    return Tensor(name, shape)


def _F():
    import torch.nn.functional as F
    return F


def _torch():
    import torch
    return torch


def _built(layer, *leaves):
    return layer, {t.name: t for t in leaves}


def _sigmoid_case():
    z = _t("z", (5,))
    return _built(Elementwise("s", z, "sigmoid"), z)


def _tanh_case():
    z = _t("z", (2, 3))
    return _built(Elementwise("s", z, "tanh"), z)


def _relu_case():
    z = _t("z", (2, 3))
    return _built(Elementwise("s", z, "relu"), z)


def _softmax_vec():
    z = _t("z", (4,))
    return _built(Softmax("q", z), z)


def _softmax_mat():
    z = _t("z", (2, 3))
    return _built(Softmax("q", z), z)


def _ce():
    z, p = _t("z", (4,)), _t("p", (4,))
    return _built(CrossEntropy("E", z, p), z, p)


def _mse_vec():
    y, t = _t("y", (4,)), _t("t", (4,))
    return _built(Loss("E", "mse", y, t), y, t)


def _mse_mat():
    y, t = _t("y", (2, 3)), _t("t", (2, 3))
    return _built(Loss("E", "mse", y, t), y, t)


def _sos():
    y = _t("y", (4,))
    return _built(Loss("E", "sum_of_squares", y), y)


def _sos_target():
    y, t = _t("y", (2, 2)), _t("t", (2, 2))
    return _built(Loss("E", "sum_of_squares", y, t), y, t)


def _linear():
    x, W, b = _t("x", (4,)), _t("W", (3, 4)), _t("b", (3,))
    return _built(Linear("y", x, W, b), x, W, b)


def _avg1d():
    x = _t("x", (2, 7))
    return _built(Pool("y", x, 3, stride=2, padding=1, mode="avg", dims=1), x)


def _avg2d():
    x = _t("x", (2, 5, 5))
    return _built(Pool("y", x, (2, 3), stride=(1, 2), padding=(1, 1), mode="avg", dims=2), x)


def _max1d():
    x = _t("x", (2, 6))
    return _built(Pool("y", x, 2, mode="max", dims=1), x)


def _max2d():
    x = _t("x", (3, 4))
    return _built(Pool("y", x, 2, stride=1, mode="max", dims=2), x)


def _conv_sigmoid_mse():
    x, w, t = _t("x", (5,)), _t("w", (2,)), _t("t", (4,))
    return _built(Loss("E", "mse", Elementwise("s", conv1d("y", x, w), "sigmoid"), t), x, w, t)


def _linear_ce():
    x, W, b, p = _t("x", (2,)), _t("W", (3, 2)), _t("b", (3,)), _t("p", (3,))
    return _built(CrossEntropy("E", Linear("z", x, W, b), p), x, W, b, p)


def _conv2d_tanh_pool():
    x, W = _t("x", (1, 2, 3)), _t("W", (1, 1, 2, 2))
    h = Elementwise("h", conv2d("y", x, W, padding=1), "tanh")
    return _built(Pool("q", h, 2, mode="avg", dims=2), x, W)


LAYER_CASES = [
    LayerCase("sigmoid", _sigmoid_case, (("z", (5,)),), lambda v: np_sigmoid(v["z"]),
              lambda v: _torch().sigmoid(v["z"]), ("z",)),
    LayerCase("tanh", _tanh_case, (("z", (2, 3)),), lambda v: np.tanh(v["z"]),
              lambda v: _torch().tanh(v["z"]), ("z",)),
    LayerCase("relu", _relu_case, (("z", (2, 3)),), lambda v: np_relu(v["z"]),
              lambda v: _torch().relu(v["z"]), ("z",), kinks=True),
    LayerCase("softmax-vec", _softmax_vec, (("z", (4,)),), lambda v: np_softmax(v["z"]),
              lambda v: _torch().softmax(v["z"], -1), ("z",)),
    LayerCase("softmax-mat", _softmax_mat, (("z", (2, 3)),), lambda v: np_softmax(v["z"]),
              lambda v: _torch().softmax(v["z"], -1), ("z",)),
    LayerCase("cross_entropy-soft", _ce, (("z", (4,)), ("p", (4,))),
              lambda v: -(v["p"] * np_log_softmax(v["z"])).sum(),
              lambda v: _F().cross_entropy(v["z"], v["p"]), ("z", "p"), positive=("p",)),
    LayerCase("mse-vec", _mse_vec, (("y", (4,)), ("t", (4,))), lambda v: ((v["y"] - v["t"]) ** 2).mean(),
              lambda v: _F().mse_loss(v["y"], v["t"]), ("y", "t")),
    LayerCase("mse-mat", _mse_mat, (("y", (2, 3)), ("t", (2, 3))),
              lambda v: ((v["y"] - v["t"]) ** 2).mean(),
              lambda v: _F().mse_loss(v["y"], v["t"], reduction="mean"), ("y", "t")),
    LayerCase("sum_of_squares", _sos, (("y", (4,)),), lambda v: (v["y"] ** 2).sum(),
              lambda v: (v["y"] ** 2).sum(), ("y",)),
    LayerCase("sum_of_squares-target", _sos_target, (("y", (2, 2)), ("t", (2, 2))),
              lambda v: ((v["y"] - v["t"]) ** 2).sum(), lambda v: ((v["y"] - v["t"]) ** 2).sum(),
              ("y", "t")),
    LayerCase("linear", _linear, (("x", (4,)), ("W", (3, 4)), ("b", (3,))),
              lambda v: v["W"] @ v["x"] + v["b"], lambda v: _F().linear(v["x"], v["W"], v["b"]),
              ("x", "W", "b")),
    LayerCase("avg_pool1d-k3-s2-p1", _avg1d, (("x", (2, 7)),),
              lambda v: np_pool(v["x"], "avg", (3,), (2,), (1,)),
              lambda v: _F().avg_pool1d(v["x"], 3, 2, 1, count_include_pad=True), ("x",)),
    LayerCase("avg_pool2d-k2x3-s1x2-p1", _avg2d, (("x", (2, 5, 5)),),
              lambda v: np_pool(v["x"], "avg", (2, 3), (1, 2), (1, 1)),
              lambda v: _F().avg_pool2d(v["x"], (2, 3), (1, 2), (1, 1), count_include_pad=True), ("x",)),
    LayerCase("max_pool1d-k2", _max1d, (("x", (2, 6)),),
              lambda v: np_pool(v["x"], "max", (2,), (2,), (0,)),
              lambda v: _F().max_pool1d(v["x"], 2), ("x",), kinks=True),
    LayerCase("max_pool2d-single-k2-s1", _max2d, (("x", (3, 4)),),
              lambda v: np_pool(v["x"][None], "max", (2, 2), (1, 1), (0, 0))[0],
              lambda v: _F().max_pool2d(v["x"][None], 2, 1)[0], ("x",), kinks=True),
    LayerCase("conv1d-sigmoid-mse", _conv_sigmoid_mse, (("x", (5,)), ("w", (2,)), ("t", (4,))),
              lambda v: ((np_sigmoid(np_conv(v["x"][None], v["w"][None, None], None, (1,), (0,), (1,))[0])
                          - v["t"]) ** 2).mean(),
              lambda v: _F().mse_loss(_torch().sigmoid(_F().conv1d(v["x"][None, None], v["w"][None, None])
                                                      [0, 0]), v["t"]),
              ("x", "w", "t")),
    LayerCase("linear-cross_entropy", _linear_ce, (("x", (2,)), ("W", (3, 2)), ("b", (3,)), ("p", (3,))),
              lambda v: -(v["p"] * np_log_softmax(v["W"] @ v["x"] + v["b"])).sum(),
              lambda v: _F().cross_entropy(_F().linear(v["x"], v["W"], v["b"]), v["p"]),
              ("x", "W", "b", "p"), positive=("p",)),
    LayerCase("conv2d-p1-tanh-avg_pool2d", _conv2d_tanh_pool, (("x", (1, 2, 3)), ("W", (1, 1, 2, 2))),
              lambda v: np_pool(np.tanh(np_conv(v["x"], v["W"], None, (1, 1), (1, 1), (1, 1))),
                                "avg", (2, 2), (2, 2), (0, 0)),
              lambda v: _F().avg_pool2d(_torch().tanh(torch_conv(v["x"], v["W"], None, 1, 1, 1)), 2),
              ("x", "W")),
]


@functools.lru_cache(maxsize=None)
def layer_values(case):
    rng = rng_for(case.id)
    values = {}
    for name, shape in case.shapes:
        if name in case.positive:
            values[name] = rng.uniform(0.1, 1.0, size=shape)
        elif case.kinks:
            values[name] = away_from_zero(rng, shape)
        else:
            values[name] = rng.standard_normal(shape)
    layer, _ = case.build()
    values["g"] = rng.standard_normal(tuple(int(s) for s in layer.shape))
    return values


@functools.lru_cache(maxsize=None)
def engine_layer_jacobian(case, wrt):
    layer, leaves = case.build()
    return numeric(derivative(layer, leaves[wrt]).array(), layer_values(case))


@functools.lru_cache(maxsize=None)
def engine_layer_gradient(case, wrt):
    layer, leaves = case.build()
    return numeric(chain_rule(layer, leaves[wrt], "g").array(), layer_values(case))


def layer_params():
    return [pytest.param(case, wrt, id=f"{case.id}-{wrt}") for case in LAYER_CASES for wrt in case.wrts]


def test_soft_targets_normalisation_is_exercised():
    """cross_entropy cases use unnormalised positive targets: sum(p) != 1 must be handled."""
    for case in LAYER_CASES:
        if "p" in case.positive:
            assert abs(layer_values(case)["p"].sum() - 1.0) > 0.05


@pytest.mark.parametrize("case, wrt", layer_params())
def test_layer_jacobian_vs_numpy(case, wrt):
    values = layer_values(case)
    expected = np_jacobian(case.np_fn, {k: v for k, v in values.items() if k != "g"}, wrt)
    assert_close(engine_layer_jacobian(case, wrt), expected, f"{case.id}: d/d{wrt}")


@pytest.mark.parametrize("case, wrt", layer_params())
def test_layer_jacobian_vs_torch(case, wrt):
    pytest.importorskip("torch")
    values = layer_values(case)
    expected = torch_jacobian(case.torch_fn, {k: v for k, v in values.items() if k != "g"}, wrt)
    assert_close(engine_layer_jacobian(case, wrt), expected, f"{case.id}: d/d{wrt}")


@pytest.mark.parametrize("case, wrt", layer_params())
def test_layer_chain_rule_vs_numpy(case, wrt):
    values = layer_values(case)
    inputs = {k: v for k, v in values.items() if k != "g"}
    expected = np_vjp(case.np_fn, inputs, wrt, values["g"])
    assert_close(engine_layer_gradient(case, wrt), matrix_view(expected), f"{case.id}: dl/d{wrt}")


@pytest.mark.parametrize("case, wrt", layer_params())
def test_layer_chain_rule_vs_torch(case, wrt):
    pytest.importorskip("torch")
    values = layer_values(case)
    inputs = {k: v for k, v in values.items() if k != "g"}
    expected = torch_vjp(case.torch_fn, inputs, wrt, values["g"])
    assert_close(engine_layer_gradient(case, wrt), matrix_view(expected), f"{case.id}: dl/d{wrt}")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in LAYER_CASES])
def test_layer_references_agree(case):
    """The two references agree on the forward value (guards the references themselves)."""
    pytest.importorskip("torch")
    values = {k: v for k, v in layer_values(case).items() if k != "g"}
    assert_close(case.np_fn(values), case.torch_fn(torch_values(values)).numpy(), case.id)


# ---------------------------------------------------------------------------------------------
# 6. Shipped problem files
# ---------------------------------------------------------------------------------------------
HW3 = PROBLEMS / "nyu-dl-2021-hw3.yaml"
HW2_2024 = PROBLEMS / "nyu-dl-2024-hw2.yaml"


@functools.lru_cache(maxsize=None)
def loaded(path):
    from symderive.problem import load_problem
    return load_problem(path)


@functools.lru_cache(maxsize=None)
def answer_for(path, qid):
    (answer,) = loaded(path).solve(ids=[qid])
    return answer


class Answers:
    """Question id -> solved answer, solving each question on first use only."""

    def __init__(self, path):
        self.path = path

    def __getitem__(self, qid):
        return answer_for(self.path, qid)


def solved(path):
    return loaded(path), Answers(path)


def result(answer, label):
    assert answer.ok, f"{answer.question_id} failed: {answer.error}"
    found = [r for r in answer.results if r.label == label]
    assert len(found) == 1, f"{answer.question_id}: results {[r.label for r in answer.results]}"
    return found[0].value


def hw3():
    if not HW3.exists():
        pytest.skip(f"{HW3} is missing")
    return solved(HW3)


# Reference setting of nyu21-1.1c, read from the YAML by hand: x in R^{2x5} (channel, position),
# one filter W in R^{1x2x3}, stride 2, no padding, no dilation, no bias.
HW3_1C = ConvCase("hw3-1.1c", 1, 2, 1, (5,), (3,), stride=2)


def test_hw3_shape_1_1a():
    torch = pytest.importorskip("torch")
    _, answers = hw3()
    shape = result(answers["nyu21-1.1a"], "shape")
    expected = torch.nn.functional.conv2d(torch.zeros(1, 1, 10, 11), torch.zeros(1, 1, 3, 3), stride=2).shape[2:]
    assert tuple(int(s) for s in shape) == tuple(expected)


def test_hw3_shape_1_1a_numpy():
    _, answers = hw3()
    shape = result(answers["nyu21-1.1a"], "shape")
    assert tuple(int(s) for s in shape) == (window_count(10, 3, 2, 0, 1), window_count(11, 3, 2, 0, 1))


def hw3_general_shape():
    _, answers = hw3()
    shape = result(answers["nyu21-1.1b"], "shape")
    assert len(shape) == 3
    names = {s.name: s for e in shape for s in sp.sympify(e).free_symbols}
    assert set(names) <= set("CHWFKPSD"), names

    def at(C, H, W, F, K, P, S, D):
        sub = {names[k]: v for k, v in dict(C=C, H=H, W=W, F=F, K=K, P=P, S=S, D=D).items() if k in names}
        return tuple(int(sp.sympify(e).xreplace(sub)) for e in shape)
    return at


def hw3_general_grid():
    rng = rng_for("hw3-1.1b")
    for _ in range(60):
        C, F = (int(v) for v in rng.integers(1, 4, size=2))
        H, W = (int(v) for v in rng.integers(3, 12, size=2))
        K, S, D = (int(v) for v in rng.integers(1, 4, size=3))
        P = int(rng.integers(0, 3))
        if min(window_count(H, K, S, P, D), window_count(W, K, S, P, D)) > 0:
            yield C, H, W, F, K, P, S, D


def test_hw3_general_shape_1_1b_vs_numpy():
    at = hw3_general_shape()
    n = 0
    for C, H, W, F, K, P, S, D in hw3_general_grid():
        assert at(C, H, W, F, K, P, S, D) == (F, window_count(H, K, S, P, D), window_count(W, K, S, P, D))
        n += 1
    assert n > 20


def test_hw3_general_shape_1_1b_vs_torch():
    torch = pytest.importorskip("torch")
    at = hw3_general_shape()
    for C, H, W, F, K, P, S, D in hw3_general_grid():
        out = torch.nn.functional.conv2d(torch.zeros(1, C, H, W), torch.zeros(F, C, K, K), stride=S,
                                         padding=P, dilation=D)
        assert at(C, H, W, F, K, P, S, D) == tuple(out.shape[1:]), (C, H, W, F, K, P, S, D)


def hw3_element_forward():
    problem, answers = hw3()
    answer = answers["nyu21-1.1c-i"]
    dim = tuple(int(s) for s in result(answer, "dimension"))
    expr = result(answer, "element")
    layer = problem.declarations(problem.question("nyu21-1.1c-i")).lookup("f")
    idx = layer.free_indices()
    assert len(idx) == len(dim)
    values = conv_values(HW3_1C)
    out = np.zeros(dim)
    for pos in flat_positions(dim):
        out[pos] = numeric(expr.xreplace(dict(zip(idx, map(sp.Integer, pos)))), values, pad=True)
    return out


def test_hw3_element_1_1c_i_vs_numpy():
    assert_close(hw3_element_forward(), np_conv_model(HW3_1C)(conv_values(HW3_1C)), "f")


def test_hw3_element_1_1c_i_vs_torch():
    pytest.importorskip("torch")
    expected = torch_conv_model(HW3_1C)(torch_values(conv_values(HW3_1C))).numpy()
    assert_close(hw3_element_forward(), expected, "f")


@pytest.mark.parametrize("qid, wrt", [("nyu21-1.1c-ii", "W"), ("nyu21-1.1c-iii", "x")])
def test_hw3_derivative_arrays_vs_numpy(qid, wrt):
    _, answers = hw3()
    values = conv_values(HW3_1C)
    array = numeric(result(answers[qid], "array"), values)
    expected = np_jacobian(np_conv_model(HW3_1C), values, wrt)
    assert_close(array, expected, qid)
    dimension = tuple(int(s) for s in result(answers[qid], "dimension"))
    assert dimension == np.shape(values["g"]) + np.shape(values[wrt])


@pytest.mark.parametrize("qid, wrt", [("nyu21-1.1c-ii", "W"), ("nyu21-1.1c-iii", "x")])
def test_hw3_derivative_arrays_vs_torch(qid, wrt):
    pytest.importorskip("torch")
    _, answers = hw3()
    values = conv_values(HW3_1C)
    array = numeric(result(answers[qid], "array"), values)
    assert_close(array, torch_jacobian(torch_conv_model(HW3_1C), values, wrt), qid)


def test_hw3_chain_rule_1_1c_iv_vs_numpy():
    _, answers = hw3()
    values = conv_values(HW3_1C)
    array = numeric(result(answers["nyu21-1.1c-iv"], "array"), values)
    expected = np_vjp(np_conv_model(HW3_1C), values, "W", values["g"])
    assert_close(array, matrix_view(expected), "dl/dW")
    assert tuple(int(s) for s in result(answers["nyu21-1.1c-iv"], "dimension")) == expected.shape


def test_hw3_chain_rule_1_1c_iv_vs_torch():
    pytest.importorskip("torch")
    _, answers = hw3()
    values = conv_values(HW3_1C)
    array = numeric(result(answers["nyu21-1.1c-iv"], "array"), values)
    expected = torch_vjp(torch_conv_model(HW3_1C), values, "W", values["g"])
    assert_close(array, matrix_view(expected), "dl/dW")


# --- any shipped problem file: rebuild the reference from the layer graph the file declares -----
# The hyperparameters are read from the engine's parsed layers (the file's own declarations);
# the numbers are computed by the NumPy / torch interpreters below, never by symderive.
class Unsupported(Exception):
    pass


def _ints(values):
    return tuple(int(v) for v in values)


def _beyond_reference(node):
    """The direct loops here are per sample, without groups or ceil_mode; those layers are checked
    against torch autograd in test_batched_conv_pool.py (and by --verify)."""
    if getattr(node, "batch", False) or getattr(node, "groups", 1) != 1 or getattr(node, "ceil_mode", False) \
            or not getattr(node, "count_include_pad", True):
        raise Unsupported(f"{node.name}: batch axis, groups or ceil_mode (see test_batched_conv_pool.py)")


def np_forward(node, values):
    if node.name in values:
        return values[node.name]
    if not node.is_layer:
        raise Unsupported(f"no value for {node.name}")
    _beyond_reference(node)
    if isinstance(node, Conv):
        x, w = np_forward(node.x, values), np_forward(node.weight, values)
        b = np_forward(node.bias, values) if node.bias is not None else None
        hyper = (_ints(node.stride), _ints(node.padding), _ints(node.dilation))
        if not node.channels:
            return np_conv(x[None], w[None, None], None, *hyper)[0]
        return np_conv(x, w, b, *hyper)
    if isinstance(node, Pool):
        x = np_forward(node.x, values)
        args = (node.mode, _ints(node.kernel), _ints(node.stride), _ints(node.padding))
        return np_pool(x[None], *args)[0] if x.ndim == node.dims else np_pool(x, *args)
    if isinstance(node, Elementwise):
        z = np_forward(node.x, values)
        return {"sigmoid": np_sigmoid, "tanh": np.tanh, "relu": np_relu}[node.kind](z)
    if isinstance(node, Softmax):
        return np_softmax(np_forward(node.z, values))
    if isinstance(node, Linear):
        y = np_forward(node.weight, values) @ np_forward(node.x, values)
        return y + np_forward(node.bias, values) if node.bias is not None else y
    if isinstance(node, CrossEntropy) and not node.classes and node.input.rank == 1:   # one sample, soft targets
        return -(np_forward(node.target, values) * np_log_softmax(np_forward(node.input, values))).sum()
    if isinstance(node, Loss):
        y = np_forward(node.prediction, values)
        t = np_forward(node.target, values) if node.target is not None else 0.0
        return ((y - t) ** 2).mean() if node.kind == "mse" else ((y - t) ** 2).sum()
    raise Unsupported(f"no reference for layer kind {node.kind!r}")


def torch_forward(node, values):
    import torch
    import torch.nn.functional as F
    if node.name in values:
        return values[node.name]
    if not node.is_layer:
        raise Unsupported(f"no value for {node.name}")
    _beyond_reference(node)
    if isinstance(node, Conv):
        x, w = torch_forward(node.x, values), torch_forward(node.weight, values)
        b = torch_forward(node.bias, values) if node.bias is not None else None
        hyper = (_ints(node.stride), _ints(node.padding), _ints(node.dilation))
        if not node.channels:
            return torch_conv(x.unsqueeze(0), w[None, None], None, *hyper)[0]
        return torch_conv(x, w, b, *hyper)
    if isinstance(node, Pool):
        x = torch_forward(node.x, values)
        single = x.dim() == node.dims
        x = x.unsqueeze(0) if single else x
        k, s, p = _ints(node.kernel), _ints(node.stride), _ints(node.padding)
        if node.mode == "avg":
            fn = F.avg_pool1d if node.dims == 1 else F.avg_pool2d
            y = fn(x, k, s, p, count_include_pad=True)
        else:
            y = (F.max_pool1d if node.dims == 1 else F.max_pool2d)(x, k, s, p)
        return y[0] if single else y
    if isinstance(node, Elementwise):
        return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[node.kind](
            torch_forward(node.x, values))
    if isinstance(node, Softmax):
        return torch.softmax(torch_forward(node.z, values), -1)
    if isinstance(node, Linear):
        b = torch_forward(node.bias, values) if node.bias is not None else None
        return F.linear(torch_forward(node.x, values), torch_forward(node.weight, values), b)
    if isinstance(node, CrossEntropy) and not node.classes and node.input.rank == 1:
        return F.cross_entropy(torch_forward(node.input, values), torch_forward(node.target, values))
    if isinstance(node, Loss):
        y = torch_forward(node.prediction, values)
        t = torch_forward(node.target, values) if node.target is not None else torch.zeros_like(y)
        return F.mse_loss(y, t) if node.kind == "mse" else ((y - t) ** 2).sum()
    raise Unsupported(f"no reference for layer kind {node.kind!r}")


def problem_questions():
    """Every derivative / chain_rule / shape / element question of every shipped problem file."""
    params = []
    for path in (HW3, HW2_2024):
        if not path.exists():
            params.append(pytest.param(path, None, marks=pytest.mark.skip(reason=f"{path.name} missing"),
                                       id=f"{path.stem}-missing"))
    for path in sorted(PROBLEMS.glob("*.yaml")):
        for q in loaded(path).questions:
            if q.ask in ("derivative", "chain_rule", "shape", "element"):
                params.append(pytest.param(path, q.id, id=f"{path.stem}-{q.id}"))
    return params


def problem_setup(path, qid):
    problem, answers = solved(path)
    q = problem.question(qid)
    if q.option("given") is not None:
        pytest.skip(f"{qid}: has 'given' conditions (not modelled by the reference)")
    answer = answers[qid]
    decls = problem.declarations(q)
    of = decls.lookup(str(q.option("of")))
    wrt = decls.lookup(str(q.option("wrt"))) if q.option("wrt") else None
    if of is None or (q.option("wrt") and wrt is None):
        pytest.skip(f"{qid}: 'of'/'wrt' is not a plain declared name")
    return q, answer, of, wrt


def problem_values(path, qid, of, wrt, upstream):
    shapes = {name: t.shape for name, t in of.leaves().items()}
    if wrt is not None and wrt.is_layer:   # differentiate w.r.t. an inner layer: treat it as a leaf
        shapes[wrt.name] = wrt.shape
    if not all(all(sp.sympify(s).is_Integer for s in shape) for shape in shapes.values()) or \
            not all(sp.sympify(s).is_Integer for s in of.shape):
        pytest.skip(f"{qid}: symbolic sizes, no array")
    rng = rng_for(f"{path.stem}-{qid}")
    values = {name: away_from_zero(rng, _ints(shape)) for name, shape in shapes.items()}
    values[upstream] = rng.standard_normal(_ints(of.shape))
    return values


def symbolic_conv_shape_check(qid, of, shape, backend):
    """A symbolic output shape of a convolution, at random numbers for its size symbols, against
    the output shape of the reference convolution with those numbers (hyperparameters as parsed)."""
    if not isinstance(of, Conv):
        pytest.skip(f"{qid}: symbolic shape of a {of.kind} layer")
    symbols = set()
    for e in (*shape, *of.x.shape, *of.weight.shape, *of.stride, *of.padding, *of.dilation):
        symbols |= sp.sympify(e).free_symbols
    rng = rng_for(f"symbolic-{qid}")
    checked = 0
    for _ in range(60):
        sub = {s: sp.Integer(int(rng.integers(1, 5))) for s in sorted(symbols, key=str)}
        num = lambda seq: tuple(int(sp.sympify(e).xreplace(sub)) for e in seq)
        x_shape, w_shape = num(of.x.shape), num(of.weight.shape)
        hyper = (num(of.stride), num(of.padding), num(of.dilation))
        kernel = w_shape[2:] if of.channels else w_shape
        spatial = x_shape[1:] if of.channels else x_shape
        if min(window_count(n, k, *h) for n, k, h in zip(spatial, kernel, zip(*hyper))) < 1:
            continue
        x, w = np.zeros(x_shape), np.zeros(w_shape)
        if backend == "numpy":
            out = np_conv(x, w, None, *hyper) if of.channels else np_conv(x[None], w[None, None], None, *hyper)[0]
            expected = out.shape
        else:
            tv = torch_values({"x": x, "w": w})
            out = torch_conv(tv["x"], tv["w"], None, *hyper) if of.channels else \
                torch_conv(tv["x"].unsqueeze(0), tv["w"][None, None], None, *hyper)[0]
            expected = tuple(out.shape)
        assert num(shape) == expected, f"{qid} at {sub}: {num(shape)} != {expected}"
        checked += 1
    assert checked >= 10


def _problem_reference(path, qid, backend):
    q, answer, of, wrt = problem_setup(path, qid)
    if q.ask == "shape":
        shape = result(answer, "shape")
        if not all(sp.sympify(s).is_Integer for s in shape):
            symbolic_conv_shape_check(qid, of, shape, backend)
            return
        values = problem_values(path, qid, of, None, "g")
        inputs = {k: v for k, v in values.items() if k != "g"}
        try:
            out = np_forward(of, inputs) if backend == "numpy" else \
                torch_forward(of, torch_values(inputs)).detach().numpy()
        except Unsupported as exc:
            pytest.skip(str(exc))
        assert tuple(int(s) for s in shape) == np.shape(out)
        return
    if q.ask == "element":
        values = problem_values(path, qid, of, None, "g")
        inputs = {k: v for k, v in values.items() if k != "g"}
        try:
            expected = np_forward(of, inputs) if backend == "numpy" else \
                torch_forward(of, torch_values(inputs)).detach().numpy()
        except Unsupported as exc:
            pytest.skip(str(exc))
        assert tuple(int(s) for s in result(answer, "dimension")) == np.shape(expected)
        expr, idx = result(answer, "element"), of.free_indices()
        got = np.zeros(np.shape(expected))
        for pos in flat_positions(np.shape(expected)):
            got[pos] = numeric(expr.xreplace(dict(zip(idx, map(sp.Integer, pos)))), inputs, pad=True)
        assert_close(got, expected, qid)
        return
    upstream = q.option("upstream", "g") if q.ask == "chain_rule" else "g"
    values = problem_values(path, qid, of, wrt, upstream)
    inputs = {k: v for k, v in values.items() if k != upstream}
    labels = [r.label for r in answer.results]
    assert answer.ok, answer.error
    if "array" not in labels:
        pytest.skip(f"{qid}: the answer has no array (too large or symbolic)")
    array = numeric(result(answer, "array"), values)
    try:
        if backend == "numpy":
            fn = functools.partial(np_forward, of)
            fn(inputs)
            if q.ask == "derivative":
                expected = np_jacobian(fn, inputs, wrt.name)
            else:
                expected = matrix_view(np_vjp(fn, inputs, wrt.name, values[upstream]))
        else:
            fn = functools.partial(torch_forward, of)
            fn(torch_values(inputs))
            if q.ask == "derivative":
                expected = torch_jacobian(fn, inputs, wrt.name)
            else:
                expected = matrix_view(torch_vjp(fn, inputs, wrt.name, values[upstream]))
    except Unsupported as exc:
        pytest.skip(str(exc))
    assert_close(array, expected, qid)


@pytest.mark.parametrize("path, qid", problem_questions())
def test_problem_file_vs_numpy(path, qid):
    _problem_reference(path, qid, "numpy")


@pytest.mark.parametrize("path, qid", problem_questions())
def test_problem_file_vs_torch(path, qid):
    pytest.importorskip("torch")
    _problem_reference(path, qid, "torch")
