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
from dataclasses import dataclass, field

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
    locate: object = field(default=None, repr=False, compare=False)   # (rows, cols) -> triple index or -1

    @property
    def nnz(self):
        return len(self.rows)

    def transpose(self):
        mine = self.locate
        return SparseSymbolMatrix(self.shape[::-1], self.cols, self.rows, self.entries, self.source,
                                  None if mine is None else (lambda rows, cols: mine(cols, rows)))

    def canonical(self):
        """The triples sorted by (row, col): two matrices are equal iff these arrays are."""
        order = np.lexsort((self.cols, self.rows))
        return self.rows[order], self.cols[order], self.entries[order]

    def equals(self, other):
        """Exact equality (same shape, same symbol at every position)."""
        if self.shape != other.shape or self.nnz != other.nnz or self.source.name != other.source.name:
            return False
        if self._same_sequence(other):
            return True
        if self.locate is not None:
            return self._holds(other)
        if other.locate is not None:
            return other._holds(self)
        return all(np.array_equal(a, b) for a, b in zip(self.canonical(), other.canonical()))

    def _same_sequence(self, other, chunk=1 << 16):
        """The same triples in the same order (then the matrices are equal; if not, they may still
        be). A streaming comparison in cache-sized chunks, stopping at the first mismatch: B read
        off the chain rule comes in the order of A's triples, so B = Aᵀ costs one pass."""
        pairs = ((self.rows, other.rows), (self.cols, other.cols), (self.entries, other.entries))
        return all(np.array_equal(mine[start:start + chunk], theirs[start:start + chunk])
                   for start in range(0, self.nnz, chunk) for mine, theirs in pairs)

    def _holds(self, other, chunk=1 << 16):
        """Equality in O(nnz) without sorting (nnz already equal): every triple of ``other``
        sits at a distinct nonzero of ``self`` with the same entry. In chunks that stay in the
        CPU cache (0.84 s -> 0.65 s at 17.7 M); one byte per nonzero beyond the two matrices."""
        seen = np.zeros(self.nnz, dtype=bool)
        for start in range(0, other.nnz, chunk):
            rows, cols, entries = (a[start:start + chunk] for a in (other.rows, other.cols, other.entries))
            at = self.locate(rows, cols)
            if (at < 0).any() or not (np.array_equal(self.rows[at], rows) and np.array_equal(self.cols[at], cols)
                                      and np.array_equal(self.entries[at], entries)):
                return False
            seen[at] = True
        return bool(seen.all())

    def first_difference(self, other):
        """The first position, in (row, col) order, where the two differ: (row, col, mine, theirs).

        mine / theirs is the entry's symbol, None where there is no nonzero, or a tuple of symbols
        where one matrix repeats a position. None when the two are equal. Sorts both (only
        needed when ``equals`` said no)."""
        mine, theirs = self._sorted(), other._sorted()
        n = min(len(mine[0]), len(theirs[0]))
        differ = np.flatnonzero(np.any([a[:n] != b[:n] for a, b in zip(mine, theirs)], axis=0)) if n else []
        k = int(differ[0]) if len(differ) else n
        at = [(int(m[0][k]), int(m[1][k])) for m in (mine, theirs) if k < len(m[0])]
        if not at:
            return None
        row, col = min(at)
        show = [self._at(m, row, col) for m in (mine, theirs)]
        return (row, col) + tuple(show)

    def _sorted(self):
        order = np.lexsort((self.entries, self.cols, self.rows))
        return tuple(a[order].astype(np.int64) for a in (self.rows, self.cols, self.entries))

    def _at(self, triples, row, col):
        """The symbol(s) at (row, col) of sorted triples: None, one symbol, or a tuple."""
        rows, cols, entries = triples
        lo, hi = np.searchsorted(rows, [row, row + 1])
        found = entries[lo:hi][cols[lo:hi] == col]
        symbols = tuple(self.symbol(int(e)) for e in found)
        return None if not symbols else symbols[0] if len(symbols) == 1 else symbols

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
        + list(layer.padding) + list(layer.dilation) + [layer.groups]
    if not all(sp.sympify(v).is_Integer for v in numbers):
        raise ShapeError(f"the matrix of '{layer.name}' needs numeric sizes; for symbolic sizes "
                         "use its element formula")


