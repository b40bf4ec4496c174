"""B = Aᵀ checked against matrices PyTorch builds, true and deliberately wrong.

The engine reads B off the chain rule in the order of A's triples, so a true B passes by one
streaming comparison, and anything else goes to the order-free exact check. These tests feed
``SparseSymbolMatrix.equals`` / ``first_difference`` with backward matrices built without the
engine:

* torch's ``conv_transpose2d`` (the adjoint of ``conv2d``) applied to every unit upstream
  gradient, with weight o,c,k set to 2**(its flat index), so every entry names its weights
  exactly (a sum of weights, which a wrong matrix may have, shows as several set bits);
* the same with one mistake each: stride off by one, kernel not flipped, padding off by one,
  an entry missing, an entry repeated.

The true ones must agree with A (built from the forward sum) and with torch's autograd of
conv2d; each wrong one must be rejected with a counterexample that really differs.
"""
import numpy as np
import pytest

import symderive as sd
from symderive.backward import check_transpose
from symderive.conv_matrix import SparseSymbolMatrix, conv_matrix

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (C, H, W) -> O filters (KH, KW), stride, padding, dilation: small enough for dense matrices
CASES = [((2, 7, 6), 3, (3, 2), (2, 1), (1, 0), (1, 2)),
         ((1, 6, 6), 2, (3, 3), (1, 1), (1, 1), (1, 1)),
         ((3, 8, 5), 2, (2, 3), (3, 2), (0, 2), (2, 1))]


def layer_of(case):
    (C, H, W), O, K, s, p, d = case
    return sd.conv2d(sd.tensor("x", C, H, W), sd.tensor("w", O, C, *K), stride=s, padding=p, dilation=d)


def out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def torch_backward(case, stride=None, padding=None, flip=False):
    """Dense B (x positions × y positions) from conv_transpose2d, weights encoded as 2**index,
    cropped or zero-padded to x's shape when a wrong stride or padding changes it."""
    (C, H, W), O, K, s, p, d = case
    stride, padding = stride or s, padding or p
    Ho, Wo = (out_size(n, k, ss, pp, dd) for n, k, ss, pp, dd in zip((H, W), K, s, p, d))
    weights = torch.tensor(2.0 ** np.arange(O * C * K[0] * K[1]), dtype=torch.float64).reshape(O, C, *K)
    if flip:
        weights = weights.flip(2, 3)
    unit = torch.eye(O * Ho * Wo, dtype=torch.float64).reshape(-1, O, Ho, Wo)
    full = F.conv_transpose2d(unit, weights, stride=stride, padding=padding, dilation=d)
    out = torch.zeros(len(unit), C, H, W, dtype=torch.float64)
    h, w = min(H, full.shape[2]), min(W, full.shape[3])
    out[:, :, :h, :w] = full[:, :, :h, :w]
    return out.reshape(len(unit), -1).T.numpy()


def autograd_backward(case):
    """Dense B from torch autograd of conv2d with random weights, and those weights."""
    (C, H, W), O, K, s, p, d = case
    w = torch.tensor(np.random.default_rng(0).standard_normal((O, C, *K)))
    jac = torch.autograd.functional.jacobian(
        lambda x: F.conv2d(x.reshape(1, C, H, W), w, stride=s, padding=p, dilation=d).reshape(-1),
        torch.zeros(C * H * W, dtype=torch.float64))
    return jac.numpy().T, w.numpy()


def triples(dense, source):
    """One triple per set bit: entry e at (row, col) for every weight 2**e summed there."""
    rows, cols = np.nonzero(dense)
    values = dense[rows, cols].astype(np.int64)
    bits = [(r, c, e) for r, c, v in zip(rows, cols, values) for e in range(63) if v >> e & 1]
    r, c, e = (np.array(a, dtype=np.int64) for a in zip(*bits)) if bits else (np.zeros(0, np.int64),) * 3
    return SparseSymbolMatrix(dense.shape, r, c, e, source)


def decoded(dense, row, col):
    """What the dense matrix holds at (row, col), in the shape first_difference reports."""
    value = int(dense[row, col])
    return [e for e in range(63) if value >> e & 1]


