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
from dataclasses import dataclass, fields, replace

import numpy as np
import sympy as sp
from sympy.core.cache import cacheit

from .functions import forms
from .matrix_functions import WHOLE_MATRIX, inverted_arrays, inverted_names
from .latex import tex_name


class NotConvertible(Exception):
    """The expression has no matrix form under these rules.

    Raised as ``NotConvertible(template, *parts)`` and formatted only when shown: the search for
    a form raises and catches it hundreds of times per question, and printing the expressions into
    messages that were then dropped was half of cq-3.1-K's profile (issue 17).

    >>> str(NotConvertible("no vector form for {}", "x + y"))
    'no vector form for x + y'
    """

    def __str__(self):
        template, *parts = self.args
        return template.format(*parts)


# Nodes ---------------------------------------------------------------------------------

#: How an index value is printed (``latex_in_base`` swaps in one that shifts to the sheet's base).
INDEX = [sp.latex]
#: The sheet's index base while ``latex_in_base`` prints (for the entries a Total writes).
BASE = [0]


def latex_in_base(node, base):
    """The node's LaTeX with index values (x[t], sum limits) printed in ``base``."""
    from .indices import for_display
    INDEX[0] = lambda e: sp.latex(sp.expand(for_display(sp.sympify(e), base) + base))
    BASE[0] = base
    try:
        return node.latex()
    finally:
        INDEX[0] = sp.latex
        BASE[0] = 0


@dataclass(frozen=True)
class Node:
    def latex(self):
        raise NotImplementedError

    def value(self, env):
        raise NotImplementedError


@dataclass(frozen=True)
class Entries(Node):
    """A course form with no matrix notation, given by its entries: an index formula over ``free``
    (batch norm of N × C, written per channel as CS231n does). It is checked like a matrix form, never
    printed as one."""
    expr: sp.Expr
    free: tuple

    def latex(self):
        raise NotConvertible("an index formula, not a matrix form")

    def value(self, env):
        from .evaluate import evaluate_grid
        dims = [int((i.upper - i.lower + 1).xreplace(env["scalars"])) for i in self.free]
        return evaluate_grid(self.expr, self.free, dims, env["tensors"], env["scalars"])


def scalar_value(expr, env):
    """A scalar of a form: numbers, sizes, scalar tensors and layers, det X and log det X."""
    if sp.sympify(expr).has(*WHOLE_MATRIX):
        from .evaluate import evaluate
        return evaluate(expr, env["tensors"], env["scalars"], env["indices"])
    return complex(sp.sympify(expr).xreplace(env["scalars"])).real


@dataclass(frozen=True)
class Scalar(Node):
    expr: sp.Expr

    def latex(self):
        return _scalar_latex(self.expr)

    def value(self, env):
        return scalar_value(self.expr, env)


def _scalar_latex(expr):
    """A scalar with declared display names (λ for ``lam: {tex: \\lambda}``)."""
    from .latex import show
    return show(expr) if sp.sympify(expr).free_symbols else sp.latex(expr)


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
        if self.name.endswith("^{-1}"):                                  # (X⁻¹)ᵀ = X⁻ᵀ
            return tex_name(self.name[:-len("^{-1}")]) + ("^{-T}" if self.transpose else "^{-1}")
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
        if self.func is sp.Heaviside:                  # the mask 1{z > 0}, entry by entry
            from .latex import indicator
            return indicator(self.arg.latex())
        return rf"{self.NAMES[self.func]}\left({self.arg.latex()}\right)"

    def value(self, env):
        return self.NUMPY[self.func](self.arg.value(env))


@dataclass(frozen=True)
class Power(Node):
    base: Node
    exp: int

    def latex(self):
        if isinstance(self.base, Apply) and self.exp > 0:             # tanh²(Xw), element-wise
            # one brace group, so that a line break never falls between the function and its argument
            return rf"{{{Apply.NAMES[self.base.func]}^{{{self.exp}}}\left({self.base.arg.latex()}\right)}}"
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
            out += " - " + text[1:].lstrip() if text.startswith("-") else " + " + text
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
        scalar = sp.sympify(self.scalar)
        if scalar.is_Add:                 # −(γ t + r − v) x, never −γ t − r + v x
            if scalar.could_extract_minus_sign():
                return rf"-\left({_scalar_latex(-scalar)}\right) " + body
            return rf"\left({_scalar_latex(scalar)}\right) " + body
        return _scalar_latex(self.scalar) + " " + body

    def value(self, env):
        values = [f.value(env) for f in self.factors]
        out = values[0]
        for v in values[1:]:
            out = out * v if self.op == "hadamard" else out @ v
        return scalar_value(self.scalar, env) * out


