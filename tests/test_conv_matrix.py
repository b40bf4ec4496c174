"""Convolutions as matrices (``symderive.conv_matrix``) and the backward pass
(``symderive.backward``) against independent references.

Every expected value is computed in this file without symderive:

* PyTorch (``torch.nn.functional.conv1d/conv2d`` and autograd) when torch is importable;
* NumPy written here (a direct-loop cross-correlation with stride, zero padding and
  dilation, and a dense Jacobian built from the same loops), always.

Tests that compare against a reference are parametrized over the two backends, so the
NumPy path runs (and means something) even where torch is missing; the torch path is
skipped there.

The engine's sparse matrices are turned into numbers only through their documented
``numeric`` method; SymPy results from problem files are evaluated by substituting
random float64 values for their ``Indexed`` entries.
"""
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import symderive as sd
from symderive.answer import Status
from symderive.backward import (backward_as_convolution, backward_matrix, check_transpose,
                                prove_backward_convolution, prove_transpose)
from symderive.contract import same_terms
from symderive.conv_matrix import SparseSymbolMatrix, conv_matrix, im2col_matrix, symbolic_twin
from symderive.errors import ShapeError
from symderive.problem import load_problem
from helpers import assert_close, rng_for  # noqa: E402

try:  # the torch path is optional; the NumPy path always runs
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"
TOL = 1e-10
BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.skipif(torch is None,
                                                                     reason="torch not installed"))]






# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cfg:
    """One convolution: channels C -> O (None: single channel), input and kernel sizes, and
    per-axis stride / padding / dilation."""
    C: object
    O: object
    spatial: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @property
    def dims(self):
        return len(self.spatial)

    @property
    def channels(self):
        return self.C is not None

    @property
    def x_shape(self):
        return ((self.C,) if self.channels else ()) + self.spatial

    @property
    def w_shape(self):
        return ((self.O, self.C) if self.channels else ()) + self.kernel

    @property
    def out_spatial(self):
        return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                     zip(self.spatial, self.kernel, self.stride, self.padding, self.dilation))

    @property
    def y_shape(self):
        return ((self.O,) if self.channels else ()) + self.out_spatial

    def layer(self):
        conv = sd.conv1d if self.dims == 1 else sd.conv2d
        opts = (lambda t: t[0]) if self.dims == 1 else (lambda t: t)   # 1-D: plain ints
        return conv(sd.tensor("x", *self.x_shape), sd.tensor("w", *self.w_shape),
                    stride=opts(self.stride), padding=opts(self.padding), dilation=opts(self.dilation))

    def values(self):
        rng = rng_for(repr(self))
        return (rng.standard_normal(self.x_shape), rng.standard_normal(self.w_shape),
                rng.standard_normal(self.y_shape))

    def __str__(self):
        ch = f"{self.C}->{self.O}" if self.channels else "1ch"
        return (f"{self.dims}d-{ch}-n{self.spatial}-k{self.kernel}-s{self.stride}-p{self.padding}"
                f"-d{self.dilation}").replace(" ", "")


def cfg1(C, O, L, K, s, p, d):
    return Cfg(C, O, (L,), (K,), (s,), (p,), (d,))


CONFIGS_1D = [cfg1(C, O, 7, 3, s, p, d)
              for (C, O), s, p, d in itertools.product([(1, 1), (2, 3), (3, 2)], (1, 2, 3), (0, 1, 2), (1, 2))]
CONFIGS_1D += [
    cfg1(2, 3, 8, 2, 2, 1, 2),          # stride 2 + dilation 2 + padding 1, even kernel
    cfg1(1, 2, 5, 5, 1, 0, 1),          # kernel as long as the input: one output position
    cfg1(3, 1, 4, 4, 3, 2, 1),          # padding + stride leaves trailing inputs unused
]
CONFIGS_1D_SINGLE = [cfg1(None, None, L, K, s, p, d) for L, K, s, p, d in
                     [(5, 3, 1, 0, 1), (7, 3, 2, 1, 2), (6, 2, 3, 2, 1), (9, 4, 1, 2, 2), (4, 1, 2, 0, 3)]]
CONFIGS_2D = [
    Cfg(2, 3, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2)),
    Cfg(3, 2, (5, 7), (2, 3), (1, 3), (2, 1), (2, 1)),
    Cfg(2, 2, (7, 7), (3, 3), (2, 2), (1, 1), (2, 2)),   # stride 2 + dilation 2 + padding 1
    Cfg(1, 1, (4, 6), (2, 2), (1, 2), (0, 2), (1, 1)),
    Cfg(None, None, (5, 6), (3, 2), (2, 1), (1, 1), (1, 2)),   # single channel 2-D
]
ALL_CONFIGS = CONFIGS_1D + CONFIGS_1D_SINGLE + CONFIGS_2D


def ids(cfgs):
    return [str(c) for c in cfgs]


