"""Index notation back to vector and matrix notation, checked numerically.

Rules (numerator layout: entry (i, p) of a Jacobian is row i, column p):

    δ_ip a_i            → diag(a)            M_ip → M,   M_pi → Mᵀ
    a_i M_ip b_p        → diag(a) M diag(b)  a_i b_p → a bᵀ
    Σ_j M_ij v_j        → M v                a_i b_i → a ⊙ b,  f(a_i) → f(a)
    Σ_t (term in t)     → Σ_t (…), with x[t, i] read as the vector x[t]

SymPy 1.14's ``sympy.tensor.array.expressions`` converters are not used: on
these shapes they return W for W_pi (the transpose is dropped) and c for
δ_ip c_i (the diag is lost). Each form built here carries a NumPy evaluator,
and ``check`` compares it with the index expression at random sizes and
values, so a wrong rule cannot go unnoticed.
"""
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .functions import forms
from .latex import tex_name


class NotConvertible(Exception):
    """The expression has no matrix form under these rules."""


# Nodes ---------------------------------------------------------------------------------

#: How an index value is printed (``latex_in_base`` swaps in one that shifts to the sheet's base).
INDEX = [sp.latex]


def latex_in_base(node, base):
    """The node's LaTeX with index values (x[t], sum limits) printed in ``base``."""
    from .indices import for_display
    INDEX[0] = lambda e: sp.latex(sp.expand(for_display(sp.sympify(e), base) + base))
    try:
        return node.latex()
    finally:
        INDEX[0] = sp.latex


@dataclass(frozen=True)
class Node:
    def latex(self):
        raise NotImplementedError

    def value(self, env):
        raise NotImplementedError


@dataclass(frozen=True)
class Scalar(Node):
    expr: sp.Expr

    def latex(self):
        return sp.latex(self.expr)

    def value(self, env):
        return complex(self.expr.xreplace(env["scalars"])).real


@dataclass(frozen=True)
class Vector(Node):
    """A vector: a rank-1 tensor, or one row x[t] of a sequence (``fixed`` are the leading indices)."""
    name: str
    fixed: tuple = ()

    def latex(self):
        return tex_name(self.name) + ("[" + ", ".join(INDEX[0](f) for f in self.fixed) + "]" if self.fixed else "")

    def value(self, env):
        array = env["tensors"][self.name]
        return array[tuple(int(sp.sympify(f).xreplace(env["indices"])) for f in self.fixed)]


@dataclass(frozen=True)
class Matrix(Node):
    name: str
    transpose: bool = False

    def latex(self):
        return tex_name(self.name) + ("^{T}" if self.transpose else "")

    def value(self, env):
        m = env["tensors"][self.name]
        return m.T if self.transpose else m


@dataclass(frozen=True)
class Apply(Node):
    func: object
    arg: Node

    NAMES = {**forms("latex"), sp.Heaviside: "H"}
    NUMPY = {**forms("numpy"), sp.Heaviside: lambda a: (a > 0).astype(float)}

    def latex(self):
        return rf"{self.NAMES[self.func]}\left({self.arg.latex()}\right)"

    def value(self, env):
        return self.NUMPY[self.func](self.arg.value(env))


@dataclass(frozen=True)
class Power(Node):
    base: Node
    exp: int

    def latex(self):
        return rf"\left({self.base.latex()}\right)^{{\circ {self.exp}}}"

    def value(self, env):
        return self.base.value(env) ** self.exp


@dataclass(frozen=True)
class Sum(Node):
    terms: tuple

    def latex(self):
        out = self.terms[0].latex()
        for t in self.terms[1:]:
            text = t.latex()
            out += " " + text if text.startswith("-") else " + " + text
        return out

    def value(self, env):
        return sum(t.value(env) for t in self.terms)


@dataclass(frozen=True)
class Product(Node):
    """Scalar · (Hadamard product of vectors) or a chain of matrix products."""
    scalar: sp.Expr
    factors: tuple
    op: str          # "hadamard" or "matmul"

    def latex(self):
        join = r" \odot " if self.op == "hadamard" else " "
        parts = [f"\\left({f.latex()}\\right)" if isinstance(f, Sum) or (
            isinstance(f, Product) and (f.scalar != 1 or f.op != self.op)) else f.latex() for f in self.factors]
        body = join.join(parts)
        if self.scalar == 1:
            return body
        if self.scalar == -1:
            return "-" + body
        return sp.latex(self.scalar) + " " + body

    def value(self, env):
        values = [f.value(env) for f in self.factors]
        out = values[0]
        for v in values[1:]:
            out = out * v if self.op == "hadamard" else out @ v
        return complex(self.scalar.xreplace(env["scalars"])).real * out