@dataclass(frozen=True)
class OverNorm(Node):
    """A vector divided by a power of the 2-norm of a vector: x / ‖v‖ (``power`` 1), x / ‖v‖³."""
    vector: Node
    of: Node
    power: int

    def latex(self):
        norm = rf"\lVert {self.of.latex()} \rVert_2" + (f"^{{{self.power}}}" if self.power != 1 else "")
        return rf"\frac{{{self.vector.latex()}}}{{{norm}}}"

    def value(self, env):
        return self.vector.value(env) / np.linalg.norm(self.of.value(env)) ** self.power


def _norm_power(f):
    """(v, k) when ``f`` is ‖v‖^(−k) = (Σ_j v_j²)^(−k/2) with k a positive integer, else None."""
    if not (isinstance(f, sp.Pow) and isinstance(f.base, sp.Sum) and len(f.base.limits) == 1
            and f.exp.is_Rational and f.exp < 0 and (2 * f.exp).is_Integer):
        return None
    body, (j, _, _) = f.base.function, f.base.limits[0]
    if not (isinstance(body, sp.Pow) and body.exp == 2):
        return None
    try:
        return to_vector(body.base, j), int(-2 * f.exp)
    except NotConvertible:
        return None


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
class RowSum(Node):
    """The vector of a matrix's row sums: rowsum(P ⊙ dP), FlashAttention's D."""
    matrix: Node

    def latex(self):
        return rf"\operatorname{{rowsum}}\left({self.matrix.latex()}\right)"

    def value(self, env):
        return np.sum(self.matrix.value(env), axis=1)


def row_sum(e, i):
    """Σ_k f(i, k) as rowsum(F) with F the matrix of f (rows i, columns k); NotConvertible otherwise.
    Only where an ask asks for it (a backward pass's D): elsewhere such sums keep the forms they had.

    >>> P, Q, i, k = sp.IndexedBase('P'), sp.IndexedBase('Q'), sp.Symbol('i'), sp.Symbol('k')
    >>> print(row_sum(sp.Sum(P[i, k] * Q[i, k], (k, 0, 3)), i).latex())
    \\operatorname{rowsum}\\left(P \\odot Q\\right)
    """
    if not (isinstance(e, sp.Sum) and len(e.limits) == 1):
        raise NotConvertible(f"{e} is not one sum")
    k = e.limits[0][0]
    if any(_depends(b, i) for b in e.limits[0][1:]):
        raise NotConvertible("a sum whose bounds depend on the free index")
    return RowSum(to_matrix(e.function, i, k))


@dataclass(frozen=True)
class Differential(Node):
    """dX, the differential of a matrix: its values are the tensor ``name`` (random, in checks)."""
    name: str
    tex: str

    def latex(self):
        return rf"\mathrm{{d}}{self.tex}"

    def value(self, env):
        return env["tensors"][self.name]


def differential_form(e, i, j, p, q, dx):
    """The differential dY = Σ_pq (∂Y_ij/∂X_pq) dX_pq of a matrix Y by a matrix X as a product
    c L (dX) R, from an element formula c·L_ip·R_qj (Matrix Cookbook eq. 36: dX⁻¹ = −X⁻¹ (dX) X⁻¹;
    δ_ip B_qj gives (dX) B). L_pi gives Lᵀ; a factor in both index pairs has no such form.

    >>> Y = sp.IndexedBase(sp.Symbol('Y', real=True)); i, j, p, q = sp.symbols('i j p q', integer=True)
    >>> print(differential_form(-Y[i, p] * Y[q, j], i, j, p, q, Differential('dX', 'X')).latex())
    -Y \\mathrm{d}X Y
    """
    coeff, left, right = sp.S.One, sp.S.One, sp.S.One
    for factor in sp.Mul.make_args(e):
        on_left = _depends(factor, i) or _depends(factor, p)
        on_right = _depends(factor, q) or _depends(factor, j)
        if on_left and on_right:
            raise NotConvertible("{} joins the two index pairs", factor)
        if on_left:
            left *= factor
        elif on_right:
            right *= factor
        else:
            coeff *= factor
    if coeff.has(sp.Indexed, sp.Sum):
        raise NotConvertible("{} is not a scalar of the form", coeff)
    chain = [node for node in (_chain_factor(left, i, p), dx, _chain_factor(right, q, j)) if node is not None]
    return Product(coeff, tuple(chain), "matmul")


def _chain_factor(e, row, col):
    """The matrix in (row, col) of one side of a differential; None for the identity δ_row,col."""
    if e == 1:
        raise NotConvertible("a side of the differential is constant")
    if isinstance(e, sp.KroneckerDelta) and set(e.args) == {row, col}:
        return None
    return to_matrix(e, row, col)


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