def as_list(shown, shape):
    """first_difference's mine/theirs (None, one symbol, or a tuple) as flat weight indices."""
    if shown is None:
        return []
    symbols = shown if isinstance(shown, tuple) else (shown,)
    assert all(s.base.label.name == "w" for s in symbols)
    return sorted(int(np.ravel_multi_index([int(i) for i in s.indices], shape)) for s in symbols)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_true_backward_matrices_agree(case):
    layer = layer_of(case)
    shape = tuple(int(n) for n in layer.weight.shape)
    b, A, equal, difference = check_transpose(layer)
    assert equal and difference is None
    theirs = triples(torch_backward(case), layer.weight)
    assert theirs.nnz == A.nnz == b.matrix.nnz
    assert theirs.equals(A.transpose()) and A.transpose().equals(theirs)       # torch's order: the exact path
    assert theirs.equals(b.matrix) and b.matrix.equals(theirs)
    assert theirs.first_difference(A.transpose()) is None
    # conv_transpose2d is the adjoint torch's autograd uses: the same matrix, numerically
    jac_t, w = autograd_backward(case)
    np.testing.assert_allclose(b.matrix.numeric(w), jac_t, rtol=1e-12, atol=1e-12)


WRONG = {"stride off by one": dict(stride_plus=1), "kernel not flipped": dict(flip=True),
         "padding off by one": dict(padding_plus=1)}