# ---------------------------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------------------------
def with_channels(cfg, x=None, w=None, g=None):
    """Add singleton channel axes for a single-channel configuration."""
    out = []
    for a, lead in ((x, 1), (w, 2), (g, 1)):
        if a is not None:
            out.append(a if cfg.channels else a.reshape((1,) * lead + a.shape))
    return out[0] if len(out) == 1 else out


def _taps(cfg):
    """Every term of the forward sum as (o, out position, c, kernel position, input position),
    the input position possibly in the padding. Plain Python loops."""
    C = cfg.C if cfg.channels else 1
    O = cfg.O if cfg.channels else 1
    for o in range(O):
        for i in itertools.product(*[range(n) for n in cfg.out_spatial]):
            for c in range(C):
                for k in itertools.product(*[range(n) for n in cfg.kernel]):
                    q = tuple(s * ii + d * kk - p for ii, kk, s, p, d in
                              zip(i, k, cfg.stride, cfg.padding, cfg.dilation))
                    inside = all(0 <= qq < n for qq, n in zip(q, cfg.spatial))
                    yield o, i, c, k, q, inside


def numpy_conv(cfg, x, w):
    """Direct-loop cross-correlation with zero padding; returns y with the layer's shape."""
    x3, w3 = with_channels(cfg, x=x), with_channels(cfg, w=w)
    O = cfg.O if cfg.channels else 1
    y = np.zeros((O,) + cfg.out_spatial)
    for o, i, c, k, q, inside in _taps(cfg):
        if inside:
            y[(o,) + i] += w3[(o, c) + k] * x3[(c,) + q]
    return y.reshape(cfg.y_shape)


def numpy_jacobian(cfg, w):
    """Dense A with vec(y) = A vec(x) (row-major vec), from the loops."""
    w3 = with_channels(cfg, w=w)
    O = cfg.O if cfg.channels else 1
    C = cfg.C if cfg.channels else 1
    A = np.zeros((int(np.prod(cfg.y_shape)), int(np.prod(cfg.x_shape))))
    for o, i, c, k, q, inside in _taps(cfg):
        if inside:
            A[np.ravel_multi_index((o,) + i, (O,) + cfg.out_spatial),
              np.ravel_multi_index((c,) + q, (C,) + cfg.spatial)] += w3[(o, c) + k]
    return A


def torch_conv(cfg, x, w):
    x3, w3 = with_channels(cfg, x=x, w=w)
    conv = F.conv1d if cfg.dims == 1 else F.conv2d
    y = conv(torch.tensor(x3)[None], torch.tensor(w3), stride=cfg.stride, padding=cfg.padding,
             dilation=cfg.dilation)
    return y[0].detach().numpy().reshape(cfg.y_shape)


def torch_grad_x(cfg, x, w, g):
    x3, w3 = with_channels(cfg, x=x, w=w)
    xt = torch.tensor(x3, requires_grad=True)
    conv = F.conv1d if cfg.dims == 1 else F.conv2d
    y = conv(xt[None], torch.tensor(w3), stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation)[0]
    y.backward(torch.tensor(g.reshape(y.shape)))
    return xt.grad.numpy().reshape(cfg.x_shape)


def reference_y(backend, cfg, x, w):
    return torch_conv(cfg, x, w) if backend == "torch" else numpy_conv(cfg, x, w)


def reference_grad_x(backend, cfg, x, w, g):
    if backend == "torch":
        return torch_grad_x(cfg, x, w, g)
    return (numpy_jacobian(cfg, w).T @ g.ravel()).reshape(cfg.x_shape)


def substitute(expr, values):
    """Replace every ``name[i, ...]`` in a SymPy expression by values[name][i, ...]."""
    expr = sp.sympify(expr)
    subs = {e: sp.Float(float(values[e.base.label.name][tuple(int(i) for i in e.indices)]), 30)
            for e in expr.atoms(sp.Indexed)}
    return float(expr.xreplace(subs))


def substitute_all(array, values, shape):
    flat = [substitute(e, values) for e in (array if isinstance(array, sp.MatrixBase) else
                                            sp.Array(array).reshape(int(np.prod(shape))))]
    return np.array(flat, dtype=float).reshape(shape)


# Engine objects are cached per configuration (derivations are the slow part).
@functools.lru_cache(maxsize=None)
def engine(cfg):
    layer = cfg.layer()
    b, a, equal, diff = check_transpose(layer)
    return layer, a, b, equal, diff


# ---------------------------------------------------------------------------------------------
# 0. The reference itself: the NumPy loops agree with torch (so either can stand alone)
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("cfg", ALL_CONFIGS[::3] + CONFIGS_2D, ids=ids(ALL_CONFIGS[::3] + CONFIGS_2D))
def test_numpy_reference_agrees_with_torch(cfg):
    x, w, g = cfg.values()
    assert_close(numpy_conv(cfg, x, w), torch_conv(cfg, x, w), "numpy conv vs torch")
    assert_close(numpy_jacobian(cfg, w) @ x.ravel(), torch_conv(cfg, x, w).ravel(), "numpy Jacobian")
    assert_close(numpy_jacobian(cfg, w).T @ g.ravel(), torch_grad_x(cfg, x, w, g).ravel(), "numpy A^T g")