@dataclass(frozen=True)
class Total(Node):
    """The sum of a vector's entries, a scalar beside vectors as courses write it: Σ_n g_n, Σ_n g_n x̂_n
    (batch norm's backward pass). ``body`` is the entry summed (g_n x̂_n): printed with its index, since
    Σ_n g of the vector g reads as N g to a grader (and to the checker)."""
    var: sp.Symbol
    lo: sp.Expr
    hi: sp.Expr
    vector: Node
    body: sp.Expr = None

    def latex(self):
        if self.body is not None:
            from .latex import show
            return show(sp.Sum(self.body, (self.var, self.lo, self.hi)), BASE[0])
        inner = self.vector.latex()
        if isinstance(self.vector, (Sum, Product)):
            inner = rf"\left({inner}\right)"
        return (rf"\sum_{{{sp.latex(sp.Symbol(self.var.name))}={INDEX[0](self.lo)}}}^{{{INDEX[0](self.hi)}}} "
                f"{inner}")

    def value(self, env):
        return float(np.sum(self.vector.value(env)))


#: Whether scalar sums Σ_n f(n) beside vectors become Total nodes: only in the forms of standardized layers
#: (batch norm), where courses write them; elsewhere such a form (an attention gradient) is left as it was,
#: since the checker does not read every form with Totals yet (set by asks/matrix_view.course_form).
TOTALS = [False]


def _total(e):
    """c · Σ_n f(n) (no other free index) as c times a Total node, or None."""
    if not TOTALS[0]:
        return None
    coeff, rest = sp.sympify(e).as_coeff_Mul()
    factors = sp.Mul.make_args(rest)
    sums = [f for f in factors if isinstance(f, sp.Sum)]
    if len(sums) != 1 or len(sums[0].limits) != 1 or any(f.has(sp.Indexed) for f in factors if f is not sums[0]):
        return None
    (var, lo, hi), = sums[0].limits
    try:
        node = Total(var, lo, hi, to_vector(sums[0].function, var), sums[0].function)
    except NotConvertible:
        return None
    scalar = coeff * sp.Mul(*[f for f in factors if f is not sums[0]])
    return node if scalar == 1 else Product(scalar, (node,), "hadamard")


# Conversion ----------------------------------------------------------------------------

#: Conversion steps one form may take. Sums over several indices are tried with each index
#: outermost, which multiplies: a convolution's gradient (five sums, no form) took 40 s before
#: this bound; the forms found for the shipped problems take fewer than twenty.
MAX_STEPS = 400
_STEPS = [None]        # steps left in the conversion under way (None: none is)


def _bounded(convert):
    """Count ``convert``'s calls against MAX_STEPS from the outermost one: past it, no form."""
    def counted(*args):
        outermost = _STEPS[0] is None
        if outermost:
            _STEPS[0] = MAX_STEPS
        try:
            _STEPS[0] -= 1
            if _STEPS[0] < 0:
                raise NotConvertible("the search for a matrix form took too many steps")
            return convert(*args)
        finally:
            if outermost:
                _STEPS[0] = None
    counted.__name__, counted.__doc__ = convert.__name__, convert.__doc__
    return counted

def _depends(e, idx):
    return idx in _free_symbols(e)


@cacheit
def _free_symbols(e):
    """Memoized: the search below asks the same large sums for their symbols many times."""
    return e.free_symbols


@_bounded
def to_vector(e, i):
    """The vector whose i-th entry is ``e``."""
    if not _depends(e, i):
        total = _total(e) if e.has(sp.Sum) and e.has(sp.Indexed) else None
        return total if total is not None else Scalar(e)
    if isinstance(e, sp.Indexed):
        if e.indices[-1] == i and not any(_depends(a, i) for a in e.indices[:-1]):
            return Vector(e.base.label.name, tuple(e.indices[:-1]))
        raise NotConvertible("{}: the index {} is not the last subscript", e, i)
    if isinstance(e, sp.Add):
        return Sum(tuple(to_vector(a, i) for a in e.args))
    if isinstance(e, sp.Mul):
        norms = [(f, _norm_power(f)) for f in e.args if not _depends(f, i)]
        norms = [(f, found) for f, found in norms if found is not None]
        if len(norms) == 1:                              # (x_p − a_p)/√(Σ_j (x_j − a_j)²) → (x − a)/‖x − a‖
            factor, (of, power) = norms[0]
            return OverNorm(to_vector(e / factor, i), of, power)
        scalar = sp.Mul(*[f for f in e.args if not _depends(f, i)])
        totals = []
        if scalar.has(sp.Indexed):       # Σ_n g_n x̂_n beside x̂_p: a Total; any other entry has no form
            totals = [f for f in e.args if not _depends(f, i) and isinstance(f, sp.Sum) and _total(f) is not None]
            scalar = sp.Mul(*[f for f in e.args if not _depends(f, i) and f not in totals])
            if scalar.has(sp.Indexed):
                raise NotConvertible("{} is not a scalar of the form", scalar)
        factors = tuple(to_vector(f, i) for f in e.args if _depends(f, i)) + tuple(_total(f) for f in totals)
        if len(factors) == 1 and scalar == 1:
            return factors[0]
        if len(factors) == 1 and isinstance(factors[0], Product) and scalar.is_number:   # −Xᵀy, not −(Xᵀy)
            return Product(scalar * factors[0].scalar, factors[0].factors, factors[0].op)
        return Product(scalar, factors, "hadamard")
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        return Power(to_vector(e.base, i), int(e.exp))
    if isinstance(e, sp.Function) and type(e) in Apply.NAMES or isinstance(e, sp.Heaviside):
        return Apply(type(e), to_vector(e.args[0], i))
    if isinstance(e, sp.Sum):
        return _sum_vector(e.function, e.limits, i)
    raise NotConvertible("no vector form for {}", e)


