"""Functions of whole matrices in problem files: trace, det, logdet, inverse, transpose, norms,
diag, the identity and matrix products, read into index expressions.

Most of them are index sums and need nothing new: tr(AX) = Σ_i Σ_k A_ik X_ki, (Ax)_i = Σ_k A_ik x_k,
‖x‖₂ = √(Σ_i x_i²), diag(v)_ij = δ_ij v_i. Three cannot be written entry by entry for a symbolic
size, so they are opaque SymPy objects that know their derivative (Matrix Cookbook, eqs. 49, 57, 59):

    ∂ det X / ∂X_pq = det X · (X⁻¹)_qp      ∂ log det X / ∂X_pq = (X⁻¹)_qp
    ∂ (X⁻¹)_ab / ∂X_pq = −(X⁻¹)_ap (X⁻¹)_qb

``(X⁻¹)_ab`` is an entry of the ``IndexedBase`` ``inverse_of(X)``, named ``X^{-1}``, so that it
prints, shifts to the sheet's index base and contracts like any other tensor entry.
"""
import ast
from dataclasses import dataclass

import sympy as sp

from .errors import ExpressionError
from .indices import INDEX_LETTERS

#: Names a problem file may call that take whole matrices or vectors.
MATRIX_CALLS = ("trace", "det", "logdet", "inverse", "transpose", "norm", "diag", "eye")

_INVERTED = {}          # the name of X^{-1} -> X's IndexedBase (IndexedBase keeps only a label)


class InverseOf(sp.IndexedBase):
    """X⁻¹ as a tensor: its entries are ``InverseEntry`` s."""

    @property
    def matrix(self):
        return _INVERTED[self.label.name]

    def __getitem__(self, indices, **kwargs):
        indices = indices if isinstance(indices, tuple) else (indices,)
        return InverseEntry(self, *indices)

    def _latex(self, printer):
        return "%s^{-1}" % printer._print(self.matrix.label)         # Λ^{-1}, not Lambda^{-1}


class InverseEntry(sp.Indexed):
    """(X⁻¹)_ab, differentiated by X_pq as −(X⁻¹)_ap (X⁻¹)_qb.

    >>> X = sp.IndexedBase(sp.Symbol('X', real=True)); a, b, p, q = sp.symbols('a b p q', integer=True)
    >>> sp.diff(inverse_of(X)[a, b], X[p, q])
    -X^{-1}[a, p]*X^{-1}[q, b]
    """

    @property
    def free_symbols(self):       # depends on X: SymPy's diff would otherwise call it constant
        return super().free_symbols | {self.base.matrix.label}

    def _eval_derivative(self, wrt):
        if isinstance(wrt, sp.Indexed) and wrt.base == self.base.matrix:
            (a, b), (p, q) = self.indices, wrt.indices
            return -self.base[a, p] * self.base[q, b]
        return super()._eval_derivative(wrt)


def inverse_of(matrix):
    """The ``IndexedBase`` of X⁻¹ for a square matrix's ``IndexedBase`` X."""
    label = sp.Symbol(f"{matrix.label.name}^{{-1}}", real=True)
    _INVERTED[label.name] = matrix
    return InverseOf(label, shape=matrix.shape)


class _OfMatrix(sp.Function):
    """A scalar function of one whole square matrix (its ``IndexedBase``)."""

    nargs = 1

    @property
    def free_symbols(self):
        return {self.args[0].label}

    def _eval_derivative(self, wrt):
        if isinstance(wrt, sp.Indexed) and wrt.base == self.args[0]:
            p, q = wrt.indices
            return self._by_entry(inverse_of(self.args[0])[q, p])
        return sp.S.Zero

    def _tex(self, printer):
        return printer._print(self.args[0].label)