@dataclass(frozen=True)
class Diag(Node):
    vector: Node

    def latex(self):
        return rf"\operatorname{{diag}}\left({self.vector.latex()}\right)"

    def value(self, env):
        return np.diag(self.vector.value(env))


@dataclass(frozen=True)
class Outer(Node):
    left: Node
    right: Node

    def latex(self):
        wrap = (lambda n: f"\\left({n.latex()}\\right)" if isinstance(n, (Sum, Product)) else n.latex())
        return f"{wrap(self.left)}\\, {wrap(self.right)}^{{T}}"

    def value(self, env):
        return np.outer(self.left.value(env), self.right.value(env))


@dataclass(frozen=True)
class TimeSum(Node):
    var: sp.Symbol
    lo: sp.Expr
    hi: sp.Expr
    body: Node

    def latex(self):
        return (rf"\sum_{{{sp.latex(sp.Symbol(self.var.name))}={INDEX[0](self.lo)}}}^{{{INDEX[0](self.hi)}}} "
                rf"\left({self.body.latex()}\right)")

    def value(self, env):
        lo = int(sp.sympify(self.lo).xreplace(env["scalars"]))
        hi = int(sp.sympify(self.hi).xreplace(env["scalars"]))
        total = 0
        for t in range(lo, hi + 1):
            inner = {**env, "indices": {**env["indices"], self.var: t}}
            total = total + self.body.value(inner)
        return total


# Conversion ----------------------------------------------------------------------------

def _depends(e, idx):
    return idx in e.free_symbols


def to_vector(e, i):
    """The vector whose i-th entry is ``e``."""
    if not _depends(e, i):
        return Scalar(e)
    if isinstance(e, sp.Indexed):
        if e.indices[-1] == i and not any(_depends(a, i) for a in e.indices[:-1]):
            return Vector(e.base.label.name, tuple(e.indices[:-1]))
        raise NotConvertible(f"{e}: the index {i} is not the last subscript")
    if isinstance(e, sp.Add):
        return Sum(tuple(to_vector(a, i) for a in e.args))
    if isinstance(e, sp.Mul):
        scalar = sp.Mul(*[f for f in e.args if not _depends(f, i)])
        factors = tuple(to_vector(f, i) for f in e.args if _depends(f, i))
        if len(factors) == 1 and scalar == 1:
            return factors[0]
        return Product(scalar, factors, "hadamard")
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        return Power(to_vector(e.base, i), int(e.exp))
    if isinstance(e, sp.Function) and type(e) in Apply.NAMES or isinstance(e, sp.Heaviside):
        return Apply(type(e), to_vector(e.args[0], i))
    if isinstance(e, sp.Sum) and len(e.limits) == 1:
        return _matvec(e, i)
    if isinstance(e, sp.Sum):
        # Σ_{j,r} f = Σ_r (Σ_j f) with factors free of j pulled out; try each index outermost.
        from .simplify import pull_out_of_sums
        for n, outer in enumerate(e.limits):
            rest = e.limits[:n] + e.limits[n + 1:]
            try:
                return to_vector(pull_out_of_sums(sp.Sum(sp.Sum(e.function, *rest), outer)), i)
            except NotConvertible:
                continue
    raise NotConvertible(f"no vector form for {e}")


def _matvec(e, i):
    """Σ_j M_ij v_j → M v  (M_ji → Mᵀ v)."""
    j = e.limits[0][0]
    factors = sp.Mul.make_args(e.function)
    mats = [f for f in factors if isinstance(f, sp.Indexed) and len(f.indices) == 2
            and set(f.indices) == {i, j}]
    if len(mats) != 1:
        raise NotConvertible(f"no matrix-vector form for {e}")
    m = mats[0]
    rest = sp.Mul(*[f for f in factors if f is not m])
    if _depends(rest, i):
        raise NotConvertible(f"no matrix-vector form for {e}")
    vec = to_vector(rest, j)
    return Product(sp.S.One, (Matrix(m.base.label.name, m.indices[0] == j), vec), "matmul")