def _sum_vector(body, limits, i):
    """Σ_limits body as a vector over i: a matrix-vector product Σ_j M_ij v_j, or a sum over
    samples Σ_n (vector in n), trying each summation index outermost.

    The inner sums are built here, never by ``sp.Sum(sp.Sum(...), outer)``: SymPy merges that
    back into one sum over every index, and converting it again recursed without end (a
    quadratic form summed over samples failed with "too deeply nested").
    """
    from .simplify import pull_out_of_sums
    if any(_depends(b, i) for _, lo, hi in limits for b in (lo, hi)):
        raise NotConvertible("a sum whose bounds depend on the free index")
    for pull in (_factors_out, pull_out_of_sums):       # first without expanding the body
        for attempt in (_matvec, _sample_sum):
            for n, (var, lo, hi) in enumerate(limits):
                rest = tuple(limits[:n]) + tuple(limits[n + 1:])
                inner = pull(sp.Sum(body, *rest)) if rest else body
                try:
                    return attempt(inner, var, lo, hi, i)
                except NotConvertible:
                    continue
    for n, outer in enumerate(limits):                   # Σ (a + b) = Σ a + Σ b, each on its own
        split = pull_out_of_sums(sp.Sum(body, *(tuple(limits[:n]) + tuple(limits[n + 1:]) + (outer,))))
        if not isinstance(split, sp.Sum):
            try:
                return to_vector(split, i)
            except NotConvertible:
                continue
    raise NotConvertible("no vector form for the sum of {}", body)


def _factors_out(e):
    """Σ_j a·f(j) = a·Σ_j f(j) for the factors a of a sum's body that are free of its indices."""
    variables = {limit[0] for limit in e.limits}
    outside = [f for f in sp.Mul.make_args(e.function) if not variables & f.free_symbols]
    inside = [f for f in sp.Mul.make_args(e.function) if variables & f.free_symbols]
    return sp.Mul(*outside) * sp.Sum(sp.Mul(*inside), *e.limits)


def _sample_sum(body, var, lo, hi, i):
    """Σ_n f(n)_i → Σ_n (vector in n): x[n, i] is read as the vector x[n]."""
    return TimeSum(var, lo, hi, to_vector(body, i))


def matrix_factor(f, row, col):
    """(c, node): c times the matrix ``node`` is the matrix whose (row, col) entry is ``f``:
    M_rc → M, M_cr → Mᵀ, and sums of such entries with constant coefficients
    (−B_kp − B_pk → −(B + Bᵀ))."""
    common, f = sp.factor_terms(f).as_coeff_Mul()
    terms = []
    for term in sp.Add.make_args(f):
        if term.has(sp.Sum):
            node = to_matrix(term, row, col)            # Σ_d X_nd W_dq → X W, inside a longer product
            if not isinstance(node, Product) or node.op != "matmul":
                # a sum of products inside a product (QᵀK + KᵀQ) is left to the caller to split:
                # students' checking reads the split form QᵀK hp + KᵀQ hp faster (9.5 s, not 15.7 s)
                raise NotConvertible("{} is not one matrix product", term)
            terms.append(node)
            continue
        coeff, entries = sp.S.One, []
        for factor in sp.Mul.make_args(term):
            if isinstance(factor, sp.Indexed) and len(factor.indices) == 2 and set(factor.indices) == {row, col}:
                entries.append(factor)
            elif _depends(factor, row) or _depends(factor, col):
                raise NotConvertible("{} is not a matrix entry in ({}, {})", f, row, col)
            else:
                coeff *= factor
        if len(entries) != 1:
            raise NotConvertible("{} is not a matrix entry in ({}, {})", f, row, col)
        m = entries[0]
        node = Matrix(m.base.label.name, m.indices[0] == col)
        terms.append(node if coeff == 1 else Product(coeff, (node,), "matmul"))
    return common, terms[0] if len(terms) == 1 else Sum(tuple(terms))