# ---------------------------------------------------------------------------------------------
# 1. A: vec(y) = A vec(x)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_conv_matrix_matches_convolution(cfg, backend):
    x, w, _ = cfg.values()
    A = conv_matrix(cfg.layer())
    assert A.shape == (int(np.prod(cfg.y_shape)), int(np.prod(cfg.x_shape)))
    assert A.source.name == "w"
    assert_close(A.numeric(w) @ x.ravel(), reference_y(backend, cfg, x, w).ravel(), f"A x, {cfg}")


@pytest.mark.parametrize("cfg", ALL_CONFIGS[::4], ids=ids(ALL_CONFIGS[::4]))
def test_conv_matrix_structure(cfg):
    """Entry by entry against the loop Jacobian (with distinct weights every position names
    exactly one weight), and the sparse bookkeeping is consistent."""
    _, w, _ = cfg.values()
    A = conv_matrix(cfg.layer())
    ref = numpy_jacobian(cfg, w)
    assert_close(A.numeric(w), ref, "A entries")
    assert A.nnz == np.count_nonzero(ref)
    assert len(set(zip(A.rows.tolist(), A.cols.tolist()))) == A.nnz, "duplicate positions"
    assert A.entries.min() >= 0 and A.entries.max() < int(np.prod(cfg.w_shape))
    # to_sympy carries the same symbols
    M = A.to_sympy()
    assert M.shape == A.shape
    assert_close(substitute_all(M, {"w": w}, A.shape), ref, "A.to_sympy()")


# ---------------------------------------------------------------------------------------------
# 2. X (im2col): vec(y) = X vec(w)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_im2col_matrix_matches_convolution(cfg, backend):
    x, w, _ = cfg.values()
    X = im2col_matrix(cfg.layer())
    assert X.shape == (int(np.prod(cfg.y_shape)), int(np.prod(cfg.w_shape)))
    assert X.source.name == "x"
    assert_close(X.numeric(x) @ w.ravel(), reference_y(backend, cfg, x, w).ravel(), f"X w, {cfg}")


# ---------------------------------------------------------------------------------------------
# 3. B from the chain rule: dL/dvec(x) = B dL/dvec(y)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_backward_matrix_matches_autograd(cfg, backend):
    x, w, g = cfg.values()
    _, _, b, _, _ = engine(cfg)
    B = b.matrix
    assert B.shape == (int(np.prod(cfg.x_shape)), int(np.prod(cfg.y_shape)))
    assert_close(B.numeric(w) @ g.ravel(), reference_grad_x(backend, cfg, x, w, g).ravel(), f"B g, {cfg}")


def test_backward_matrix_standalone_call():
    cfg = CONFIGS_2D[2]
    x, w, g = cfg.values()
    b = backward_matrix(cfg.layer())
    assert_close(b.matrix.numeric(w), numpy_jacobian(cfg, w).T, "B vs loop Jacobian transposed")


# ---------------------------------------------------------------------------------------------
# 4. check_transpose, and that wrong comparisons are caught
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_check_transpose_equal(cfg):
    _, A, b, equal, diff = engine(cfg)
    assert equal is True
    assert diff is None
    assert b.matrix.equals(A.transpose())
    assert A.transpose().equals(b.matrix)
    _, w, _ = cfg.values()
    assert_close(b.matrix.numeric(w), A.numeric(w).T, "B = A^T numerically")


def test_untransposed_comparison_is_caught_non_square():
    cfg = cfg1(2, 3, 7, 3, 2, 1, 1)
    _, A, b, _, _ = engine(cfg)
    assert A.shape != b.matrix.shape
    assert not b.matrix.equals(A)
    assert b.matrix.first_difference(A) is not None


def test_untransposed_comparison_is_caught_square():
    """Same-padding single channel: A is square and Toeplitz but not symmetric, so B = A
    (instead of Aᵀ) must be rejected even though shapes and nnz agree."""
    cfg = cfg1(None, None, 5, 3, 1, 1, 1)
    _, A, b, _, _ = engine(cfg)
    assert A.shape == b.matrix.shape == (5, 5)
    assert A.nnz == b.matrix.nnz
    assert not b.matrix.equals(A)
    diff = b.matrix.first_difference(A)
    assert diff is not None
    # the reported position really differs (in A, position (r, c) holds w[c - r + 1])
    r, c, mine, theirs = diff
    assert mine != theirs


def _modified(m, n, new_entry):
    rows, cols, entries = m.rows.copy(), m.cols.copy(), m.entries.copy()
    entries[n] = new_entry
    return SparseSymbolMatrix(m.shape, rows, cols, entries, m.source)