class det(_OfMatrix):
    """det X; ∂ det X / ∂X_pq = det X · (X⁻¹)_qp.

    >>> X = sp.IndexedBase(sp.Symbol('X', real=True)); p, q = sp.symbols('p q', integer=True)
    >>> sp.diff(det(X), X[p, q])
    det(X)*X^{-1}[q, p]
    """

    def _by_entry(self, inverse_qp):
        return self * inverse_qp

    def numeric(self, matrix):
        import numpy
        return float(numpy.linalg.det(matrix))

    def _latex(self, printer, exp=None):
        tex = r"\det %s" % self._tex(printer)
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


class logdet(_OfMatrix):
    """log det X (X with a positive determinant); ∂ log det X / ∂X_pq = (X⁻¹)_qp."""

    def _by_entry(self, inverse_qp):
        return inverse_qp

    def numeric(self, matrix):
        import numpy
        sign, value = numpy.linalg.slogdet(matrix)
        return float(value) if sign > 0 else float("nan")

    def _latex(self, printer, exp=None):
        tex = r"\log\det %s" % self._tex(printer)
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


#: SymPy functions of a whole matrix, by name (for evaluators).
WHOLE_MATRIX = (det, logdet)


class _OfEntries(sp.Function):
    """A function of a square matrix given entry by entry, for answers such as (XᵀX + λI)⁻¹ or
    det(XᵀX) whose matrix is not a declared tensor. Arguments: the entry ``body`` in the two
    symbols ``row`` and ``col``, then the size n (and, for an inverse, the entry asked for).
    Such a value has no symbolic derivative; it is only evaluated numerically (``numeric``).
    """

    def matrix(self, value):
        """The n × n NumPy matrix, from ``value(expr, {symbol: int})`` of one entry."""
        import numpy
        body, row, col, size = self.args[:4]
        n = int(value(size, {}))
        return numpy.array([[value(body, {row: r, col: c}) for c in range(n)] for r in range(n)])


class inverse_entry(_OfEntries):
    """(M⁻¹)_ij of a matrix M given entry by entry: (body, row, col, n, i, j)."""

    nargs = 6

    def numeric(self, value):
        import numpy
        matrix = self.matrix(value)
        if numpy.linalg.cond(matrix) > 1e10:
            raise ValueError("the matrix inverted is singular at these values")
        i, j = (int(round(value(a, {}))) for a in self.args[4:])
        return float(numpy.linalg.inv(matrix)[i, j])

    def _latex(self, printer, exp=None):
        return r"\left(\cdot\right)^{-1}"


class det_of_entries(_OfEntries):
    """det M of a matrix M given entry by entry: (body, row, col, n)."""

    nargs = 4

    def numeric(self, value):
        import numpy
        return float(numpy.linalg.det(self.matrix(value)))


class logdet_of_entries(_OfEntries):
    """log det M of a matrix M given entry by entry (NaN where det M ≤ 0): (body, row, col, n)."""

    nargs = 4

    def numeric(self, value):
        import numpy
        sign, log = numpy.linalg.slogdet(self.matrix(value))
        return float(log) if sign > 0 else float("nan")


#: Functions of a matrix given entry by entry (evaluated numerically only).
OF_ENTRIES = (inverse_entry, det_of_entries, logdet_of_entries)


def well_conditioned(rng, n, symmetric=False):
    """A random n × n matrix that is safely invertible with a positive determinant: I + 0.8 G/‖G‖₂
    (eigenvalues within 0.8 of 1, condition number at most 9), or for a symmetric one the positive
    definite 0.5 I + G Gᵀ/n.

    >>> import numpy as np
    >>> m = well_conditioned(np.random.default_rng(0), 4)
    >>> bool(np.linalg.det(m) > 0 and np.linalg.cond(m) < 100)
    True
    """
    import numpy
    g = rng.normal(size=(n, n))
    if symmetric:
        return 0.5 * numpy.eye(n) + g @ g.T / n
    return numpy.eye(n) + 0.8 * g / max(numpy.linalg.norm(g, 2), 1e-12)