def _matvec(body, j, lo, hi, i):
    """Σ_j M_ij v_j → M v  (M_ji → Mᵀ v, (M + Nᵀ)_ij → (M + Nᵀ) v)."""
    factors = sp.Mul.make_args(body)
    mats = [f for f in factors if _depends(f, i) and _depends(f, j)]
    if len(mats) != 1:
        raise NotConvertible("no matrix-vector form for Σ_{} {}", j, body)
    coeff, matrix = matrix_factor(mats[0], i, j)
    rest = sp.Mul(*[f for f in factors if f is not mats[0]])
    if _depends(rest, i) or not _depends(rest, j):       # Σ_j M_ij alone is M·1: no form
        raise NotConvertible("no matrix-vector form for Σ_{} {}", j, body)
    scalar = sp.Mul(*[f for f in sp.Mul.make_args(rest) if not _depends(f, j)])
    vector = to_vector(rest / scalar, j)
    return Product(coeff * scalar, (matrix, vector), "matmul")


@_bounded
def to_matrix(e, i, p):
    """The matrix whose (i, p) entry is ``e`` (numerator layout)."""
    if isinstance(e, sp.Sum):
        return _single(e, i, p)
    if isinstance(e, sp.Mul):
        try:
            return _single(e, i, p)         # (x_i − μ_i)(x_p − μ_p) is (x − μ)(x − μ)ᵀ: do not expand it first
        except NotConvertible:
            pass
    e = sp.expand(e, deep=False, mul=True, multinomial=False, power_exp=False, power_base=False, log=False)
    if isinstance(e, sp.Add):
        # Group the terms by the factor that carries both indices (δ_ip, M_ip or none), so that
        # a_i M_ip + b_i M_ip becomes diag(a + b) M, then factor each group's coefficient.
        groups = {}
        for term in e.args:
            key = sp.Mul(*[f for f in sp.Mul.make_args(term) if _depends(f, i) and _depends(f, p)])
            groups.setdefault(key, []).append(term / key)
        parts = [(key, sp.factor_terms(sp.Add(*rest))) for key, rest in groups.items()]
        try:
            return Sum(tuple(_single(key * rest if not isinstance(rest, sp.Add) or key == 1 else
                                     sp.Mul(key, rest, evaluate=False), i, p) for key, rest in parts))
        except NotConvertible:
            # outer products that share no factor (BPTT's δ^{a_1} h_0ᵀ + δ^{a_2} h_1ᵀ): one term each
            return Sum(tuple(_single(term, i, p) for term in e.args))
    return _single(e, i, p)


def _single(e, i, p):
    """One term (a product) as a matrix."""
    if isinstance(e, sp.Sum):
        return _sum_matrix(e.function, e.limits, i, p)
    factors = sp.Mul.make_args(e)
    scalar = sp.Mul(*[f for f in factors if not _depends(f, i) and not _depends(f, p)])
    rows = [f for f in factors if _depends(f, i) and not _depends(f, p)]
    cols = [f for f in factors if _depends(f, p) and not _depends(f, i)]
    both = [f for f in factors if _depends(f, i) and _depends(f, p)]
    row = to_vector(sp.Mul(*rows), i) if rows else None
    col = to_vector(sp.Mul(*cols), p) if cols else None
    if not both:
        if row is None or col is None:
            raise NotConvertible("{} is constant along a direction; no matrix form", e)
        return _scaled(scalar, Outer(row, col))
    if len(both) == 1 and isinstance(both[0], sp.KroneckerDelta) and set(both[0].args) == {i, p}:
        vec = sp.Mul(*rows) * sp.Mul(*cols).xreplace({p: i})
        return _scaled(scalar, Diag(to_vector(vec, i)) if vec != 1 else Scalar(sp.Symbol("I")))
    if len(both) == 1 and isinstance(both[0], sp.Indexed) and set(both[0].indices) == {i, p}:
        m = both[0]
        chain = ([Diag(row)] if row else []) + [Matrix(m.base.label.name, m.indices[0] == p)] \
            + ([Diag(col)] if col else [])
        return Product(scalar, tuple(chain), "matmul") if len(chain) > 1 or scalar != 1 else chain[0]
    if len(both) == 1 and isinstance(both[0], sp.Sum):
        inner = to_matrix(both[0], i, p)
        if isinstance(inner, Product) and inner.op == "matmul":
            scalar, inner_chain = scalar * inner.scalar, list(inner.factors)
        else:
            inner_chain = [inner]
        chain = ([Diag(row)] if row else []) + inner_chain + ([Diag(col)] if col else [])
        return Product(scalar, tuple(chain), "matmul") if len(chain) > 1 or scalar != 1 else chain[0]
    if not rows and not cols:                # (1 + log A_ip) B_ip → (1 + log(A)) ⊙ B
        masked = any(isinstance(f, sp.Heaviside) for f in both)     # ((P − Y) W₂ᵀ) ⊙ 1{Z > 0}: a product too
        factors = tuple(to_matrix(f, i, p) if masked and isinstance(f, sp.Sum) else _entrywise(f, i, p)
                        for f in both)
        return Product(scalar, factors, "hadamard") if len(factors) > 1 or scalar != 1 else factors[0]
    raise NotConvertible("no matrix form for {}", e)