@pytest.mark.parametrize("cfg", [CONFIGS_1D[20], CONFIGS_2D[0], CONFIGS_1D_SINGLE[1]],
                         ids=ids([CONFIGS_1D[20], CONFIGS_2D[0], CONFIGS_1D_SINGLE[1]]))
def test_one_changed_entry_is_caught(cfg):
    _, A, b, _, _ = engine(cfg)
    At = A.transpose()
    n_w = int(np.prod(cfg.w_shape))
    n = len(b.matrix.entries) // 2
    old = int(b.matrix.entries[n])
    new = (old + 1) % n_w
    bad = _modified(b.matrix, n, new)
    # the original is untouched (arrays were copied)
    assert int(b.matrix.entries[n]) == old and b.matrix.equals(At)
    assert not bad.equals(At)
    assert not At.equals(bad)
    diff = bad.first_difference(At)
    assert diff is not None
    r, c, mine, theirs = diff
    assert (r, c) == (int(b.matrix.rows[n]), int(b.matrix.cols[n]))
    for sym, flat in ((mine, new), (theirs, old)):
        assert isinstance(sym, sp.Indexed) and sym.base.label.name == "w"
        assert tuple(int(i) for i in sym.indices) == tuple(int(i) for i in np.unravel_index(flat, cfg.w_shape))


def test_missing_entry_is_caught():
    cfg = CONFIGS_1D[7]
    _, A, b, _, _ = engine(cfg)
    m = b.matrix
    keep = np.arange(m.nnz) != 0
    short = SparseSymbolMatrix(m.shape, m.rows[keep].copy(), m.cols[keep].copy(), m.entries[keep].copy(), m.source)
    assert not short.equals(A.transpose())
    r, c, mine, theirs = short.first_difference(A.transpose())
    assert (r, c) == (int(m.rows[0]), int(m.cols[0]))
    assert mine is None and theirs is not None


def test_equals_is_order_independent():
    cfg = CONFIGS_1D[30]
    _, A, _, _, _ = engine(cfg)
    perm = rng_for("perm").permutation(A.nnz)
    shuffled = SparseSymbolMatrix(A.shape, A.rows[perm], A.cols[perm], A.entries[perm], A.source)
    assert shuffled.equals(A) and A.equals(shuffled)
    assert shuffled.first_difference(A) is None
    assert A.transpose().transpose().equals(A)


# ---------------------------------------------------------------------------------------------
# 5. Backward pass as a convolution
# ---------------------------------------------------------------------------------------------
def numpy_backward_by_convolution(g, kernels, stride, dilation, pad_each, crop, in_spatial):
    """dL/dx by the recipe: dilate g by the stride, zero-pad each side, cross-correlate
    (stride 1, with the given dilation) with ``kernels`` shaped (C, O, K...), then drop the
    forward padding ``crop`` at the start of each axis and keep the input's length (positions
    past the end of the full result get nothing). g is (O, out...). Plain loops."""
    O = g.shape[0]
    C = kernels.shape[0]
    K = kernels.shape[2:]
    dilated = np.zeros((O,) + tuple((n - 1) * s + 1 for n, s in zip(g.shape[1:], stride)))
    dilated[(slice(None),) + tuple(slice(None, None, s) for s in stride)] = g
    padded = np.pad(dilated, [(0, 0)] + [(q, q) for q in pad_each])
    full_len = tuple(n - d * (k - 1) for n, d, k in zip(padded.shape[1:], dilation, K))
    full = np.zeros((C,) + full_len)
    for c in range(C):
        for i in itertools.product(*[range(n) for n in full_len]):
            for o in range(O):
                for k in itertools.product(*[range(n) for n in K]):
                    full[(c,) + i] += kernels[(c, o) + k] * padded[(o,) + tuple(
                        ii + d * kk for ii, kk, d in zip(i, k, dilation))]
    out = np.zeros((C,) + tuple(in_spatial))
    for c in range(C):
        for i in itertools.product(*[range(n) for n in in_spatial]):
            j = tuple(ii + p for ii, p in zip(i, crop))
            if all(jj < n for jj, n in zip(j, full_len)):
                out[(c,) + i] = full[(c,) + j]
    return out