def inverted_arrays(expr, arrays):
    """{name of X^{-1}: its values} for each inverse ``expr`` names, from X's values in ``arrays``."""
    import numpy
    out = {}
    for base in sp.sympify(expr).atoms(InverseOf):
        if base.matrix.label.name in arrays:
            out[base.label.name] = numpy.linalg.inv(arrays[base.matrix.label.name])
    for e in sp.sympify(expr).atoms(sp.Indexed):
        if isinstance(e.base, InverseOf) and e.base.matrix.label.name in arrays:
            out[e.base.label.name] = numpy.linalg.inv(arrays[e.base.matrix.label.name])
    return out


def inverted_names(expr):
    """Names of the matrices ``expr`` inverts or takes the determinant of (they must be invertible)."""
    expr = sp.sympify(expr)
    names = {e.base.matrix.label.name for e in expr.atoms(sp.Indexed) if isinstance(e.base, InverseOf)}
    return names | {f.args[0].label.name for f in expr.atoms(*WHOLE_MATRIX)}


def symmetric_entries(expr, names):
    """Each entry A_ji of a matrix declared symmetric written A_ij, the two indices in one fixed
    order: a free index before a summation index (so that Σ_i A_ip x_i and Σ_j A_pj x_j are one
    sum, A x), else alphabetical. A_ip + A_pi becomes 2 A_ip.

    >>> A, x = (sp.IndexedBase(sp.Symbol(n, real=True)) for n in 'Ax'); i, j, p = sp.symbols('i j p', integer=True)
    >>> symmetric_entries(A[i, p] + A[p, i], {'A'})
    2*A[i, p]
    >>> symmetric_entries(sp.Sum(A[i, p] * x[i], (i, 0, 2)) + sp.Sum(A[p, j] * x[j], (j, 0, 2)), {'A'})
    Sum(A[p, i]*x[i], (i, 0, 2)) + Sum(A[p, j]*x[j], (j, 0, 2))
    """
    if not names:
        return expr
    from .indices import bound_names
    bound = bound_names(expr)

    def key(index):
        return (bool({s.name for s in index.free_symbols} & bound), sp.default_sort_key(index))

    def ordered(e):
        a, b = e.indices
        return e.base[b, a] if key(b) < key(a) else e
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label.name in names and len(e.indices) == 2,
                        ordered)


# Reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MatrixValue:
    """A matrix-valued expression being read: its shape (rows, columns) and its entry at (i, j).
    A vector is a column (n × 1)."""
    rows: object
    cols: object
    at: object          # (i, j) -> SymPy expression
    text: str = ""

    @property
    def shape(self):
        return (self.rows, self.cols)

    def transpose(self):
        return MatrixValue(self.cols, self.rows, lambda i, j: self.at(j, i))

    def is_scalar(self):
        return self.rows == 1 and self.cols == 1


def _entrywise_functions():
    """Functions of one number a problem file may apply to every entry of a matrix: exp(X), tanh(W @ x)."""
    from .functions import KNOWN_FUNCTIONS
    return {name: f for name, f in KNOWN_FUNCTIONS.items() if name not in ("Max", "Min")}


def _shape_text(value):
    return f"{value.rows}×{value.cols}"