@pytest.mark.parametrize("mistake", list(WRONG) + ["entry missing", "entry repeated"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_wrong_backward_matrices_are_caught(case, mistake):
    layer = layer_of(case)
    shape = tuple(int(n) for n in layer.weight.shape)
    A = conv_matrix(layer)
    At = A.transpose()
    a_dense = torch_backward(case)                       # Aᵀ with the weights encoded (checked above)
    if mistake in WRONG:
        how = WRONG[mistake]
        s, p = case[3], case[4]
        wrong = torch_backward(case, stride=(s[0] + how.get("stride_plus", 0), s[1]),
                               padding=(p[0] + how.get("padding_plus", 0), p[1]), flip=how.get("flip", False))
        bad = triples(wrong, layer.weight)
        dense = wrong
    else:
        true = triples(a_dense, layer.weight)
        n = true.nnz // 2
        keep = np.arange(true.nnz) != n if mistake == "entry missing" else np.r_[np.arange(true.nnz), n]
        bad = SparseSymbolMatrix(true.shape, true.rows[keep], true.cols[keep], true.entries[keep], true.source)
        dense = None
    assert not bad.equals(At) and not At.equals(bad), mistake
    difference = bad.first_difference(At)
    assert difference is not None, mistake
    row, col, mine, theirs = difference
    assert as_list(theirs, shape) == decoded(a_dense, row, col)            # theirs is really Aᵀ there
    if dense is not None:
        assert as_list(mine, shape) == decoded(dense, row, col)
    else:
        in_bad = sorted(int(e) for r, c, e in zip(bad.rows, bad.cols, bad.entries) if (r, c) == (row, col))
        assert as_list(mine, shape) == in_bad
    assert as_list(mine, shape) != as_list(theirs, shape)


def test_wrong_matrix_in_the_engines_order_is_caught():
    """A B in A's order (the streaming comparison's case) with one weight swapped for its
    neighbour in the kernel: the stream stops there, the exact check confirms, and the
    counterexample is that position."""
    case = CASES[0]
    layer = layer_of(case)
    b, A, _, _ = check_transpose(layer)
    m = b.matrix
    n = m.nnz // 3
    entries = m.entries.copy()
    entries[n] = entries[n] ^ 1                       # kernel column flipped for one entry
    bad = SparseSymbolMatrix(m.shape, m.rows, m.cols, entries, m.source)
    assert not bad.equals(A.transpose())
    row, col, mine, theirs = bad.first_difference(A.transpose())
    assert (row, col) == (int(m.rows[n]), int(m.cols[n]))
    assert mine != theirs


# ---------------------------------------------------------------------------------------------
# The derivation is cached per declaration; A's triples are compared with B's as they are generated
# ---------------------------------------------------------------------------------------------
BASE = dict(C=2, H=7, W=6, O=2, K=(3, 2), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)
VARIANTS = {"base": {}, "stride": dict(stride=(2, 1)), "padding": dict(padding=(1, 0)),
            "dilation": dict(dilation=(1, 2)), "groups": dict(groups=2), "size": dict(H=8),
            "kernel": dict(K=(2, 2))}


def declared(**change):
    """A newly declared layer (a new object each call) with BASE's hyperparameters, ``change`` applied."""
    v = dict(BASE, **change)
    return sd.conv2d(sd.tensor("x", v["C"], v["H"], v["W"]), sd.tensor("w", v["O"], v["C"] // v["groups"], *v["K"]),
                     stride=v["stride"], padding=v["padding"], dilation=v["dilation"], groups=v["groups"]), v


def torch_b(v):
    """B from torch's conv_transpose2d (with groups), weights encoded as 2**index, as triples."""
    wshape = (v["O"], v["C"] // v["groups"], *v["K"])
    weights = torch.tensor(2.0 ** np.arange(int(np.prod(wshape))), dtype=torch.float64).reshape(wshape)
    Ho, Wo = (out_size(n, k, s, p, d) for n, k, s, p, d in
              zip((v["H"], v["W"]), v["K"], v["stride"], v["padding"], v["dilation"]))
    unit = torch.eye(v["O"] * Ho * Wo, dtype=torch.float64).reshape(-1, v["O"], Ho, Wo)
    full = F.conv_transpose2d(unit, weights, stride=v["stride"], padding=v["padding"], dilation=v["dilation"],
                              groups=v["groups"], output_padding=tuple(
                                  (n + 2 * p - d * (k - 1) - 1) % s for n, k, s, p, d in
                                  zip((v["H"], v["W"]), v["K"], v["stride"], v["padding"], v["dilation"])))
    assert full.shape[1:] == (v["C"], v["H"], v["W"])
    return full.reshape(len(unit), -1).T.numpy()


def test_cached_derivation_is_not_reused_for_another_declaration():
    """Each variant (another stride, padding, dilation, groups, size or kernel) gets its own B, equal to
    torch's for that variant, even when checked between two checks of the base layer; a layer declared
    like one before (another object) reuses that derivation and still gets its own arrays."""
    from symderive.backward import _derived
    dense, matrices = {}, {}
    for name, change in list(VARIANTS.items()) + [("base", {})]:
        layer, v = declared(**change)
        hits = _derived.cache_info().hits
        b, A, equal, difference = check_transpose(layer)
        assert equal and difference is None, name
        theirs = triples(torch_b(v), layer.weight)
        assert b.matrix.equals(theirs) and theirs.equals(A.transpose()), name
        if name in matrices:                                   # the second base: from the cache
            assert _derived.cache_info().hits == hits + 1
            assert b.matrix.rows is not matrices[name].rows
            assert b.matrix.equals(matrices[name])
        matrices[name], dense[name] = b.matrix, b.matrix.numeric(np.arange(1, 1 + int(layer.weight.numel)))
    for name in VARIANTS:
        if name != "base":
            assert dense[name].shape != dense["base"].shape or not np.array_equal(dense[name], dense["base"]), name


def test_cached_tables_cannot_be_changed_through_a_result():
    layer, _ = declared()
    b = check_transpose(layer)[0]
    b.matrix.entries[0] += 1                   # the caller's own arrays: allowed, and not the cache's
    again = check_transpose(declared()[0])
    assert again[2] and not again[0].matrix.equals(b.matrix)


def test_a_is_compared_with_b_as_it_is_generated():
    """matching_conv_matrix returns A (sharing the candidate's arrays) only for exactly A's triples in
    A's order; anything else, true in another order or wrong, goes to the full exact check."""
    from symderive.conv_matrix import matching_conv_matrix
    case = CASES[0]
    layer = layer_of(case)
    A = conv_matrix(layer)
    b = check_transpose(layer)[0].matrix
    same = matching_conv_matrix(layer, b.transpose())
    assert same is not None and same.rows is b.cols
    assert all(np.array_equal(x, y) for x, y in zip((same.rows, same.cols, same.entries), (A.rows, A.cols, A.entries)))
    n = A.nnz // 2
    entries = A.entries.copy()
    entries[n] ^= 1
    keep_missing, keep_repeat = np.arange(A.nnz) != n, np.r_[np.arange(A.nnz), n]
    torch_order = triples(torch_backward(case), layer.weight).transpose()
    for name, candidate in [
            ("entry changed", SparseSymbolMatrix(A.shape, A.rows, A.cols, entries, A.source)),
            ("entry missing", SparseSymbolMatrix(A.shape, *(a[keep_missing] for a in (A.rows, A.cols, A.entries)),
                                                 A.source)),
            ("entry repeated", SparseSymbolMatrix(A.shape, *(a[keep_repeat] for a in (A.rows, A.cols, A.entries)),
                                                  A.source)),
            ("last entry changed", SparseSymbolMatrix(A.shape, A.rows, A.cols,
                                                      np.r_[A.entries[:-1], A.entries[-1] + 1], A.source)),
            ("other shape", SparseSymbolMatrix((A.shape[0] + 1, A.shape[1]), A.rows, A.cols, A.entries, A.source)),
            ("torch's order", torch_order)]:
        assert matching_conv_matrix(layer, candidate) is None, name
    assert torch_order.equals(A)                             # true, in another order: the exact path says so


@pytest.mark.parametrize("mistake", ["entry changed", "torch stride off by one"])
def test_check_transpose_refuses_a_wrong_b(monkeypatch, mistake):
    """check_transpose itself, handed a wrong B (in A's order, or torch's with the stride off by one),
    says not equal and gives a position where the dense matrices really differ."""
    import symderive.backward as backward
    case = CASES[0]
    layer = layer_of(case)
    true = backward.backward_matrix(layer)
    m = true.matrix
    if mistake == "entry changed":
        entries = m.entries.copy()
        entries[m.nnz // 3] ^= 1
        wrong = SparseSymbolMatrix(m.shape, m.rows, m.cols, entries, m.source)
        wrong_dense = wrong.numeric(2.0 ** np.arange(int(layer.weight.numel)))
    else:
        wrong_dense = torch_backward(case, stride=(case[3][0] + 1, case[3][1]))
        wrong = triples(wrong_dense, layer.weight)
    monkeypatch.setattr(backward, "backward_matrix",
                        lambda _: backward.BackwardMatrix(layer, true.closed_form, true.wrt_idx, true.upstream, wrong))
    _, A, equal, difference = backward.check_transpose(layer)
    assert equal is False and difference is not None
    row, col, mine, theirs = difference
    shape = tuple(int(n) for n in layer.weight.shape)
    assert as_list(theirs, shape) == decoded(torch_backward(case), row, col)
    assert as_list(mine, shape) == decoded(wrong_dense, row, col) != as_list(theirs, shape)


def test_index_arithmetic_is_exact_or_refused():
    """The read-off evaluates index maps with integer NumPy arithmetic: floor/ceiling of quotients
    (negative numerators too), Mod, Max, Min; a non-integer expression is refused, not rounded."""
    import sympy as sp
    from symderive.backward import _index_values
    from symderive.errors import ShapeError
    q = sp.Symbol("q")
    values = np.arange(-7, 8)
    env = {q: values}
    for expr, expected in [(sp.floor(q / 3), values // 3), (sp.ceiling((q - 1) / 2), -((1 - values) // 2)),
                           (sp.Mod(3 * q + 1, 4), (3 * values + 1) % 4), (sp.Max(0, q - 2), np.maximum(0, values - 2)),
                           (sp.Min(4, 2 * q), np.minimum(4, 2 * values)), (q ** 2 - q, values ** 2 - values)]:
        assert np.array_equal(_index_values(expr, env), expected), expr
    with pytest.raises(ShapeError):
        _index_values(q / 2, env)