def _entrywise(e, i, p):
    """The matrix whose (i, p) entry is ``e``, a function of entries M_ip (or M_pi) only, applied
    entry by entry: log(A_ip) → log(A), A_ip² → A^{∘2}; a constant stands for every entry."""
    if not (_depends(e, i) or _depends(e, p)):
        if e.has(sp.Indexed, sp.Sum):
            raise NotConvertible("{} is not a constant of an entrywise form", e)
        return Scalar(e)
    if isinstance(e, sp.Indexed) and len(e.indices) == 2 and set(e.indices) == {i, p}:
        return Matrix(e.base.label.name, e.indices[0] == p)
    if isinstance(e, sp.Add):
        return Sum(tuple(_entrywise(a, i, p) for a in e.args))
    if isinstance(e, sp.Mul):
        scalar = sp.Mul(*[f for f in e.args if not (_depends(f, i) or _depends(f, p))])
        if scalar.has(sp.Indexed, sp.Sum):
            raise NotConvertible("{} is not a scalar of the form", scalar)
        factors = tuple(_entrywise(f, i, p) for f in e.args if _depends(f, i) or _depends(f, p))
        return Product(scalar, factors, "hadamard") if len(factors) > 1 or scalar != 1 else factors[0]
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        return Power(_entrywise(e.base, i, p), int(e.exp))
    if isinstance(e, sp.Function) and type(e) in Apply.NAMES and len(e.args) == 1 or isinstance(e, sp.Heaviside):
        return Apply(type(e), _entrywise(e.args[0], i, p))          # 1{Z > 0}: H(z, 0) has two arguments
    raise NotConvertible("no entrywise matrix form for {}", e)


def _sum_matrix(body, limits, i, p):
    """Σ_limits body as a matrix over (i, p): a matrix product Σ_k L_ik R_kp → L R (Σ_n X_ni Y_np
    → XᵀY, a sum over samples as a product with the data matrix), else a sum of matrices
    Σ_t (matrix in t) (how courses write RNN gradients); each summation index is tried outermost."""
    from .simplify import pull_out_of_sums
    if any(_depends(b, x) for _, lo, hi in limits for b in (lo, hi) for x in (i, p)):
        raise NotConvertible("a sum whose bounds depend on a free index")
    for pull in (_factors_out, pull_out_of_sums):
        for attempt in (_matmul, _sample_sum_matrix):
            for n, (var, lo, hi) in enumerate(limits):
                rest = tuple(limits[:n]) + tuple(limits[n + 1:])
                inner = pull(sp.Sum(body, *rest)) if rest else body
                try:
                    return attempt(inner, var, lo, hi, i, p)
                except NotConvertible:
                    continue
    split = pull_out_of_sums(sp.Sum(body, *limits))
    if not isinstance(split, sp.Sum):
        return to_matrix(split, i, p)
    raise NotConvertible("no matrix form for the sum of {}", body)


def _sample_sum_matrix(body, var, lo, hi, i, p):
    return TimeSum(var, lo, hi, to_matrix(body, i, p))


def _matmul(body, k, lo, hi, i, p):
    """Σ_k a_i L_ik c_k R_kp b_p → diag(a) L diag(c) R diag(b), with L and R matrices or sums of
    them (Σ_k (B_ki + B_ik) X_kp → (Bᵀ + B) X)."""
    factors = sp.Mul.make_args(body)
    def on(f, *indices):
        return all(_depends(f, x) for x in indices) and not any(
            _depends(f, x) for x in {i, p, k} - set(indices))
    left = [f for f in factors if on(f, i, k)]
    right = [f for f in factors if on(f, k, p)]
    rows, middle, cols = ([f for f in factors if on(f, x)] for x in (i, k, p))
    scalar = [f for f in factors if not any(_depends(f, x) for x in (i, p, k))]
    if len(left) != 1 or len(right) != 1 or len(factors) != len(left + right + rows + middle + cols + scalar):
        raise NotConvertible("no matrix product for Σ_{} {}", k, body)
    c1, lmat = matrix_factor(left[0], i, k)
    c2, rmat = matrix_factor(right[0], k, p)
    chain = ([Diag(to_vector(sp.Mul(*rows), i))] if rows else []) + [lmat] \
        + ([Diag(to_vector(sp.Mul(*middle), k))] if middle else []) + [rmat] \
        + ([Diag(to_vector(sp.Mul(*cols), p))] if cols else [])
    return Product(c1 * c2 * sp.Mul(*scalar), tuple(chain), "matmul")


def _scaled(scalar, node):
    return node if scalar == 1 else Product(scalar, (node,), "matmul")