class MatrixReader:
    """Reads the matrix-valued part of an expression for ``expressions.Reader`` (``reader``)."""

    def __init__(self, reader):
        self.reader = reader
        self.used = set()
        self.same_product = {}

    def fail(self, node, message):
        self.reader.fail(node, message)

    # Indices of the sums a product writes -----------------------------------------------
    def fresh(self, size):
        scope = self.reader.scope
        for name in list(INDEX_LETTERS) + [f"{p}{n}" for n in range(2, 100) for p in INDEX_LETTERS]:
            if name in self.used or name in scope.sizes or name in scope.indices or scope.tensor(name) is not None:
                continue
            self.used.add(name)
            return sp.Idx(sp.Symbol(name, integer=True), (0, sp.sympify(size) - 1))
        raise ExpressionError("ran out of index names")

    # Whole matrices ------------------------------------------------------------------------
    def value(self, node, depth):
        """The ``MatrixValue`` of ``node`` (a matrix, a vector or a 1×1 product)."""
        if depth > 40:
            self.fail(node, "expression is nested deeper than 40 levels")
        depth += 1
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MATRIX_CALLS:
            return self.call(node, depth)
        if self.is_entrywise(node):
            return self.entrywise(node, depth)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand, depth)
            return MatrixValue(inner.rows, inner.cols, lambda i, j: -inner.at(i, j))
        if isinstance(node, ast.BinOp):
            return self.binop(node, depth)
        self.fail(node, "expected a matrix or vector here (a declared name, a product with @, "
                        "transpose(...), inverse(...), diag(...) or eye(n))")

    def name(self, node):
        tensor = self.reader.scope.tensor(node.id)
        if tensor is None:
            self.fail(node, f"'{node.id}' is not a declared tensor")
        if tensor.rank == 1:
            return MatrixValue(tensor.shape[0], sp.S.One, lambda i, j: tensor.base[i], node.id)
        if tensor.rank == 2:
            return MatrixValue(*tensor.shape, lambda i, j: tensor.base[i, j], node.id)
        if tensor.rank == 0:
            return MatrixValue(sp.S.One, sp.S.One, lambda i, j: tensor.base, node.id)
        self.fail(node, f"'{node.id}' has {tensor.rank} axes; matrix functions take vectors and matrices")

    def square(self, node, value, what):
        if sp.simplify(value.rows - value.cols) != 0:
            self.fail(node, f"{what} needs a square matrix; this one is {_shape_text(value)}")

    def declared_square(self, node, what):
        """The ``IndexedBase`` of a declared square matrix (det, logdet and inverse take only these)."""
        if not isinstance(node, ast.Name):
            self.fail(node, f"{what} takes a declared square matrix by name (declare a product as a layer)")
        value = self.name(node)
        self.square(node, value, what)
        if value.cols == 1 and value.rows == 1:
            self.fail(node, f"{what} takes a matrix, not a scalar")
        return self.reader.scope.tensor(node.id).base

    def binop(self, node, depth):
        op = type(node.op)
        if op is ast.Pow:
            power = self.reader.read(node.right, depth)
            if power != -1:
                self.fail(node.right, "a matrix power is only X**-1, the inverse")
            return self.inverse(node.left)
        if op is ast.MatMult:
            left, right = self.value(node.left, depth), self.value(node.right, depth)
            if sp.simplify(left.cols - right.rows) != 0:
                hint = " (vectors are columns: transpose(x) @ y is their dot product)" if left.cols == 1 else ""
                self.fail(node, f"cannot multiply a {_shape_text(left)} matrix by a {_shape_text(right)} one{hint}")
            if left.cols == 1:
                return MatrixValue(left.rows, right.cols, lambda i, j: left.at(i, 0) * right.at(0, j))
            # one summation index per product as written, so that X @ w twice is one sum, which cancels
            key = ast.dump(node)
            if key not in self.same_product:
                self.same_product[key] = self.fresh(left.cols)
            k = self.same_product[key]
            return MatrixValue(left.rows, right.cols,
                               lambda i, j: sp.Sum(left.at(i, k) * right.at(k, j), (k, 0, left.cols - 1)))
        if op in (ast.Add, ast.Sub) and not (self.is_matrix(node.left) and self.is_matrix(node.right)):
            # 1 - y: a number stands for the matrix with that number in every entry
            matrix = self.value(node.right if self.is_matrix(node.right) else node.left, depth)
            number = self.reader.read(node.left if self.is_matrix(node.right) else node.right, depth)
            sign = 1 if op is ast.Add else -1
            if self.is_matrix(node.right):
                return MatrixValue(matrix.rows, matrix.cols, lambda i, j: number + sign * matrix.at(i, j))
            return MatrixValue(matrix.rows, matrix.cols, lambda i, j: matrix.at(i, j) + sign * number)
        if op in (ast.Add, ast.Sub):
            left, right = self.value(node.left, depth), self.value(node.right, depth)
            if sp.simplify(left.rows - right.rows) != 0 or sp.simplify(left.cols - right.cols) != 0:
                self.fail(node, f"cannot add a {_shape_text(left)} matrix and a {_shape_text(right)} one")
            sign = 1 if op is ast.Add else -1
            return MatrixValue(left.rows, left.cols, lambda i, j: left.at(i, j) + sign * right.at(i, j))
        if op in (ast.Mult, ast.Div):
            # a number times a matrix, or two matrices of one shape entry by entry (Hadamard)
            scalar_left = op is ast.Mult and not self.is_matrix(node.left)
            if scalar_left or not self.is_matrix(node.right):
                factor = self.reader.read(node.left if scalar_left else node.right, depth)
                matrix = self.value(node.right if scalar_left else node.left, depth)
                if op is ast.Div:
                    return MatrixValue(matrix.rows, matrix.cols, lambda i, j: matrix.at(i, j) / factor)
                return MatrixValue(matrix.rows, matrix.cols, lambda i, j: factor * matrix.at(i, j))
            left, right = self.value(node.left, depth), self.value(node.right, depth)
            if sp.simplify(left.rows - right.rows) != 0 or sp.simplify(left.cols - right.cols) != 0:
                self.fail(node, f"entry by entry needs one shape, not {_shape_text(left)} and {_shape_text(right)}")
            if op is ast.Div:
                return MatrixValue(left.rows, left.cols, lambda i, j: left.at(i, j) / right.at(i, j))
            return MatrixValue(left.rows, left.cols, lambda i, j: left.at(i, j) * right.at(i, j))
        self.fail(node, f"operator {op.__name__} is not defined for matrices (use @ + - * and **-1)")

    def is_entrywise(self, node):
        """``exp(X)``, ``tanh(W @ x)``: a function of one number applied to every entry of a matrix."""
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1 \
            and node.func.id in _entrywise_functions() and self.reader.scope.tensor(node.func.id) is None \
            and self.is_matrix(node.args[0])

    def entrywise(self, node, depth):
        from .expressions import check_call
        if node.keywords:
            self.fail(node.keywords[0].value, f"{node.func.id}() takes no keyword arguments")
        name, f = node.func.id, _entrywise_functions()[node.func.id]
        inner = self.value(node.args[0], depth)

        def at(i, j):
            entry = inner.at(i, j)
            try:
                check_call(name, [entry])
            except ExpressionError as exc:
                self.fail(node, exc.message)
            return f(entry)
        return MatrixValue(inner.rows, inner.cols, at)

    def is_matrix(self, node):
        """Does ``node`` stand for a matrix or vector (rather than a number)?"""
        if isinstance(node, ast.Name):
            tensor = self.reader.scope.tensor(node.id)
            return tensor is not None and tensor.rank in (1, 2)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in _entrywise_functions() and len(node.args) == 1:
                return self.is_matrix(node.args[0])
            return node.func.id in ("inverse", "transpose", "diag", "eye")
        if isinstance(node, ast.UnaryOp):
            return self.is_matrix(node.operand)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, (ast.MatMult, ast.Pow)):
                return isinstance(node.op, ast.Pow) or not self._is_one_by_one(node)
            return self.is_matrix(node.left) or self.is_matrix(node.right)
        return False

    def _is_one_by_one(self, node):
        try:
            return self.value(node, 0).is_scalar()
        except ExpressionError:
            return False

    def inverse(self, node):
        base = self.declared_square(node, "inverse")
        inverse = inverse_of(base)
        return MatrixValue(base.shape[0], base.shape[1], lambda i, j: inverse[i, j])

    def call(self, node, depth):
        name = node.func.id
        if node.keywords:
            self.fail(node.keywords[0].value, f"{name}() takes no keyword arguments")
        if name == "eye":
            if len(node.args) != 1:
                self.fail(node, "eye(n) takes one size")
            n = self.reader.read(node.args[0], depth)
            return MatrixValue(n, n, lambda i, j: sp.KroneckerDelta(i, j))
        if len(node.args) != 1:
            self.fail(node, f"{name}() takes one matrix or vector")
        if name == "inverse":
            return self.inverse(node.args[0])
        arg = self.value(node.args[0], depth)
        if name == "transpose":
            return arg.transpose()
        if name == "diag":
            if arg.cols != 1:
                self.fail(node, f"diag() takes a vector (here {_shape_text(arg)}); its matrix has it on the diagonal")
            return MatrixValue(arg.rows, arg.rows, lambda i, j: sp.KroneckerDelta(i, j) * arg.at(i, 0))
        self.fail(node, f"{name}() is a number, not a matrix")

    # Scalars ---------------------------------------------------------------------------------
    def scalar_call(self, node, depth):
        """trace(M), det(X), logdet(X), norm(v) (2-norm; Frobenius for a matrix), norm(v, 1)."""
        name = node.func.id
        if node.keywords:
            self.fail(node.keywords[0].value, f"{name}() takes no keyword arguments")
        if name in ("det", "logdet"):
            if len(node.args) != 1:
                self.fail(node, f"{name}() takes one declared square matrix")
            base = self.declared_square(node.args[0], name)
            return (det if name == "det" else logdet)(base)
        if name == "trace":
            if len(node.args) != 1:
                self.fail(node, "trace() takes one square matrix")
            value = self.value(node.args[0], depth)
            self.square(node, value, "trace")
            i = self.fresh(value.rows)
            return sp.Sum(value.at(i, i), (i, 0, value.rows - 1))
        # norm
        if len(node.args) not in (1, 2):
            self.fail(node, "norm(v) or norm(v, 1): a vector or matrix, and optionally the order 1 or 2")
        order = self.reader.read(node.args[1], depth) if len(node.args) == 2 else sp.Integer(2)
        if order not in (1, 2):
            self.fail(node.args[1], "norm() has the orders 2 (the default; Frobenius for a matrix) and 1")
        value = self.value(node.args[0], depth)
        if order == 1 and value.cols != 1:
            self.fail(node, "norm(v, 1) is for vectors")
        i, j = self.fresh(value.rows), self.fresh(value.cols)
        limits = [(i, 0, value.rows - 1)] + ([(j, 0, value.cols - 1)] if value.cols != 1 else [])
        entry = value.at(i, j if value.cols != 1 else 0)
        if order == 1:
            return sp.Sum(sp.Abs(entry), *limits)
        return sp.sqrt(sp.Sum(entry ** 2, *limits))

    def entry(self, node, depth):
        """``(A @ x)[i]``, ``inverse(X)[i, j]``: one entry of a matrix expression."""
        value = self.value(node.value, depth)
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if any(isinstance(p, ast.Slice) for p in parts):
            self.fail(node, "slices are not supported; index every axis")
        base = self.reader.scope.base
        idx = [self.reader.read(p, depth) - base for p in parts]
        if value.cols == 1 and len(idx) == 1:
            return value.at(idx[0], sp.S.Zero)
        if len(idx) != 2:
            self.fail(node, f"a {_shape_text(value)} matrix takes two indices")
        return value.at(*idx)

    def whole(self, node, depth):
        """A matrix expression used where a number is expected: only a 1×1 one is a number."""
        value = self.value(node, depth)
        if not value.is_scalar():
            self.fail(node, f"this is a {_shape_text(value)} matrix, not a number: take an entry, "
                            "e.g. (A @ x)[i], or a scalar such as trace(...)")
        return value.at(sp.S.Zero, sp.S.Zero)