def _axis_pairs(n_out, n_in, kernel, stride, dil, pad):
    """One spatial axis: (i, k, q) with q = s·i + d·k − p inside the input, sorted by (i, k).

    Per output position i the valid k form one contiguous range, so ``first[i]`` (index of
    i's first pair) and ``k_first[i]`` locate any (i, k) in O(1) (see ``_ConvLayout.locate``).
    """
    i, k = np.divmod(np.arange(n_out * kernel, dtype=np.int64), kernel)
    q = stride * i + dil * k - pad
    ok = (q >= 0) & (q < n_in)
    i, k, q = i[ok], k[ok], q[ok]
    counts = np.bincount(i, minlength=n_out)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k_first = np.zeros(n_out, dtype=np.int64)
    k_first[i[::-1]] = k[::-1]            # smallest k per i (the last write wins)
    return i, k, q, first, k_first, counts


class _ConvLayout:
    """Sizes of one concrete convolution and the per-axis pair tables its triples are built from.

    The triples are the product (o, c, pairs of axis 1, pairs of axis 2, …): every term of the
    forward sum exactly once, padding terms never generated, so building costs O(nonzeros).
    """
    def __init__(self, layer):
        concrete_layer(layer)
        dims = layer.dims
        self.out_spatial = [int(n) for n in layer.shape[len(layer.shape) - dims:]]
        self.in_spatial = [int(n) for n in layer.x.shape[layer.x.rank - dims:]]
        self.kernel = [int(k) for k in layer.kernel]
        self.stride, self.pad, self.dil = ([int(v) for v in vals]
                                           for vals in (layer.stride, layer.padding, layer.dilation))
        self.n_batch = int(layer.x.shape[0]) if layer.batch else 1
        self.n_out = int(layer.weight.shape[0]) if layer.channels else 1
        self.n_in = int(layer.weight.shape[1]) if layer.channels else 1       # input channels per group
        self.groups = int(layer.groups)
        self.all_in = self.n_in * self.groups
        self.out_per_group = self.n_out // self.groups
        self.axes = [_axis_pairs(*args) for args in zip(self.out_spatial, self.in_spatial, self.kernel,
                                                       self.stride, self.dil, self.pad)]
        self.shape = (self.n_batch, self.n_out, self.n_in) + tuple(len(a[0]) for a in self.axes)
        self.nnz = int(np.prod(self.shape))
        biggest = max(self.n_batch * self.n_out * int(np.prod(self.out_spatial)),
                      self.n_batch * self.all_in * int(np.prod(self.in_spatial)),
                      self.n_out * self.n_in * int(np.prod(self.kernel)))
        self.dtype = np.int32 if biggest <= np.iinfo(np.int32).max else np.int64

    def _spatial(self, which, sizes):
        """Row-major flat spatial offset of every pair combination, shaped (P1, P2, …)."""
        flat = np.zeros((), dtype=np.int64)
        for axis, n in zip(self.axes, sizes):
            flat = flat[..., None] * n + axis[which]
        return flat

    def _flat_parts(self):
        """Per triple array (rows, cols, entries): (channel part, spatial part), flat, in
        ``self.dtype``; the array is channel[:, None] + spatial[None, :], flattened."""
        lead = (1,) * len(self.axes)
        n = np.arange(self.n_batch, dtype=np.int64).reshape((-1, 1, 1) + lead)
        o = np.arange(self.n_out, dtype=np.int64).reshape((1, -1, 1) + lead)
        c = np.arange(self.n_in, dtype=np.int64).reshape((1, 1, -1) + lead)
        channel = (o // self.out_per_group) * self.n_in + c          # the input channel of (o, c) in its group
        n_os, n_is, n_k = (int(np.prod(v)) for v in (self.out_spatial, self.in_spatial, self.kernel))
        parts = [((n * self.n_out + o) * n_os, self._spatial(0, self.out_spatial)),
                 ((n * self.all_in + channel) * n_is, self._spatial(2, self.in_spatial)),
                 ((o * self.n_in + c) * n_k, self._spatial(1, self.kernel))]
        size = self.n_batch * self.n_out * self.n_in
        return [(np.broadcast_to(chan, self.shape[:3] + lead).reshape(size).astype(self.dtype),
                 spatial.reshape(-1).astype(self.dtype)) for chan, spatial in parts]

    def triples(self):
        result = []
        for chan, spatial in self._flat_parts():       # broadcast straight into the preallocated result
            out = np.empty((len(chan), len(spatial)), dtype=self.dtype)
            np.add(chan[:, None], spatial[None, :], out=out)
            result.append(out.reshape(-1))
        return tuple(result)

    def same_triples(self, rows, cols, entries, block=1 << 18):
        """Whether (rows, cols, entries) are exactly ``triples()``, in order. The triples are
        generated about ``block`` at a time into one buffer that stays in the CPU cache and compared
        as they come, stopping at the first difference: A is never stored."""
        parts = self._flat_parts()
        size, spatial_size = len(parts[0][0]), len(parts[0][1])
        theirs = (rows, cols, entries)
        if any(len(a) != size * spatial_size for a in theirs):
            return False
        step = max(1, block // max(spatial_size, 1))
        buffer = np.empty((step, spatial_size), dtype=self.dtype)
        for start in range(0, size, step):
            stop = min(start + step, size)
            out = buffer[:stop - start]
            for (chan, spatial), mine in zip(parts, theirs):
                np.add(chan[start:stop, None], spatial[None, :], out=out)
                if not np.array_equal(out.reshape(-1), mine[start * spatial_size:stop * spatial_size]):
                    return False
        return True

    def locate(self, y_flat, x_flat):
        """Index into ``triples()`` of the nonzero at (y, x), or −1 where A has none there."""
        y_flat, x_flat = np.asarray(y_flat, dtype=np.int64), np.asarray(x_flat, dtype=np.int64)
        n_os, n_is = int(np.prod(self.out_spatial)), int(np.prod(self.in_spatial))
        # as unsigned, a negative number is huge: one comparison checks both ends of a range
        ok = (y_flat.view(np.uint64) < n_os * self.n_out * self.n_batch) & \
            (x_flat.view(np.uint64) < n_is * self.all_in * self.n_batch)
        no, y_rest = np.divmod(y_flat, n_os)
        nc, x_rest = np.divmod(x_flat, n_is)
        n, o = np.divmod(no, self.n_out)
        n_x, channel = np.divmod(nc, self.all_in)
        c = channel - (o // self.out_per_group) * self.n_in
        ok &= (n == n_x) & (c.view(np.uint64) < self.n_in)
        index = (n * self.n_out + o) * self.n_in + c
        ys = np.unravel_index(y_rest, self.out_spatial)      # remainders are in range
        xs = np.unravel_index(x_rest, self.in_spatial)
        for i, q, (_, _, _, first, k_first, counts), s, d, p in zip(
                ys, xs, self.axes, self.stride, self.dil, self.pad):
            k = q - s * i + p
            if d != 1:
                k, rem = np.divmod(k, d)
                ok &= rem == 0
            pos = k - k_first[i]                  # i's valid k are k_first[i] … k_first[i] + counts[i] − 1
            ok &= pos.view(np.uint64) < counts.astype(np.uint64)[i]
            index = index * int(counts.sum()) + first[i] + pos
        return np.where(ok, index, -1)


def conv_triples(layer):
    """For every term of the forward sum: (flat y index, flat x index, flat w index).

    Built by broadcasting per-axis tables into preallocated arrays (int32 where every index
    fits): no grid over all (output, channel, kernel) combinations, no masks, no copies.
    """
    return _ConvLayout(layer).triples()


def conv_matrix(layer):
    """A with vec(y) = A · vec(x) (+ bias): entries are weights."""
    layout = _ConvLayout(layer)
    y_flat, x_flat, w_flat = layout.triples()
    shape = (int(sp.Mul(*layer.shape)), int(layer.x.numel))
    return SparseSymbolMatrix(shape, y_flat, x_flat, w_flat, layer.weight, layout.locate)


def matching_conv_matrix(layer, candidate):
    """A, when ``candidate`` (a matrix shaped like A) holds exactly A's triples in A's order, as
    generated from the forward sum and compared a block at a time (``_ConvLayout.same_triples``);
    the A returned shares the candidate's arrays. None otherwise: the two may still be equal in
    another order, which ``SparseSymbolMatrix.equals`` decides.
    """
    layout = _ConvLayout(layer)
    shape = (int(sp.Mul(*layer.shape)), int(layer.x.numel))
    if candidate.shape != shape or candidate.source.name != layer.weight.name \
            or not layout.same_triples(candidate.rows, candidate.cols, candidate.entries):
        return None
    return SparseSymbolMatrix(shape, candidate.rows, candidate.cols, candidate.entries, layer.weight, layout.locate)


def im2col_matrix(layer):
    """X with vec(y) = X · vec(w) (+ bias): entries are inputs; X = ∂vec(y)/∂vec(w)."""
    y_flat, x_flat, w_flat = conv_triples(layer)
    shape = (int(sp.Mul(*layer.shape)), int(layer.weight.numel))
    return SparseSymbolMatrix(shape, y_flat, w_flat, x_flat, layer.x)



def symbolic_hyperparameters(dims):
    """(spatial sizes, kernel, stride, padding, dilation) as symbols, one per axis: L (1-D) or H, W,
    K, S, P (may be 0), D, with suffixes _1, _2 in 2-D."""
    from .tensors import size_symbol
    axes = [""] if dims == 1 else ["_1", "_2"]
    spatial = tuple(size_symbol(n) for n in (["L"] if dims == 1 else ["H", "W"]))
    kernel, stride, dilation = (tuple(size_symbol(letter + a) for a in axes) for letter in "KSD")
    padding = tuple(sp.Symbol("P" + a, integer=True, nonnegative=True) for a in axes)
    return spatial, kernel, stride, padding, dilation


def symbolic_twin(layer):
    """The same convolution with every size and hyperparameter a symbol, for proofs.

    Channels C (in) and O (out) (per group: G·C and G·O in all, G the layer's groups), batch N when
    the layer has one, lengths L (1-D) or H, W (2-D), kernel K (or KH, KW), stride S, padding P,
    dilation D (per axis in 2-D).
    """
    from .layers import Conv
    from .tensors import size_symbol
    spatial, kernel, stride, padding, dilation = symbolic_hyperparameters(layer.dims)
    if layer.channels:
        # with groups G (kept a number): C input and O output channels per group
        C, O, G = size_symbol("C"), size_symbol("O"), layer.groups
        lead = (size_symbol("N"),) if layer.batch else ()
        x = Tensor(layer.x.name, lead + (G * C,) + spatial)
        w = Tensor(layer.weight.name, (G * O, C) + kernel)
    else:
        x, w = Tensor(layer.x.name, spatial), Tensor(layer.weight.name, kernel)
    return Conv(layer.name, x, w, None, stride, padding, dilation, layer.dims, groups=layer.groups)


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
    of the tensors they index: [(row label, col label, dense block, (first row, first column))], the
    block size and the number of blocks down and across."""
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
                found.append((rlabel, clabel, block, (a * rows_per, b * cols_per)))
    return found, (rows_per, cols_per), (len(row_groups), len(col_groups))


def structure_latex(kind, layer, sparse):
    """One sentence on how a convolution matrix is built, for sheets (kind: A, X or B)."""
    if kind == "X":
        return ("rows are the output positions, columns the weights; row (o, i) holds the input "
                "patch x[c, s·i + d·k − p] under the weights of filter o (the im2col matrix)"
                + ("; with a batch axis the samples' im2col matrices are stacked one below the other"
                   if layer.batch else ""))
    text = ("banded Toeplitz: row i holds the kernel at columns s·i + d·k − p"
            if layer.dims == 1 else "doubly block-Toeplitz (Toeplitz blocks of Toeplitz rows)")
    text += _batch_and_groups(layer)
    if kind == "B":
        return "each block is the transpose of the matching block of A, itself " + text
    return "each block is " + text


def _batch_and_groups(layer):
    """What a batch axis and groups do to the matrix, for sheets."""
    notes = []
    if layer.groups != 1:
        notes.append(f"with groups {layer.groups} the (output channel, input channel) blocks outside a group are "
                     "zero: block-diagonal over the groups")
    if layer.batch:
        notes.append("with a batch axis the matrix is block-diagonal over the samples, the same per-sample "
                     "matrix repeated N times (samples never mix)")
    return "; " + "; ".join(notes) if notes else ""