BACKCONV_CONFIGS = CONFIGS_1D[::2] + CONFIGS_1D[-3:] + CONFIGS_1D_SINGLE + CONFIGS_2D


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", BACKCONV_CONFIGS, ids=ids(BACKCONV_CONFIGS))
def test_backward_as_convolution(cfg, backend):
    x, w, g = cfg.values()
    bc = backward_as_convolution(cfg.layer())
    # the parameters, derived independently
    assert tuple(int(v) for v in bc.padding_each_side) == tuple((k - 1) * d for k, d in zip(cfg.kernel, cfg.dilation))
    assert tuple(int(v) for v in bc.stride) == cfg.stride
    assert tuple(int(v) for v in bc.dilation) == cfg.dilation
    assert tuple(int(v) for v in bc.crop) == cfg.padding
    # flipped kernels: [c, o, k...] = w[o, c, K-1-k...]
    w3 = with_channels(cfg, w=w)
    flip_ref = np.flip(w3, axis=tuple(range(2, 2 + cfg.dims))).swapaxes(0, 1)
    kshape = flip_ref.shape if cfg.channels else cfg.kernel
    assert tuple(bc.flipped.shape) == kshape
    kernels = substitute_all(bc.flipped, {"w": w}, kshape)
    assert_close(kernels, flip_ref.reshape(kshape), "flipped kernels")

    expected = reference_grad_x(backend, cfg, x, w, g)
    recipe = numpy_backward_by_convolution(
        with_channels(cfg, g=g), kernels.reshape(flip_ref.shape),
        [int(v) for v in bc.stride], [int(v) for v in bc.dilation],
        [int(v) for v in bc.padding_each_side], [int(v) for v in bc.crop], cfg.spatial)
    assert_close(recipe.reshape(cfg.x_shape), expected, f"recipe with the engine's parameters, {cfg}")
    M = bc.matrix
    assert M.shape == (int(np.prod(cfg.x_shape)), int(np.prod(cfg.y_shape)))
    assert_close(M.numeric(w) @ g.ravel(), expected.ravel(), f"bc.matrix g, {cfg}")


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("cfg", CONFIGS_1D[::5] + CONFIGS_2D[:3], ids=ids(CONFIGS_1D[::5] + CONFIGS_2D[:3]))
def test_backward_as_convolution_vs_conv_transpose(cfg):
    """torch's conv_transpose is the same map: cross-check the recipe's reference."""
    x, w, g = cfg.values()
    conv_t = F.conv_transpose1d if cfg.dims == 1 else F.conv_transpose2d
    w3 = with_channels(cfg, w=w)
    g3 = with_channels(cfg, g=g)
    natural = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
               zip(cfg.out_spatial, cfg.stride, cfg.padding, cfg.dilation, cfg.kernel)]
    extra = tuple(n - m for n, m in zip(cfg.spatial, natural))
    z = conv_t(torch.tensor(g3)[None], torch.tensor(w3), stride=cfg.stride, padding=cfg.padding,
               output_padding=extra, dilation=cfg.dilation)[0].numpy()
    bc = backward_as_convolution(cfg.layer())
    assert_close(bc.matrix.numeric(w) @ g.ravel(), z.ravel(), "bc.matrix vs conv_transpose")


# ---------------------------------------------------------------------------------------------
# 6. Symbolic proofs
# ---------------------------------------------------------------------------------------------
def _symbolic_1d():
    C, L, K, S, D, O = sd.sizes("C L K S D O")
    P = sp.Symbol("P", integer=True, nonnegative=True)
    return sd.conv1d(sd.tensor("x", C, L), sd.tensor("w", O, C, K), stride=S, padding=P, dilation=D)


def _symbolic_single():
    L, K, S, D = sd.sizes("L K S D")
    P = sp.Symbol("P", integer=True, nonnegative=True)
    return sd.conv1d(sd.tensor("x", L), sd.tensor("w", K), stride=S, padding=P, dilation=D)


def _symbolic_2d():
    return symbolic_twin(sd.conv2d(sd.tensor("x", 2, 5, 6), sd.tensor("w", 3, 2, 2, 3),
                                   stride=(2, 1), padding=(1, 0), dilation=(1, 2)))


SYMBOLIC = {"conv1d": _symbolic_1d, "single": _symbolic_single, "conv2d-twin": _symbolic_2d}


@functools.lru_cache(maxsize=None)
def proofs(kind):
    layer = SYMBOLIC[kind]()
    return layer, prove_transpose(layer), prove_backward_convolution(layer)


def test_symbolic_twin_sizes():
    twin = _symbolic_2d()
    assert all(not sp.sympify(n).is_Integer for n in tuple(twin.x.shape) + tuple(twin.weight.shape))
    assert twin.x.shape[0] == twin.weight.shape[1]
    for v in twin.stride + twin.dilation:
        assert v.is_Symbol and v.is_positive and v.is_integer
    for v in twin.padding:
        assert v.is_Symbol and v.is_nonnegative and v.is_integer
    single = symbolic_twin(sd.conv1d(sd.tensor("x", 6), sd.tensor("w", 2), stride=2))
    assert single.x.rank == 1 and single.weight.rank == 1 and not single.x.shape[0].is_Integer


@pytest.mark.parametrize("kind", list(SYMBOLIC))
def test_prove_transpose_symbolic(kind):
    _, (a_el, b_el, proved), _ = proofs(kind)
    assert proved is True
    assert same_terms(a_el, b_el) and same_terms(b_el, a_el)


@pytest.mark.parametrize("kind", list(SYMBOLIC))
def test_prove_backward_convolution_symbolic(kind):
    _, _, (z, chain, proved) = proofs(kind)
    assert proved is True
    assert same_terms(z, chain)


