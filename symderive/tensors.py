"""Declared tensors: a name, a shape of sizes, and the SymPy ``IndexedBase`` behind it.

Sizes are positive integers or positive-integer symbols, so shapes such as
C×H×W work the same as 2×5. Entries outside a tensor's range are zero: that
is how zero padding enters every formula, and sheets that use padding say so.
"""
import math

import sympy as sp

from .indices import indices_for
from . import display_names
from .latex import braced, dims, entry, show, tex_name


def size_symbol(name):
    """A symbolic size: a positive integer."""
    return sp.Symbol(name, integer=True, positive=True)


def numel(shape):
    return sp.Mul(*shape) if shape else sp.Integer(1)


def is_concrete(shape):
    return all(sp.sympify(s).is_Integer for s in shape)


class Tensor:
    """A leaf tensor (input, parameter or upstream gradient) with a shape.

    A rank-0 tensor is a plain real symbol.

    >>> x = Tensor('x', (2, 5))
    >>> x.rank, x.numel
    (2, 10)
    """

    is_layer = False
    symmetric = False        # a declared fact (square matrices): A_ji = A_ij
    facts = {}               # other declared facts (assumptions.TENSOR_FACTS): one_hot, labels, detached, ...

    def __init__(self, name, shape=(), latex_name=None):
        self.name = name
        # strict: a size is a number or a SymPy expression, never text to be parsed
        self.shape = tuple(sp.sympify(s, strict=True) for s in shape)
        self.latex_name = latex_name or name
        self._set_base(real=True)

    inner_of = None          # see layers.base.Layer.inner_of

    def _set_base(self, **assumptions):
        symbol = sp.Symbol(self.name, **assumptions)
        self.base = sp.IndexedBase(symbol, shape=self.shape) if self.shape else symbol

    def declare_positive(self):
        """Tell SymPy that every entry is > 0 (a declared fact): √(σ²) = σ, |σ| = σ, log(σ²) = 2 log σ.

        >>> s = Tensor('s'); s.declare_positive(); sp.sqrt(s.base ** 2)
        s
        """
        self._set_base(positive=True)

    def rename(self, name):
        """A new name for a layer built inside another (its entries' symbols follow)."""
        self.name, self.latex_name = name, name
        self._set_base(real=True)

    @property
    def tex(self):
        """The name as LaTeX (its declared ``tex:`` or the default), braced when it has a subscript:
        x_in -> {x_{\\mathrm{in}}}."""
        return braced(self.latex_name) if self.latex_name != self.name else tex_name(self.name)

    @property
    def rank(self):
        return len(self.shape)

    @property
    def numel(self):
        return numel(self.shape)

    def element(self, idx, expand=True):
        """The entry at ``idx`` (a tuple of index expressions)."""
        if not self.shape:
            return self.base
        return self.base[tuple(idx)]

    def free_indices(self, avoid=()):
        """Fresh indices for this tensor's entries, never named like the tensor itself."""
        return indices_for(self.shape, set(avoid) | {self.name})

    def leaves(self):
        return {self.name: self}

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, {self.shape})"

    def _repr_latex_(self):
        """In a notebook: the tensor's space and, for a layer, its entry, with the declared names."""
        tensors = {**self.leaves(), **(self.layer_inputs() if self.is_layer else {}), self.name: self}
        names = {n: t.latex_name for n, t in tensors.items() if t.latex_name != n}
        with display_names.declared({**dict(display_names.in_force()), **names}):
            return self._latex_of_entry()

    def _latex_of_entry(self):
        idx = self.free_indices()
        head = rf"{self.tex} \in {dims(self.shape)}"
        if not getattr(self, "is_layer", False):
            return f"${head}$"
        return rf"$\displaystyle {head}, \quad {entry(self.name, idx)} = {show(self.element(idx, expand=False))}$"


def in_range(indices, shape):
    """True when concrete ``indices`` lie inside ``shape`` (0-based)."""
    return all(0 <= int(i) < int(n) for i, n in zip(indices, shape))


def zero_outside(expr, shapes):
    """Replace entries with concrete out-of-range subscripts by 0 (zero padding).

    ``shapes`` maps an ``IndexedBase`` label name to a concrete shape.
    """
    def out_of_range(e):
        if not isinstance(e, sp.Indexed):
            return False
        shape = shapes.get(e.base.label.name)
        if shape is None or not all(a.is_Integer for a in e.indices):
            return False
        return not in_range(e.indices, shape)

    return expr.replace(out_of_range, lambda e: sp.S.Zero)


def flat_positions(shape):
    """Row-major (PyTorch) enumeration of the multi-indices of a concrete shape."""
    shape = tuple(int(s) for s in shape)
    total = math.prod(shape)
    out = []
    for flat in range(total):
        rest, idx = flat, []
        for n in reversed(shape):
            idx.append(rest % n)
            rest //= n
        out.append(tuple(reversed(idx)))
    return out
