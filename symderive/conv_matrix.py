"""Convolutions as matrices, built from index arithmetic in O(nonzeros).

For a convolution y = conv(x, w) at concrete sizes every nonzero of

    A  with vec(y) = A · vec(x)     (the Toeplitz / convolution matrix), and
    X  with vec(y) = X · vec(w)     (the im2col matrix, for ∂y/∂w)

is one term w[o, c, k] · x[c, s·i + d·k − p] of the forward sum. So both are
stored as the same array of triples (row, x-entry, w-entry): A places weight
w-entry at (row, x-entry), X places input x-entry at (row, w-entry). Entries
are symbols, identified exactly by their flat index in w or x, so comparing
two matrices is comparing integer arrays. Flattening is row-major, as PyTorch.
"""
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .errors import ShapeError
from .layers import Conv
from .tensors import Tensor, flat_positions


@dataclass
class SparseSymbolMatrix:
    """A sparse matrix whose nonzeros are single entries of one tensor (``source``).

    ``rows[n], cols[n]`` holds ``source.flat[entries[n]]``. Duplicated positions are
    never produced by a convolution (each x-entry meets each w-entry at most once
    per output), so no summing is needed.
    """
    shape: tuple
    rows: np.ndarray
    cols: np.ndarray
    entries: np.ndarray
    source: Tensor

    @property
    def nnz(self):
        return len(self.rows)

    def transpose(self):
        return SparseSymbolMatrix(self.shape[::-1], self.cols, self.rows, self.entries, self.source)

    def canonical(self):
        """The triples sorted by (row, col): two matrices are equal iff these arrays are."""
        order = np.lexsort((self.cols, self.rows))
        return self.rows[order], self.cols[order], self.entries[order]

    def equals(self, other):
        """Exact equality (same shape, same symbol at every position)."""
        if self.shape != other.shape or self.nnz != other.nnz or self.source.name != other.source.name:
            return False
        return all(np.array_equal(a, b) for a, b in zip(self.canonical(), other.canonical()))

    def first_difference(self, other):
        """A position where the two differ, as (row, col, mine, theirs), or None."""
        mine = {(int(r), int(c)): int(e) for r, c, e in zip(self.rows, self.cols, self.entries)}
        theirs = {(int(r), int(c)): int(e) for r, c, e in zip(other.rows, other.cols, other.entries)}
        for pos in sorted(set(mine) | set(theirs)):
            if mine.get(pos) != theirs.get(pos):
                show = lambda e: None if e is None else self.symbol(e)  # noqa: E731
                return pos + (show(mine.get(pos)), show(theirs.get(pos)))
        return None

    def symbol(self, entry):
        return self.source.base[flat_positions(self.source.shape)[entry]] if self.source.shape \
            else self.source.base

    def to_sympy(self):
        """A SymPy ``SparseMatrix`` with the symbolic entries."""
        positions = flat_positions(self.source.shape)
        values = {(int(r), int(c)): self.source.base[positions[int(e)]]
                  for r, c, e in zip(self.rows, self.cols, self.entries)}
        return sp.SparseMatrix(self.shape[0], self.shape[1], values)

    def numeric(self, values):
        """Dense NumPy matrix with ``values`` (an array shaped like ``source``) substituted."""
        dense = np.zeros(self.shape, dtype=np.asarray(values).dtype)
        dense[self.rows, self.cols] = np.asarray(values).reshape(-1)[self.entries]
        return dense


def concrete_layer(layer):
    """Raise unless ``layer`` is a convolution with numeric sizes, which its matrix views need."""
    if not isinstance(layer, Conv):
        raise ShapeError(f"'{layer.name}' is a {layer.kind}, not a convolution")
    numbers = list(layer.x.shape) + list(layer.weight.shape) + list(layer.stride) \
        + list(layer.padding) + list(layer.dilation)
    if not all(sp.sympify(v).is_Integer for v in numbers):
        raise ShapeError(f"the matrix of '{layer.name}' needs numeric sizes; for symbolic sizes "
                         "use its element formula")


def conv_triples(layer):
    """For every term of the forward sum: (flat y index, flat x index, flat w index).

    Vectorised over all (output, channel, kernel) combinations; terms that fall
    into the zero padding are dropped.
    """
    concrete_layer(layer)
    dims = layer.dims
    out_spatial = [int(n) for n in layer.shape[len(layer.shape) - dims:]]
    in_spatial = [int(n) for n in layer.x.shape[layer.x.rank - dims:]]
    kernel = [int(k) for k in layer.kernel]
    stride, pad, dil = ([int(v) for v in vals] for vals in (layer.stride, layer.padding, layer.dilation))
    n_out = int(layer.weight.shape[0]) if layer.channels else 1
    n_in = int(layer.x.shape[0]) if layer.channels else 1
    # Axes: (o, out positions..., c, kernel positions...)
    grids = np.meshgrid(np.arange(n_out), *[np.arange(n) for n in out_spatial],
                        np.arange(n_in), *[np.arange(k) for k in kernel], indexing="ij")
    o, outs, c, ks = grids[0], grids[1:1 + dims], grids[1 + dims], grids[2 + dims:]
    pos = [s * i + d * k - p for i, k, s, d, p in zip(outs, ks, stride, dil, pad)]
    valid = np.ones(o.shape, dtype=bool)
    for q, n in zip(pos, in_spatial):
        valid &= (q >= 0) & (q < n)
    o, c = o[valid], c[valid]
    outs = [a[valid] for a in outs]
    ks = [a[valid] for a in ks]
    pos = [a[valid] for a in pos]
    y_flat = np.ravel_multi_index([o] + outs, [n_out] + out_spatial)
    x_flat = np.ravel_multi_index([c] + pos, [n_in] + in_spatial)
    w_flat = np.ravel_multi_index([o, c] + ks, [n_out, n_in] + kernel)
    return y_flat.astype(np.int64), x_flat.astype(np.int64), w_flat.astype(np.int64)