def _shift_last_weight_index(expr, f):
    """Rewrite every w[..., k] as w[..., f(k)] (a deliberately wrong kernel index)."""
    def fix(e):
        return e.base[tuple(e.indices[:-1]) + (f(e.indices[-1]),)]
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label.name == "w", fix)


@pytest.mark.parametrize("kind", list(SYMBOLIC))
def test_wrong_identities_are_not_proved(kind):
    layer, (a_el, b_el, _), (z, chain, _) = proofs(kind)
    K = layer.kernel[-1]
    shifted = _shift_last_weight_index(a_el, lambda k: k + 1)
    flipped = _shift_last_weight_index(a_el, lambda k: K - 1 - k)
    assert shifted != a_el and flipped != a_el
    assert same_terms(a_el, shifted) is False
    assert same_terms(a_el, flipped) is False
    assert same_terms(a_el, -a_el) is False
    assert same_terms(a_el, 2 * a_el) is False
    # the backward-as-convolution identity with an unflipped kernel or a sign error
    unflipped = _shift_last_weight_index(z, lambda k: K - 1 - k)
    assert same_terms(unflipped, chain) is False
    assert same_terms(-z, chain) is False


def test_wrong_identity_is_really_wrong_at_numbers():
    """Sanity for the previous test: at concrete sizes the shifted kernel index gives a
    different matrix (so False there is the right answer, not just 'not shown')."""
    cfg = cfg1(1, 1, 6, 3, 1, 0, 1)
    _, w, _ = cfg.values()
    A = numpy_jacobian(cfg, w)
    shifted = np.zeros_like(A)
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            k = c - r + 1          # w index one further along the kernel
            if 0 <= c - r <= 2 and 0 <= k < 3:
                shifted[r, c] = w[0, 0, k]
    assert not np.allclose(A, shifted)


# ---------------------------------------------------------------------------------------------
# 7. Shipped problems
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def solved(name):
    answers = load_problem(str(PROBLEMS / name)).solve()
    return {a.question_id: a for a in answers}


def result(answer, label):
    found = [r.value for r in answer.results if r.label == label]
    assert len(found) == 1, f"{answer.question_id}: results {[r.label for r in answer.results]}"
    return found[0]


def _csce_cfg():
    return cfg1(2, 2, 4, 3, 1, 0, 1)        # X: 2x4, w: 2x2x3, stride 1, no padding


@pytest.mark.parametrize("backend", BACKENDS)
def test_csce636_q5a_conv_matrix(backend):
    ans = solved("csce636-hw2.yaml")["csce636-q5a"]
    assert ans.ok, ans.error
    A = result(ans, "matrix")
    assert isinstance(A, sp.MatrixBase) and A.shape == (4, 8)
    for e in A:
        assert e == 0 or (isinstance(e, sp.Indexed) and e.base.label.name == "w")
    cfg = _csce_cfg()
    rng = rng_for("csce636-q5a")
    for _ in range(3):
        x, w = rng.standard_normal((2, 4)), rng.standard_normal((2, 2, 3))
        A_num = substitute_all(A, {"w": w}, (4, 8))
        assert_close(A_num, numpy_jacobian(cfg, w), "A vs loop Jacobian")
        assert_close(A_num @ x.ravel(), reference_y(backend, cfg, x, w).ravel(), "A x vs conv")


def test_csce636_q5b_backward_matrix():
    ans = solved("csce636-hw2.yaml")["csce636-q5b"]
    assert ans.status is Status.PROVED
    A = result(solved("csce636-hw2.yaml")["csce636-q5a"], "matrix")
    B = result(ans, "B")
    assert B.shape == (8, 4)
    assert sp.simplify(sp.Matrix(B) - sp.Matrix(A).T) == sp.zeros(8, 4)
    cfg = _csce_cfg()
    x, w, g = cfg.values()
    B_num = substitute_all(B, {"w": w}, (8, 4))
    assert_close(B_num, numpy_jacobian(cfg, w).T, "B vs loop Jacobian transposed")
    if torch is not None:
        assert_close(B_num @ g.ravel(), torch_grad_x(cfg, x, w, g).ravel(), "B g vs autograd")


def test_csce636_q5c_backward_conv():
    ans = solved("csce636-hw2.yaml")["csce636-q5c"]
    assert ans.ok, ans.error
    padding = result(ans, "padding")
    assert tuple(int(p) for p in padding) == (2,)          # (K - 1)·d = 2
    kernels = result(ans, "kernels")
    cfg = _csce_cfg()
    x, w, g = cfg.values()
    flip_ref = np.flip(w, axis=2).swapaxes(0, 1)          # [c, o, k] = w[o, c, 2 - k]
    assert tuple(kernels.shape) == flip_ref.shape
    k_num = substitute_all(kernels, {"w": w}, flip_ref.shape)
    assert_close(k_num, flip_ref, "flipped kernels")
    # the answer's padding and kernels give dL/dX by the recipe
    recipe = numpy_backward_by_convolution(g, k_num, [1], [1], [int(p) for p in padding], [0], (4,))
    expected = torch_grad_x(cfg, x, w, g) if torch is not None else (numpy_jacobian(cfg, w).T @ g.ravel()).reshape(2, 4)
    assert_close(recipe, expected, "recipe from the answer")