# Numerical check -----------------------------------------------------------------------

def untransposed(node, symmetric):
    """``node`` with Aᵀ written A for each matrix A declared symmetric."""
    if not symmetric:
        return node
    if isinstance(node, Matrix):
        return Matrix(node.name) if node.name in symmetric else node
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            changes[f.name] = untransposed(value, symmetric)
        elif isinstance(value, tuple) and any(isinstance(v, Node) for v in value):
            changes[f.name] = tuple(untransposed(v, symmetric) if isinstance(v, Node) else v for v in value)
    return replace(node, **changes) if changes else node


def check(node, index_expr, free, tensors, sizes, derived=(), trials=3, seed=0, symmetric=(), classes=None):
    """Largest |matrix form − index form| over random sizes and values.

    ``tensors``: {name: shape with size symbols}; ``sizes``: the size symbols; ``free``: the
    free indices (one for a vector, two for a matrix) in row, column order; ``derived``:
    [(name, shape, element, indices)] for intermediate layers the form names (their values
    are computed from their element formulas); ``classes``: {name: number of classes} for the
    tensors that hold class indices (drawn as whole numbers 0..C−1).
    """
    from .evaluate import evaluate_grid
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(trials):
        values = {s: int(rng.integers(2, 4)) for s in sizes}
        scalars = {s: sp.Integer(v) for s, v in values.items()}
        arrays = {name: rng.uniform(-1, 1, size=[int(sp.sympify(n).xreplace(scalars)) for n in shape])
                  for name, shape in tensors.items()}
        for name in set(symmetric) & set(arrays):                   # declared symmetric
            arrays[name] = (arrays[name] + arrays[name].T) / 2
        for name in inverted_names(index_expr) & set(arrays):     # invertible, with det > 0
            arrays[name] = arrays[name] + (len(arrays[name]) + 1) * np.eye(len(arrays[name]))
        everything = sp.Add(sp.sympify(index_expr), *[sp.sympify(d[2]) for d in derived])   # and the layers' (β)
        labels = {e.base.label for e in everything.atoms(sp.Indexed)}
        for leaf in sorted(everything.free_symbols - labels - set(scalars), key=str):   # scalar tensors (λ), in
            # a fixed order: a set's order follows the hash seed, and each draws from the one rng
            if isinstance(leaf, sp.Symbol) and leaf.is_real and not leaf.is_integer and \
                    leaf.name not in {d[0] for d in derived}:
                scalars[leaf] = sp.Float(rng.uniform(0.5, 1.5))
        for name, number in (classes or {}).items():             # class indices 0..C−1
            count = int(sp.sympify(number).xreplace(scalars))
            if name in arrays:
                arrays[name] = rng.integers(0, count, size=arrays[name].shape).astype(float)
            else:
                scalars[sp.Symbol(name, real=True)] = sp.Integer(int(rng.integers(0, count)))
        layer_scalars = {}
        for name, shape, element, idx in derived:       # each may read the ones before it (x̂ reads μ, σ²)
            known = {**scalars, **layer_scalars}
            if not shape:      # a scalar layer: its value is a scalar of the form
                layer_scalars[sp.Symbol(name, real=True)] = sp.Float(_number(element, (), (), known, arrays))
                continue
            dims = [int(sp.sympify(n).xreplace(scalars)) for n in shape]
            arrays[name] = evaluate_grid(element, idx, dims, arrays, known)     # one walk per layer
        arrays.update(inverted_arrays(index_expr, arrays))
        env = {"tensors": arrays, "scalars": {**scalars, **layer_scalars}, "indices": {}}
        got = np.atleast_1d(node.value(env))
        expected = evaluate_grid(index_expr, free[:got.ndim], got.shape[:len(free)], arrays, env["scalars"])
        expected = np.broadcast_to(expected.reshape(expected.shape + (1,) * (got.ndim - expected.ndim)), got.shape)
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


def _number(expr, idx, pos, scalars, arrays):
    """``expr`` at index values ``pos``, sizes ``scalars`` and tensor values ``arrays``."""
    from .evaluate import evaluate
    return evaluate(expr, arrays, scalars, dict(zip(idx, pos)))


# Course layout -------------------------------------------------------------------------

def _negative(node):
    """True for a term printed with a leading minus (−y, −2 Xᵀy)."""
    if isinstance(node, Product):
        return sp.sympify(node.scalar).could_extract_minus_sign()
    if isinstance(node, Scalar):
        return sp.sympify(node.expr).could_extract_minus_sign()
    return False


def _negated(node):
    if isinstance(node, Product):
        return Product(-node.scalar, node.factors, node.op)
    if isinstance(node, Scalar):
        return Scalar(-node.expr)
    if isinstance(node, Sum):
        return Sum(tuple(_negated(t) for t in node.terms))
    return Product(sp.S.NegativeOne, (node,), "hadamard")