def to_matrix(e, i, p):
    """The matrix whose (i, p) entry is ``e`` (numerator layout)."""
    if isinstance(e, sp.Sum):
        return _single(e, i, p)
    e = sp.expand(e, deep=False, mul=True, multinomial=False, power_exp=False, power_base=False, log=False)
    if isinstance(e, sp.Add):
        # Group the terms by the factor that carries both indices (δ_ip, M_ip or none), so that
        # a_i M_ip + b_i M_ip becomes diag(a + b) M, then factor each group's coefficient.
        groups = {}
        for term in e.args:
            key = sp.Mul(*[f for f in sp.Mul.make_args(term) if _depends(f, i) and _depends(f, p)])
            groups.setdefault(key, []).append(term / key)
        parts = [(key, sp.factor_terms(sp.Add(*rest))) for key, rest in groups.items()]
        return Sum(tuple(_single(key * rest if not isinstance(rest, sp.Add) or key == 1 else
                                 sp.Mul(key, rest, evaluate=False), i, p) for key, rest in parts))
    return _single(e, i, p)


def _single(e, i, p):
    """One term (a product) as a matrix."""
    if isinstance(e, sp.Sum) and len(e.limits) == 1:
        var, lo, hi = e.limits[0]
        if not any(_depends(b, x) for b in (lo, hi) for x in (i, p)):
            return TimeSum(var, lo, hi, to_matrix(e.function, i, p))
    factors = sp.Mul.make_args(e)
    scalar = sp.Mul(*[f for f in factors if not _depends(f, i) and not _depends(f, p)])
    rows = [f for f in factors if _depends(f, i) and not _depends(f, p)]
    cols = [f for f in factors if _depends(f, p) and not _depends(f, i)]
    both = [f for f in factors if _depends(f, i) and _depends(f, p)]
    row = to_vector(sp.Mul(*rows), i) if rows else None
    col = to_vector(sp.Mul(*cols), p) if cols else None
    if not both:
        if row is None or col is None:
            raise NotConvertible(f"{e} is constant along a direction; no matrix form")
        return _scaled(scalar, Outer(row, col))
    if len(both) == 1 and isinstance(both[0], sp.KroneckerDelta) and set(both[0].args) == {i, p}:
        vec = sp.Mul(*rows) * sp.Mul(*cols).xreplace({p: i})
        return _scaled(scalar, Diag(to_vector(vec, i)) if vec != 1 else Scalar(sp.Symbol("I")))
    if len(both) == 1 and isinstance(both[0], sp.Indexed) and set(both[0].indices) == {i, p}:
        m = both[0]
        chain = ([Diag(row)] if row else []) + [Matrix(m.base.label.name, m.indices[0] == p)] \
            + ([Diag(col)] if col else [])
        return Product(scalar, tuple(chain), "matmul") if len(chain) > 1 or scalar != 1 else chain[0]
    raise NotConvertible(f"no matrix form for {e}")


def _scaled(scalar, node):
    return node if scalar == 1 else Product(scalar, (node,), "matmul")


# Numerical check -----------------------------------------------------------------------

def check(node, index_expr, free, tensors, sizes, derived=(), trials=3, seed=0):
    """Largest |matrix form − index form| over random sizes and values.

    ``tensors``: {name: shape with size symbols}; ``sizes``: the size symbols; ``free``: the
    free indices (one for a vector, two for a matrix) in row, column order; ``derived``:
    [(name, shape, element, indices)] for intermediate layers the form names (their values
    are computed from their element formulas).
    """
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(trials):
        values = {s: int(rng.integers(2, 4)) for s in sizes}
        scalars = {s: sp.Integer(v) for s, v in values.items()}
        arrays = {name: rng.uniform(-1, 1, size=[int(sp.sympify(n).xreplace(scalars)) for n in shape])
                  for name, shape in tensors.items()}
        layer_scalars = {}
        for name, shape, element, idx in derived:
            if not shape:      # a scalar layer: its value is a scalar of the form
                layer_scalars[sp.Symbol(name, real=True)] = sp.Float(_number(element, (), (), scalars, arrays))
                continue
            dims = [int(sp.sympify(n).xreplace(scalars)) for n in shape]
            arrays[name] = np.array([_number(element, idx, pos, scalars, arrays)
                                     for pos in np.ndindex(*dims)]).reshape(dims)
        env = {"tensors": arrays, "scalars": {**scalars, **layer_scalars}, "indices": {}}
        got = np.atleast_1d(node.value(env))
        expected = np.zeros(got.shape)
        for pos in np.ndindex(got.shape):
            expected[pos] = _number(index_expr, free, pos, env["scalars"], arrays)
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


def _number(expr, idx, pos, scalars, arrays):
    """``expr`` at index values ``pos``, sizes ``scalars`` and tensor values ``arrays``."""
    from .evaluate import evaluate
    return evaluate(expr, arrays, scalars, dict(zip(idx, pos)))