def test_hw5_p3a_conv_matrix():
    ans = solved("hw5-written.yaml")["hw5-p3a"]
    assert ans.ok, ans.error
    Fm = result(ans, "matrix")
    assert Fm.shape == (3, 5)
    rng = rng_for("hw5-p3a")
    for _ in range(3):
        x, f = rng.standard_normal(5), rng.standard_normal(3)
        F_num = substitute_all(Fm, {"f": f}, (3, 5))
        assert_close(F_num @ x, np.correlate(x, f, mode="valid"), "F x vs valid correlation")
        expected = np.array([[f[c - r] if 0 <= c - r < 3 else 0.0 for c in range(5)] for r in range(3)])
        assert_close(F_num, expected, "F entries")


def _relu_case(rng):
    """Random x, f with z = valid-correlation(x, f) having z1 > 0, z2 > 0, z3 < 0 (margin)."""
    for _ in range(10_000):
        x, f = rng.standard_normal(5), rng.standard_normal(3)
        z = np.correlate(x, f, mode="valid")
        if z[0] > 0.1 and z[1] > 0.1 and z[2] < -0.1:
            return x, f
    raise AssertionError("no random draw satisfied the signs")


def test_hw5_p3b_relu_derivative():
    ans = solved("hw5-written.yaml")["hw5-p3b"]
    assert ans.ok, ans.error
    col = result(ans, "array")
    assert col.shape == (3, 1)
    assert {e.base.label.name for e in sp.Matrix(col).atoms(sp.Indexed)} <= {"x"}
    rng = rng_for("hw5-p3b")
    for _ in range(4):
        x, f = _relu_case(rng)
        got = substitute_all(col, {"x": x}, (3,))
        if torch is not None:
            ft = torch.tensor(f, requires_grad=True)
            xt = torch.tensor(x)
            jac = torch.autograd.functional.jacobian(
                lambda ff: torch.relu(F.conv1d(xt[None, None], ff[None, None])[0, 0]), ft)
            expected = jac[:, 0].numpy()                   # f_1 is f[0] (1-based question)
        else:
            h = 1e-6
            e0 = np.array([h, 0.0, 0.0])
            relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
            expected = (relu(np.correlate(x, f + e0, "valid")) - relu(np.correlate(x, f - e0, "valid"))) / (2 * h)
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)
        assert_close(got, [x[0], x[1], 0.0], "[x1, x2, 0]")


# ---------------------------------------------------------------------------------------------
# 8. Property test over random small conv1d configurations
# ---------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(C=st.integers(1, 3), O=st.integers(1, 3), L=st.integers(1, 9), K=st.integers(1, 4),
       s=st.integers(1, 3), d=st.integers(1, 3), p=st.integers(0, 2), seed=st.integers(0, 2**32 - 1))
@example(C=1, O=1, L=1, K=1, s=3, d=1, p=1, seed=0)     # every window lies in the padding: y = 0
@example(C=1, O=1, L=3, K=4, s=1, d=1, p=0, seed=0)     # kernel longer than the input: ShapeError
def test_property_random_conv1d(C, O, L, K, s, d, p, seed):
    cfg = cfg1(C, O, L, K, s, p, d)
    too_big = (K - 1) * d + 1 > L + 2 * p
    if too_big:
        with pytest.raises(ShapeError):
            cfg.layer()
        return
    layer = cfg.layer()
    assert tuple(int(n) for n in layer.shape) == cfg.y_shape
    b, A, equal, diff = check_transpose(layer)
    assert equal is True, diff
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(cfg.x_shape), rng.standard_normal(cfg.w_shape)
    assert_close(A.numeric(w) @ x.ravel(), numpy_conv(cfg, x, w).ravel(), f"A x, {cfg}")
    g = rng.standard_normal(cfg.y_shape)
    assert_close(b.matrix.numeric(w) @ g.ravel(), numpy_jacobian(cfg, w).T @ g.ravel(), f"B g, {cfg}")