def conv_matrix(layer):
    """A with vec(y) = A · vec(x) (+ bias): entries are weights."""
    y_flat, x_flat, w_flat = conv_triples(layer)
    shape = (int(sp.Mul(*layer.shape)), int(layer.x.numel))
    return SparseSymbolMatrix(shape, y_flat, x_flat, w_flat, layer.weight)


def im2col_matrix(layer):
    """X with vec(y) = X · vec(w) (+ bias): entries are inputs; X = ∂vec(y)/∂vec(w)."""
    y_flat, x_flat, w_flat = conv_triples(layer)
    shape = (int(sp.Mul(*layer.shape)), int(layer.weight.numel))
    return SparseSymbolMatrix(shape, y_flat, w_flat, x_flat, layer.x)



def symbolic_twin(layer):
    """The same convolution with every size and hyperparameter a symbol, for proofs.

    Channels C (in) and O (out), lengths L (1-D) or H, W (2-D), kernel K (or KH, KW),
    stride S, padding P, dilation D (per axis in 2-D).
    """
    from .layers import Conv
    from .tensors import size_symbol
    axes = [""] if layer.dims == 1 else ["_1", "_2"]
    spatial = tuple(size_symbol(n) for n in (["L"] if layer.dims == 1 else ["H", "W"]))
    kernel = tuple(size_symbol("K" + a) for a in axes)
    stride = tuple(size_symbol("S" + a) for a in axes)
    dilation = tuple(size_symbol("D" + a) for a in axes)
    padding = tuple(sp.Symbol("P" + a, integer=True, nonnegative=True) for a in axes)
    if layer.channels:
        C, O = size_symbol("C"), size_symbol("O")
        x = Tensor(layer.x.name, (C,) + spatial)
        w = Tensor(layer.weight.name, (O, C) + kernel)
    else:
        x, w = Tensor(layer.x.name, spatial), Tensor(layer.weight.name, kernel)
    return Conv(layer.name, x, w, None, stride, padding, dilation, layer.dims)


def size_names(layer):
    """Names of the symbolic sizes and hyperparameters of a (twin) layer, for sheets."""
    values = list(layer.x.shape) + list(layer.weight.shape) + list(layer.stride) \
        + list(layer.padding) + list(layer.dilation)
    return ", ".join(sorted({s.name for v in values for s in sp.sympify(v).free_symbols}))


def _split(shape, limit):
    """How many leading axes to split off so that the rest has at most ``limit`` entries."""
    for k in range(len(shape) + 1):
        if int(sp.Mul(*shape[k:])) <= limit:
            return k
    return len(shape)


def blocks(sparse, row_shape, col_shape, limit=12):
    """The nonzero blocks of ``sparse`` when rows and columns are grouped by the leading axes
    of the tensors they index: [(row label, col label, dense block)], and the block size."""
    kr, kc = _split(row_shape, limit), _split(col_shape, limit)
    rows_per = int(sp.Mul(*row_shape[kr:]))
    cols_per = int(sp.Mul(*col_shape[kc:]))
    row_groups = flat_positions(row_shape[:kr]) if kr else [()]
    col_groups = flat_positions(col_shape[:kc]) if kc else [()]
    dense = sparse.to_sympy()
    found = []
    for a, rlabel in enumerate(row_groups):
        for b, clabel in enumerate(col_groups):
            block = dense[a * rows_per:(a + 1) * rows_per, b * cols_per:(b + 1) * cols_per]
            if any(v != 0 for v in block):
                found.append((rlabel, clabel, block))
    return found, (rows_per, cols_per), (len(row_groups), len(col_groups))


def structure_latex(kind, layer, sparse):
    """One sentence on how a convolution matrix is built, for sheets (kind: A, X or B)."""
    if kind == "X":
        return ("rows are the output positions, columns the weights; row (o, i) holds the input "
                "patch x[c, s·i + d·k − p] under the weights of filter o (the im2col matrix)")
    text = ("banded Toeplitz: row i holds the kernel at columns s·i + d·k − p"
            if layer.dims == 1 else "doubly block-Toeplitz (Toeplitz blocks of Toeplitz rows)")
    if kind == "B":
        return "each block is the transpose of the matching block of A, itself " + text
    return "each block is " + text