def tidy_node(node):
    """A form laid out as a textbook writes it, with the same value: one scalar out front
    ((1/N)(2 Xᵀ v) → (2/N) Xᵀ v), a difference rather than a negated sum (−y + ŷ → ŷ − y), and a
    negative scalar absorbed by a difference among the factors (−2 (y − t) → 2 (t − y)), and a mask
    after what it masks (g ⊙ 1{z > 0}, as CS231n's ``dz = dh * (z > 0)``).

    >>> print(tidy_node(Product(sp.Rational(1, 2), (Sum((Product(-1, (Vector('y'),), 'hadamard'),
    ...                                                 Vector('q'))),), 'matmul')).latex())
    \\frac{1}{2} \\left(q - y\\right)
    """
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            changes[f.name] = tidy_node(value)
        elif isinstance(value, tuple) and any(isinstance(v, Node) for v in value):
            changes[f.name] = tuple(tidy_node(v) if isinstance(v, Node) else v for v in value)
    node = replace(node, **changes) if changes else node
    if isinstance(node, Sum):
        terms = sorted(node.terms, key=_negative)                  # stable: the positive terms first
        return _common_factors(Sum(tuple(terms)))
    if isinstance(node, Product):
        if node.op == "hadamard" and any(_is_mask(f) for f in node.factors):      # g ⊙ 1{z > 0}: the mask last
            node = Product(node.scalar, tuple(f for f in node.factors if not _is_mask(f))
                           + tuple(f for f in node.factors if _is_mask(f)), node.op)
        if len(node.factors) == 1 and isinstance(node.factors[0], Product):      # c (d A B) → (cd) A B
            inner = node.factors[0]
            node = Product(node.scalar * inner.scalar, inner.factors, inner.op)
        if sp.sympify(node.scalar).could_extract_minus_sign():
            for k, factor in enumerate(node.factors):
                if isinstance(factor, Sum) and (sum(map(_negative, factor.terms)) * 2 > len(factor.terms) or
                                                len(factor.terms) == 2 and isinstance(factor.terms[1], Scalar)
                                                and _negative(factor.terms[1])):   # −(a − 1) a → (1 − a) a
                    flipped = tidy_node(_negated(factor))
                    return Product(-node.scalar, node.factors[:k] + (flipped,) + node.factors[k + 1:], node.op)
    return node


def _is_mask(node):
    """A mask 1{z > 0} (the step of a ReLU or a hinge) or a layer's derivative σ'(z), which courses
    write after what it multiplies: δ₂W₂ᵀ ⊙ σ'(z₁)."""
    from .functions import sigmoid_prime
    return isinstance(node, Apply) and node.func in (sp.Heaviside, sigmoid_prime)


def _common_factors(node):
    """A sum with a common scalar or a common leftmost matrix written once, out front:
    (1/N) P − (1/N) Y → (1/N)(P − Y), U ŷ − U y → U (ŷ − y); a common last factor (a mask, or a
    matrix on the right) written once after: (P W₂ᵀ) ⊙ m − (Y W₂ᵀ) ⊙ m → ((P − Y) W₂ᵀ) ⊙ m."""
    terms = node.terms
    products = [t if isinstance(t, Product) else Product(sp.S.One, (t,), "matmul") for t in terms]
    scalars = [sp.sympify(p.scalar) for p in products]
    common = scalars[0].as_coeff_Mul()[1]
    if common != 1 and all((s / common).is_number for s in scalars):
        inner = tuple(_unit(Product(s / common, p.factors, p.op)) for s, p in zip(scalars, products))
        return Product(common, (_common_factors(Sum(inner)),), "matmul")
    first = [p.factors[0] for p in products]
    if all(p.op == "matmul" or len(p.factors) == 1 for p in products) and len(set(first)) == 1 \
            and all(len(p.factors) > 1 for p in products) and not isinstance(first[0], (Sum, Scalar)):
        rest = tuple(_unit(Product(p.scalar, p.factors[1:], "matmul")) for p in products)
        return Product(sp.S.One, (first[0], Sum(rest)), "matmul")
    last = [p.factors[-1] for p in products]
    ops = {p.op for p in products}
    if len(ops) == 1 and len(set(last)) == 1 and all(len(p.factors) > 1 for p in products) \
            and not isinstance(last[0], (Sum, Scalar)):     # A M − B M → (A − B) M; a ⊙ m − b ⊙ m → (a − b) ⊙ m
        op = ops.pop()
        rest = tuple(_unit(Product(p.scalar, p.factors[:-1], op)) for p in products)
        return Product(sp.S.One, (tidy_node(Sum(rest)), last[0]), op)
    return node


def _unit(product):
    """A product of one factor with scalar 1 is that factor."""
    return product.factors[0] if product.scalar == 1 and len(product.factors) == 1 else product