# Every window of the forward sum lies in the zero padding, so y is identically 0: A = 0 and
# the backward matrix must be the zero matrix B = Aᵀ (torch agrees: y = 0, x.grad = 0).
ALL_PADDING = [cfg1(1, 1, 1, 1, 3, 1, 1), cfg1(2, 3, 1, 1, 3, 1, 1), cfg1(1, 1, 2, 1, 3, 1, 1),
               cfg1(1, 1, 1, 1, 2, 1, 1), cfg1(2, 1, 1, 2, 1, 1, 2),
               Cfg(1, 1, (1, 1), (1, 1), (3, 3), (1, 1), (1, 1))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", ALL_PADDING, ids=ids(ALL_PADDING))
def test_output_entirely_in_padding(cfg, backend):
    x, w, g = cfg.values()
    assert_close(reference_y(backend, cfg, x, w), np.zeros(cfg.y_shape), "reference y = 0")
    A = conv_matrix(cfg.layer())
    assert A.nnz == 0
    b, A2, equal, diff = check_transpose(cfg.layer())
    assert equal is True, diff
    assert b.matrix.nnz == 0
    assert_close(b.matrix.numeric(w) @ g.ravel(), reference_grad_x(backend, cfg, x, w, g).ravel(), "B g = 0")


# ---------------------------------------------------------------------------------------------
# 9. The O(nnz) builder against the straightforward construction, and the sorting-free comparison
# ---------------------------------------------------------------------------------------------
def meshgrid_triples(cfg):
    """The former construction, kept here as a reference: a grid over every (o, output
    position, c, kernel position), masked to the terms inside the input."""
    O, C = (cfg.O, cfg.C) if cfg.channels else (1, 1)
    out = list(cfg.out_spatial)
    grids = np.meshgrid(np.arange(O), *[np.arange(n) for n in out], np.arange(C),
                        *[np.arange(k) for k in cfg.kernel], indexing="ij")
    o, outs, c, ks = grids[0], grids[1:1 + cfg.dims], grids[1 + cfg.dims], grids[2 + cfg.dims:]
    pos = [s * i + d * k - p for i, k, s, d, p in zip(outs, ks, cfg.stride, cfg.dilation, cfg.padding)]
    valid = np.ones(o.shape, dtype=bool)
    for q, n in zip(pos, cfg.spatial):
        valid &= (q >= 0) & (q < n)
    y = np.ravel_multi_index([o[valid]] + [a[valid] for a in outs], [O] + out)
    x = np.ravel_multi_index([c[valid]] + [a[valid] for a in pos], [C] + list(cfg.spatial))
    w = np.ravel_multi_index([o[valid], c[valid]] + [a[valid] for a in ks], [O, C] + list(cfg.kernel))
    return y, x, w


def sorted_triples(y, x, w):
    order = np.lexsort((x, y))
    return [np.asarray(a)[order].astype(np.int64) for a in (y, x, w)]


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=ids(ALL_CONFIGS))
def test_builder_matches_meshgrid_construction(cfg):
    A = conv_matrix(cfg.layer())
    assert A.rows.dtype == A.cols.dtype == A.entries.dtype == np.int32     # small sizes fit int32
    for mine, ref in zip(sorted_triples(A.rows, A.cols, A.entries), sorted_triples(*meshgrid_triples(cfg))):
        np.testing.assert_array_equal(mine, ref)


@pytest.mark.parametrize("cfg", ALL_CONFIGS[::3], ids=ids(ALL_CONFIGS[::3]))
def test_locate_finds_exactly_the_nonzeros(cfg):
    """locate(y, x) over every position of A: the index of its triple where A has one, else −1."""
    A = conv_matrix(cfg.layer())
    yy, xx = np.meshgrid(np.arange(A.shape[0]), np.arange(A.shape[1]), indexing="ij")
    at = A.locate(yy.ravel(), xx.ravel())
    hit = at >= 0
    assert hit.sum() == A.nnz and len(np.unique(at[hit])) == A.nnz
    np.testing.assert_array_equal(A.rows[at[hit]], yy.ravel()[hit])
    np.testing.assert_array_equal(A.cols[at[hit]], xx.ravel()[hit])


def test_duplicate_in_place_of_a_missing_entry_is_caught():
    """Same nnz, every triple a true nonzero of Aᵀ, but one repeated and one absent."""
    cfg = CONFIGS_2D[0]
    _, A, b, _, _ = engine(cfg)
    m = b.matrix
    rows, cols, entries = m.rows.copy(), m.cols.copy(), m.entries.copy()
    rows[1], cols[1], entries[1] = rows[0], cols[0], entries[0]
    twice = SparseSymbolMatrix(m.shape, rows, cols, entries, m.source)
    assert twice.nnz == A.nnz
    assert not twice.equals(A.transpose()) and not A.transpose().equals(twice)
    assert twice.first_difference(A.transpose()) is not None


def test_large_indices_switch_to_int64():
    """Flat indices past 2³¹ − 1 are stored as int64 (checked on the layout only: building
    that matrix would need gigabytes)."""
    from symderive.conv_matrix import _ConvLayout
    big = sd.conv2d(sd.tensor("x", 1, 50000, 50000), sd.tensor("w", 1, 1, 1, 1))
    assert _ConvLayout(big).dtype == np.int64
    assert _ConvLayout(CONFIGS_2D[0].layer()).dtype == np.int32
