"""Give a parsed answer its meaning in a question's scope: names, indices, matrices.

Names resolve against the question's declarations (``problem.declarations(question)``):

* a subscript or ``x[i, j]`` indexes a declared tensor (``W_{ij}`` splits into two indices
  when W has two axes); numbers in it are in the problem's index base;
* a subscript or superscript that completes a declared name is part of it
  (``W_x``/``W_{x}`` is ``Wx``, ``W^{(1)}``/``W^{[1]}``/``W_1`` is ``W1``, ``x_t`` is ``x_t``);
* time steps: ``c_t``, ``c[t]``, ``c^{(t)}``, ``c^{\\langle t\\rangle}`` index the sequence
  ``cs`` when the problem declares the plural; otherwise ``h_{t-1}`` is ``hp`` and ``h_{t-2}``
  ``hpp`` (the problems' names for earlier steps) and ``x_t`` is ``x`` (the current step);
* ``^T``, ``^\\top``, ``^{\\mathsf T}`` transpose; ``\\odot``/``\\circ`` multiply entry by entry;
  a product of matrices sums over the shared axis.

A matrix-valued answer is lowered to index form: a value carries its shape and an
expression in two placeholder indices (row, column), so ``W^T x`` becomes
``Σ_k W[k, row] x[k]``, and is then compared entry by entry in index form. Letters
used as indices that are neither declared nor bound by a sum are the answer's free
indices. Errors are ``MeaningError`` with the column of the offending node.
"""
from dataclasses import dataclass, field

import sympy as sp

from ..errors import ExpressionError
from ..expressions import MAX_EXPONENT, check_call, check_power
from ..functions import FUNCTIONS as FUNCTION_RULES, relu, sigmoid
from .. import matrix_functions as MF
from . import reader as R
from .names import split_name

ROW = sp.Symbol("_row", integer=True)
COL = sp.Symbol("_col", integer=True)
MAX_SUM_TERMS = 10_000
MAX_LITERAL_SIZE = 100          # I_n with a number n
MAX_INVERTED_LITERAL = 5        # \det and ^{-1} of a written-out matrix


class MeaningError(Exception):
    def __init__(self, message, pos=None):
        super().__init__(message)
        self.message, self.pos = message, pos


class UnknownName(MeaningError):
    """A name the question does not declare (the LaTeX itself was read): reported as ``unknown name``
    with the names the question knows, not as ``unparseable``."""


class ShapeMismatch(MeaningError):
    """Shapes that cannot be combined (a dropped transpose, typically): a wrong answer, not an
    unreadable one."""


def _divides(a, b):
    """a | b, a divisibility condition of the sheet's piecewise entries (2 | j + 1 for a stride of 2).

    >>> _divides(sp.Integer(2), sp.Integer(6)), _divides(sp.Integer(2), sp.Integer(7))
    (True, False)
    """
    return sp.Eq(sp.Mod(b, a), 0)


@dataclass
class Val:
    """A scalar (``shape`` None) or a rows × cols matrix whose entry is ``expr`` at (ROW, COL)."""
    expr: object
    shape: tuple = None

    @property
    def is_scalar(self):
        return self.shape is None

    def at(self, r, c):
        if self.shape is None:
            return self.expr
        return self.expr.xreplace({ROW: r, COL: c})


@dataclass
class Literal:
    """A number as written (for tolerances): its value and the unit of its last digit."""
    value: object
    unit: object
    text: str


@dataclass
class Context:
    scope: object                 # Declarations (lookup, sizes)
    base: int = 0
    upstream: object = None       # Tensor for ∂l/∂y in a chain-rule question
    upstream_of: tuple = ()       # names that mean y in ∂l/∂y
    losses: tuple = ("l", "L", "ell", "E", "J", "e")
    state: object = None          # (symbol, update expression) of a recurrence question
    question_indices: tuple = ()  # the question's own free index names (a t there is no time step)
    #: Tensors and layers the engine's answer uses (its definitions written out, with the layers they read):
    #: z_2 is z2 there, not entry 2 of another network's z, when only z2 is used.
    used_names: frozenset = frozenset()
    sheet_step: bool = False      # the engine's answer has a unit step H (then H(z) is it, even where H is a size)
    free: dict = field(default_factory=dict)        # student index name -> Dummy
    free_order: list = field(default_factory=list)
    free_pos: dict = field(default_factory=dict)
    bound: dict = field(default_factory=dict)       # name -> Dummy (display value = dummy + base)
    inferred: dict = field(default_factory=dict)    # Dummy -> size, from its use as an index
    index_context: int = 0
    literals: list = field(default_factory=list)    # Literal, for tolerances
    #: Names the answer sheet introduces or the question declares as aliases, beyond the scope's:
    #: tensors (the sheet's δ^{z_1} = ∂C/∂z_1, an alias ``x_n: X[n, :]``) and constants (τ_1 = tanh(7/10)).
    extra_tensors: dict = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)     # alias name -> Alias (a declared tensor's row, column, entry)
    #: Sizes the file declares that no tensor of this question uses (H of ``sizes: [N, C, H, W]`` in a question on
    #: a 4 × 4 input): such a letter cannot be part of a right answer, so H(z) there is the sheet's unit step.
    unused_sizes: tuple = ()
    #: The names the answer sheet defines (course_forms.Intermediate: ŷ = softmax(s), the one-hot Y), read as
    #: their definitions in declared names
    definitions: dict = field(default_factory=dict)

    # Lookups -------------------------------------------------------------------------
    def tensor(self, name):
        if self.upstream is not None and name == self.upstream.name:
            return self.upstream
        try:
            found = self.scope.lookup(name)
        except Exception:
            found = None
        return found if found is not None else self.extra_tensors.get(name)

    def size(self, name):
        return self.scope.sizes.get(name)

    def declared(self, name):
        return self.size(name) is not None or self.tensor(name) is not None or name in self.constants \
            or name in self.aliases or name in self.definitions

    def index_symbol(self, name, pos, register=None):
        """A letter used as an index: bound by a sum, a known free index, or a new free index."""
        if name in self.bound:
            return self.bound[name] + self.base
        if name in self.free:
            return self.free[name]
        if register or (register is None and self.index_context
                        and (name.islower() or name in self.question_indices)):
            d = sp.Dummy(name, integer=True)
            self.free[name] = d
            self.free_order.append(name)
            self.free_pos[name] = pos
            return d
        return None


# Entry points ------------------------------------------------------------------------

def resolve(node, ctx):
    """The meaning of an expression node: a Val (or a list of Vals for a tuple)."""
    try:
        return _Resolver(ctx).value(node)
    except RecursionError:
        raise MeaningError("the expression is nested too deeply", getattr(node, "pos", None)) from None


def resolve_dims(nodes, ctx):
    """Sizes in \\mathbb{R}^{a \\times b}: SymPy expressions."""
    r = _Resolver(ctx)
    out = []
    for n in nodes:
        v = r.value(n)
        if not v.is_scalar:
            raise MeaningError("a dimension is a number or a size", n.pos)
        out.append(v.expr)
    return out


def times_chain(node):
    """``4 \\times 5 \\times 2`` as its factors (for shape answers), or None."""
    if isinstance(node, R.Bin) and node.op == "times":
        left = times_chain(node.left) or [node.left]
        return left + [node.right]
    return None


# The resolver ------------------------------------------------------------------------

class _Resolver:
    def __init__(self, ctx):
        self.ctx = ctx

    def fail(self, message, node, error=MeaningError):
        raise error(message, getattr(node, "pos", None))

    def value(self, node):
        method = getattr(self, "v_" + type(node).__name__, None)
        if method is None:
            self.fail(f"{_describe(node)} cannot stand here", node)
        return method(node)

    def scalar(self, node, what="a number"):
        v = self.value(node)
        if not isinstance(v, Val) or not v.is_scalar:
            self.fail(f"expected {what}, not a matrix or vector", node, ShapeMismatch)
        return v.expr

    def index_value(self, node):
        """An index expression (display base), resolved with undeclared letters as indices."""
        self.ctx.index_context += 1
        try:
            return self.scalar(node, "an index")
        finally:
            self.ctx.index_context -= 1

    # Leaves ------------------------------------------------------------------------
    def v_Num(self, node):
        text = node.text
        value = sp.Rational(text)
        unit = sp.Rational(1, 10 ** len(text.split(".")[1])) if "." in text else sp.Integer(1)
        self.ctx.literals.append(Literal(value, unit, text))
        return Val(value)

    def v_Dots(self, node):
        self.fail("'\\dots' cannot be compared; write the expression out", node)

    def v_Word(self, node):
        text = node.text.strip()
        if text in ("infty",):
            if getattr(self, "in_cases", 0):       # a max pool's padding: −∞ outside the input, never the max
                return Val(sp.oo)
            self.fail("infinity is not a value", node)
        name = text.replace(" ", "")
        if self.ctx.declared(name) or name in self.ctx.bound or name in self.ctx.free:
            return self.v_Name(R.Name(node.pos, [name], node.scripts))
        self.fail(f"'{text}' is not declared in this problem{_declared_hint(self.ctx)}", node, UnknownName)

    def v_Group(self, node):
        if node.body is None:
            self.fail("empty braces", node)
        if isinstance(node.body, R.MatrixNode):
            inner = self.matrix_literal(node.body)
        elif isinstance(node.body, R.Name) and node.paren == "{" and node.scripts:
            # {W_x}_{i,j}: the outer scripts belong to the name inside.
            return self.v_Name(R.Name(node.body.pos, node.body.letters, node.body.scripts + node.scripts))
        elif isinstance(node.body, R.Relation) and node.paren == "(" and len(node.body.ops) == 1 \
                and node.body.ops[0] in ("<", ">", "<=", ">="):
            # dh ⊙ (z > 0): CS231n's NumPy mask, 1 where the comparison holds, as 𝟙{z > 0}
            inner = self.v_Indicator(R.Indicator(node.pos, node.body))
        elif isinstance(node.body, (R.Relation, R.Tuple)):
            self.fail("a list or relation in parentheses is not a value", node)
        else:
            inner = self.value(node.body)
        return self.apply_scripts(inner, node.scripts, node)

    def matrix_literal(self, m):
        rows = [[self.scalar(e, "a number or expression as a matrix entry") for e in row] for row in m.rows]
        return Val(sp.Matrix(rows), ("literal", len(rows), len(rows[0])))

    def v_MatrixNode(self, node):
        return self.matrix_literal(node)

    # Arithmetic --------------------------------------------------------------------
    def v_Neg(self, node):
        v = self.value(node.arg)
        return Val(-v.expr, v.shape)

    def v_Bin(self, node):
        op = node.op
        if op == "implicit" and isinstance(node.right, R.Group) and node.right.paren == "(" \
                and not node.right.scripts:
            # H(z) is the unit step (when H is not declared), also inside a product: x_i H(z).
            # (a ⊙ H(z) is read (a ⊙ H)(z): the step's factor is then the ⊙'s left side)
            head, last, head_op = (None, node.left, None) \
                if not isinstance(node.left, R.Bin) or node.left.op not in ("implicit", "odot", "circ") \
                else (node.left.left, node.left.right, node.left.op)
            # Where H is a size, H(z) is still the step when the engine's answer has one: the sheet writes
            # H(z) for ReLU' there (CS231n's two-layer net of H hidden units).
            step_name = not self.ctx.declared("H") or "H" in self.ctx.unused_sizes \
                or (self.ctx.sheet_step and self.ctx.tensor("H") is None)
            if isinstance(last, R.Name) and last.letters[-1] == "H" and not last.scripts and step_name:
                arg = self.value(node.right.body)
                if arg.is_scalar:
                    step = Val(sp.Heaviside(arg.expr, 0))
                else:                               # H(z) of a vector: entry by entry (the sheet's H(z) ⊙ δ^h)
                    arg = as_symbolic(arg)
                    step = Val(sp.Heaviside(arg.expr, 0), arg.shape)
                out = step
                if len(last.letters) > 1:                   # xH(z): the letters before H multiply it
                    out = self.matmul(self.value(R.Name(last.pos, last.letters[:-1])), out, node)
                if head is not None:
                    out = self.hadamard(self.value(head), out, node) if head_op in ("odot", "circ") \
                        else self.matmul(self.value(head), out, node)
                return out
        left, right = self.value(node.left), self.value(node.right)
        if op in ("+", "-"):
            return self.add(left, right if op == "+" else Val(-right.expr, right.shape), node)
        if op in ("*", "cdot", "implicit", "times"):
            return self.matmul(left, right, node)
        if op == "odot":
            return self.hadamard(left, right, node)
        if op in ("mod", "//"):                   # j \% 3, j \bmod 3, j // 3 (indices in a flattened layout)
            if not (left.is_scalar and right.is_scalar):
                self.fail(f"{'a remainder' if op == 'mod' else 'an integer division'} of a matrix", node,
                          ShapeMismatch)
            if right.expr == 0:
                self.fail("division by zero", node.right)
            return Val(sp.Mod(left.expr, right.expr) if op == "mod" else sp.floor(left.expr / right.expr))
        if op == "/":
            if not right.is_scalar:
                return self.divide_entries(left, right, node)
            if right.expr == 0:
                self.fail("division by zero", node.right)
            return Val(left.expr / right.expr, left.shape)
        self.fail(f"the operation {op} is not supported", node)

    def add(self, a, b, node):
        if a.is_scalar and b.is_scalar:
            return Val(a.expr + b.expr)
        if _is_eye(a) or _is_eye(b):
            if _is_eye(a) and _is_eye(b):
                return Val(a.expr + b.expr, EYE)
            if a.is_scalar or b.is_scalar:
                self.fail("a number plus I", node, ShapeMismatch)
            a, b = _sized_eye(a, b), _sized_eye(b, a)
            if not equal_size(*a.shape):
                self.fail(f"I added to a {_shape(a.shape)} matrix, which is not square", node, ShapeMismatch)
        if a.is_scalar or b.is_scalar:             # 1 - c: the scalar stands for a constant vector
            m = b if a.is_scalar else a
            if is_literal(m):
                self.fail("a number plus a matrix", node, ShapeMismatch)
            return Val(a.expr + b.expr, m.shape)
        a, b = as_symbolic(a), as_symbolic(b)
        if not _same_shape(a.shape, b.shape):
            self.fail(f"cannot add a {_shape(a.shape)} and a {_shape(b.shape)} matrix", node, ShapeMismatch)
        return Val(a.expr + b.expr, a.shape)

    def matmul(self, a, b, node):
        if _is_eye(a) and not b.is_scalar:
            return b
        if _is_eye(b) and not a.is_scalar:
            return a
        if a.is_scalar or b.is_scalar:
            m = b if a.is_scalar else a
            s = a if a.is_scalar else b
            if is_literal(m):
                return Val(m.expr * s.expr, m.shape)
            return Val(s.expr * m.expr, m.shape)
        a, b = as_symbolic(a), as_symbolic(b)
        (r, k), (k2, c) = a.shape, b.shape
        if k == 1 and c == 1 and equal_size(r, k2) and not equal_size(r, 1):
            # x σ(x) of two columns: no product of matrices exists; entry by entry, as the statements write
            # SiLU's x σ(x) and courses a derivative σ(z)(1 − σ(z)) (an inner product is written xᵀy)
            return Val(a.expr * b.expr, a.shape)
        if k == 1 and not equal_size(k, k2) and equal_size(r, k2):
            # v W with v a vector of W's rows: no product of a column exists, so v is read as a row, as
            # courses that write z = x W + b do (CS224d's (ŷ − y) W₂ᵀ)
            a = _transpose(a)
            (r, k) = a.shape
        if not equal_size(k, k2):
            self.fail(f"cannot multiply a {_shape(a.shape)} by a {_shape(b.shape)} matrix "
                      f"(a transpose missing?)", node, ShapeMismatch)
        if k == 1:
            expr = a.expr.xreplace({COL: 0}) * b.expr.xreplace({ROW: 0})
        else:
            kd = sp.Dummy("k", integer=True)
            expr = sp.Sum(a.expr.xreplace({COL: kd}) * b.expr.xreplace({ROW: kd}), (kd, 0, k - 1))
        return _collapse(Val(expr, (r, c)))

    def hadamard(self, a, b, node):
        if a.is_scalar or b.is_scalar:
            return self.matmul(a, b, node)
        if _is_eye(a) and _is_eye(b):
            return Val(a.expr * b.expr, EYE)
        if (_is_eye(a) or _is_eye(b)) and not equal_size(*as_symbolic(b if _is_eye(a) else a).shape):
            self.fail("I ⊙ a matrix that is not square", node, ShapeMismatch)
        a, b = _sized_eye(a, b), _sized_eye(b, a)
        a, b = as_symbolic(a), as_symbolic(b)
        if a.shape[0] == 1 and b.shape[1] == 1 and _same_shape((a.shape[1], 1), b.shape):
            a = _transpose(a)                   # a row and a column of one length: both vectors
        elif b.shape[0] == 1 and a.shape[1] == 1 and _same_shape((b.shape[1], 1), a.shape):
            b = _transpose(b)
        if not _same_shape(a.shape, b.shape):
            self.fail(f"⊙ needs equal shapes: {_shape(a.shape)} and {_shape(b.shape)}", node, ShapeMismatch)
        return Val(a.expr * b.expr, a.shape)

    def divide_entries(self, num, den, node):
        """e^x / (1 + e^x) of a column x: entry by entry, the only reading a division by a vector has.
        A division by a matrix (an inverse?) stays refused."""
        den = as_symbolic(den)
        if den.shape[1] != 1 or _is_eye(den):
            self.fail("division by a matrix or vector", node, ShapeMismatch)
        if num.is_scalar:
            return Val(num.expr / den.expr, den.shape)
        num = as_symbolic(num)
        if not _same_shape(num.shape, den.shape):
            self.fail(f"division of a {_shape(num.shape)} by a {_shape(den.shape)} vector", node, ShapeMismatch)
        return Val(num.expr / den.expr, num.shape)

    def v_Frac(self, node):
        if is_partial(node.num) and is_partial(node.den):
            return self.derivative(node.num, node.den, node)
        num, den = self.value(node.num), self.value(node.den)
        if not den.is_scalar:
            return self.divide_entries(num, den, node)
        if den.expr == 0:
            self.fail("division by zero", node.den)
        return Val(num.expr / den.expr, num.shape)

    def v_Sqrt(self, node):
        arg = self.scalar(node.arg)
        if node.index is not None:
            n = self.scalar(node.index)
            if not (n.is_Integer and 1 <= n <= MAX_EXPONENT):
                self.fail("the root's index must be a whole number", node.index)
            return Val(arg ** sp.Rational(1, n))
        return Val(sp.sqrt(arg))

    def v_Delim(self, node):
        v = self.value(node.body)
        if node.kind == "norm":
            scripts = list(node.scripts)
            order = None
            if scripts and scripts[0][0] == "_":
                order = _norm_order(scripts.pop(0)[1])
                if order is None:
                    self.fail("a norm's subscript is 1, 2 or F (Frobenius)", node)
            if v.is_scalar:
                inner = sp.Abs(v.expr)
            else:
                if _is_eye(v):
                    self.fail("the norm of I needs its size: write I_n", node)
                v = as_symbolic(v)
                rows, cols = v.shape
                vector = equal_size(rows, 1) or equal_size(cols, 1)
                if order == "1" and not vector:
                    self.fail("\\|A\\|_1 of a matrix (its largest column sum) is not read; "
                              "\\|x\\|_1 is for vectors", node)
                if order == "2" and not vector:
                    self.fail("\\|A\\|_2 of a matrix (its largest singular value) is not read; "
                              "\\|A\\|_F is the Frobenius norm", node)
                r, c = sp.Dummy("r", integer=True), sp.Dummy("c", integer=True)
                limits = ((r, 0, rows - 1), (c, 0, cols - 1))
                inner = sp.Sum(sp.Abs(v.at(r, c)), *limits) if order == "1" else \
                    sp.sqrt(sp.Sum(v.at(r, c) ** 2, *limits))
            return self.apply_scripts(Val(inner), scripts, node)
        if node.kind == "abs" and not v.is_scalar:       # |X|: the determinant, as in the Matrix Cookbook
            return self.apply_scripts(self.determinant(v, node), node.scripts, node)
        if not v.is_scalar:
            self.fail(f"{node.kind} of a matrix", node, ShapeMismatch)
        f = {"floor": sp.floor, "ceiling": sp.ceiling, "abs": sp.Abs}[node.kind]
        return self.apply_scripts(Val(f(v.expr)), node.scripts, node)

    def v_Cases(self, node):
        pieces = []
        for value, cond in node.branches:
            self.in_cases = getattr(self, "in_cases", 0) + 1
            try:
                v = self.scalar(value, "a number or expression in each case")
            finally:
                self.in_cases -= 1
            pieces.append((v, sp.true if cond is None else self.condition(cond)))
        if pieces[-1][1] is not sp.true:
            pieces.append((sp.Integer(0), sp.true))
        return Val(sp.Piecewise(*pieces))

    def condition(self, node):
        self.ctx.index_context += 1
        try:
            if isinstance(node, R.Conj):
                return sp.And(*[self.condition(c) for c in node.items])
            if isinstance(node, R.Relation) and node.ops:
                parts = []
                values = [self.scalar(i) for i in node.items]
                for op, a, b in zip(node.ops, values, values[1:]):
                    rel = {"<=": sp.Le, ">=": sp.Ge, "<": sp.Lt, ">": sp.Gt, "=": sp.Eq, "!=": sp.Ne,
                           "mid": _divides}.get(op)
                    if rel is None:
                        self.fail(f"'{op}' is not a condition", node)
                    parts.append(rel(a, b))
                return sp.And(*parts)
            self.fail("expected a condition such as 0 \\le i \\le 2", node)
        finally:
            self.ctx.index_context -= 1

    def v_Indicator(self, node):
        cond = node.cond
        if isinstance(cond, R.Relation) and len(cond.ops) == 1 and cond.ops[0] in (">", "<"):
            # 1{z > 0} of a vector or matrix is a mask, entry by entry (ReLU's derivative, a hinge's margins)
            left, right = self.value(cond.items[0]), self.value(cond.items[1])
            if not (left.is_scalar and right.is_scalar):
                if right.is_scalar:
                    diff = Val(left.expr - right.expr, left.shape)
                elif left.is_scalar:
                    diff = Val(left.expr - right.expr, right.shape)
                else:
                    diff = self.add(left, Val(-right.expr, right.shape), node)
                if is_literal(diff):
                    self.fail("a mask of a matrix of numbers is not read", node)
                return Val(sp.Heaviside(diff.expr if cond.ops[0] == ">" else -diff.expr, 0), diff.shape)
        rel = {"<=": sp.Le, ">=": sp.Ge, "<": sp.Lt, ">": sp.Gt}.get(cond.ops[0]) \
            if isinstance(cond, R.Relation) and len(cond.ops) == 1 else None
        if rel is not None:              # 𝟙[z > 0] of a vector z: entry by entry (CS231n's ReLU gate)
            left = self.value(cond.items[0])
            if not left.is_scalar and not _is_eye(left):
                right = self.scalar(cond.items[1], "a number to compare the entries with")
                left = as_symbolic(left)
                return Val(sp.Piecewise((1, rel(left.expr, right)), (0, True)), left.shape)
        return Val(sp.Piecewise((1, self.condition(node.cond)), (0, True)))

    def v_Relation(self, node):
        self.fail("a relation cannot stand inside an expression", node)

    def v_Tuple(self, node):
        self.fail("a list cannot stand inside an expression", node)

    def v_SetNode(self, node):
        self.fail("a set cannot stand inside an expression", node)

    def v_Reals(self, node):
        self.fail("a dimension cannot stand inside an expression", node)

    def v_Partial(self, node):
        self.fail("'\\partial' outside a derivative fraction", node)

    def v_Nabla(self, node):
        return self.derivative(R.Partial(node.pos, node.arg), R.Partial(node.pos, node.sub), node)

    # Sums -------------------------------------------------------------------------
    def v_BigOp(self, node):
        limits = self.sum_limits(node)
        saved = dict(self.ctx.bound)
        dummies = []
        for name, lo, hi, pos in limits:
            d = sp.Dummy(name, integer=True)
            self.ctx.bound[name] = d
            dummies.append((d, lo, hi, name, pos))
        try:
            body = self.value(node.body)
        finally:
            self.ctx.bound = saved
        out = []
        for d, lo, hi, name, pos in dummies:
            if lo is None:
                size = self.ctx.inferred.get(d)
                if size is None:
                    self.fail(f"the range of {name} is not given, and {name} is never used alone as an "
                              f"index of a declared tensor", R.Node(pos))
                lo, hi = sp.Integer(0), size - 1
            else:
                lo, hi = lo - self.ctx.base, hi - self.ctx.base
            if lo.is_Integer and hi.is_Integer and hi - lo > MAX_SUM_TERMS:
                self.fail(f"a sum of more than {MAX_SUM_TERMS} terms", node)
            out.append((d, lo, hi))
        expr = body.expr
        func = sp.Sum if node.op == "sum" else sp.Product
        return Val(func(expr, *reversed(out)), body.shape) if not is_literal(body) else \
            self.fail("a sum of explicit matrices", node)

    def sum_limits(self, node):
        """[(name, lo or None, hi or None, pos)] from \\sum_{j=1}^{n}, \\sum_j, \\sum_{i,j}."""
        sub, sup = node.sub, node.sup
        if sub is None:
            self.fail("a sum needs its index, e.g. \\sum_{j=1}^{n}", node)
        if isinstance(sub, R.Tuple) and sub.paren == "substack":      # \substack{1 \le k \le 3 \\ 1 \le c \le 2}
            if sup is not None or not all(isinstance(i, R.Relation) and len(i.items) == 3 for i in sub.items):
                self.fail("write each line of \\substack as a range, e.g. 1 \\le k \\le 3", sub)
            return [limit for item in sub.items for limit in self.sum_limits(R.BigOp(item.pos, node.op, item, None,
                                                                                        None))]
        if isinstance(sub, R.Relation) and len(sub.ops) == 1 and sub.ops[0] == "=":
            names = [sub.items[0]]
            lo = self.limit(sub.items[1])
        elif isinstance(sub, R.Relation) and sub.ops and all(o in ("<=", "<") for o in sub.ops) \
                and len(sub.items) == 3:                     # \sum_{1 \le j \le n}
            names = [sub.items[1]]
            lo = self.limit(sub.items[0]) + (1 if sub.ops[0] == "<" else 0)
            sup_value = self.limit(sub.items[2]) - (1 if sub.ops[1] == "<" else 0)
            return [(self.index_name(names[0]), lo, sup_value, sub.pos)]
        elif isinstance(sub, R.Tuple):
            names, lo = sub.items, None
        else:
            names, lo = [sub], None
        if isinstance(sub, R.Relation) and sub.ops and sub.ops[0] == "in":
            self.fail("write the sum's range as \\sum_{j=1}^{n}", sub)
        names = [self.index_name(n) for n in names]
        if len(names) == 1 and isinstance(sub, R.Name) and len(sub.letters) > 1 and not sub.scripts:
            names = list(sub.letters)                   # \sum_{ij}
        hi = self.limit(sup) if sup is not None else None
        if (lo is None) != (hi is None):
            if lo is not None and hi is None:
                self.fail("a sum with a lower limit needs an upper limit", node)
            lo = sp.Integer(self.ctx.base)              # \sum^{n}_{j}: from the first index
        return [(n, lo, hi, node.pos) for n in names]

    def index_name(self, node):
        if isinstance(node, R.Name) and not node.scripts:
            return "".join(node.letters)
        if isinstance(node, R.Name) and all(kind == "'" for kind, _ in node.scripts):
            return "".join(node.letters) + "'" * len(node.scripts)       # \sum_{s'=1}^{n}
        self.fail("a summation index is a letter", node)

    def limit(self, node):
        self.ctx.index_context += 1
        try:
            v = self.scalar(node, "a sum limit")
        finally:
            self.ctx.index_context -= 1
        return v

    # Functions --------------------------------------------------------------------
    def v_Call(self, node):
        if node.sub is not None and node.func not in ("log", "max", "min", "softmax"):
            self.fail(f"a subscript on {node.func} is not understood", node)
        result = self.apply_function(node.func, node.args, node, primes=node.primes, sub=node.sub)
        if node.power is not None and not result.is_scalar and node.func not in ("diag", "softmax", "max", "min"):
            # tanh²(Xw) of a vector is entry by entry, as courses write 1 − tanh²; tanh^{-1} is not a power
            e = self.scalar(node.power, "an exponent")
            if not (e.is_Integer and 0 < e <= MAX_EXPONENT):
                self.fail("a power of a function of a matrix or vector other than 2, 3, ... is not read", node)
            result = Val(result.expr ** e, result.shape)
        elif node.power is not None:
            result = self.power(result, node.power, node)
        return self.apply_scripts(result, node.scripts, node)

    def apply_function(self, func, args, node, primes=0, sub=None):
        if func in ("max", "min"):
            values = [self.scalar(a) for a in args] if len(args) > 1 else None
            if values is None:
                v = self.value(args[0])
                if v.is_scalar:
                    self.fail(f"\\{func} of one value", node)
                self.fail(f"\\{func} over a vector is not supported", node)
            return Val((sp.Max if func == "max" else sp.Min)(*values))
        if len(args) != 1:
            self.fail(f"{func} takes one argument", node)
        v = self.value(args[0])
        if func == "diag":
            v = as_symbolic(v)
            if v.is_scalar or 1 not in v.shape:
                self.fail("diag needs a vector", node, ShapeMismatch)
            n = v.shape[0] if v.shape[1] == 1 else v.shape[1]
            entry = v.expr if v.shape[1] == 1 else v.expr.xreplace({COL: ROW})
            return Val(sp.KroneckerDelta(ROW, COL) * entry, (n, n))
        if func == "softmax":
            v = as_symbolic(v)
            if v.is_scalar or _is_eye(v):
                self.fail("softmax needs a vector or a matrix", node, ShapeMismatch)
            if 1 not in v.shape:          # softmax(QK^T/√E): row by row, over the last axis (torch's dim=-1)
                k = sp.Dummy("k", integer=True)
                out = sp.exp(v.expr) / sp.Sum(sp.exp(v.expr.xreplace({COL: k})), (k, 0, v.shape[1] - 1))
                return Val(out, v.shape)
            column = v.shape[1] == 1
            n = v.shape[0] if column else v.shape[1]
            entry = v.expr if column else v.expr.xreplace({COL: ROW})
            k = sp.Dummy("k", integer=True)
            out = sp.exp(entry) / sp.Sum(sp.exp(entry.xreplace({ROW: k})), (k, 0, n - 1))
            return Val(out if column else out.xreplace({ROW: COL}), v.shape)
        if func == "trace":
            if v.is_scalar:
                return v
            v = self.square(v, "\\operatorname{tr}", node)
            if _is_eye(v):
                self.fail("the trace of I needs its size: write I_n", node)
            k = sp.Dummy("k", integer=True)
            return Val(sp.Sum(v.expr.xreplace({ROW: k, COL: k}), (k, 0, v.shape[0] - 1)))
        if func in ("det", "logdet"):
            return self.determinant(v, node, log=func == "logdet")
        if func == "log" and sub is None and v.is_scalar and isinstance(v.expr, (MF.det, MF.det_of_entries)):
            return Val((MF.logdet if isinstance(v.expr, MF.det) else MF.logdet_of_entries)(*v.expr.args))
        if func == "vec":
            self.fail("vec(...) is not supported in answers", node)
        f = FUNCTIONS.get(func)
        if f is None:
            self.fail(f"the function {func} is not supported", node)
        if func == "log" and sub is not None:
            b = self.scalar(sub)
            f = lambda a, b=b: sp.log(a) / sp.log(b)  # noqa: E731
        derivative = DERIVATIVES.get(func) if primes else None
        if primes > 1 or (primes and derivative is None):
            self.fail(f"{func}{chr(39) * primes} is not supported", node)
        g = derivative or f
        if v.is_scalar:
            try:
                check_call(func, [v.expr])    # exp(exp(exp(exp(10)))) overflows every float
            except ExpressionError as exc:
                self.fail(exc.message, node)
            return Val(g(v.expr))
        if is_literal(v):
            return Val(v.expr.applyfunc(g), v.shape)
        return Val(g(v.expr), v.shape)

    def _is_transpose(self, arg, matrix=False):
        r"""^T, ^\top, ^{\mathsf T}: T when no size or tensor is called T, or when what it is on is a
        matrix or vector (``matrix``): a power of a matrix is not read, so A^T there is Aᵀ even where the
        question calls a scalar T (the trace of ∂tr(AX)/∂X)."""
        if isinstance(arg, R.Word) and arg.text == "T":
            return True
        return isinstance(arg, R.Name) and arg.letters == ["T"] and not arg.scripts and \
            (matrix or not self.ctx.declared("T"))

    def power(self, v, exponent_node, node):
        if self._is_transpose(exponent_node, matrix=not v.is_scalar):
            return _transpose(v)
        if isinstance(exponent_node, R.Bin) and exponent_node.op == "implicit" \
                and isinstance(exponent_node.left, R.Word) and exponent_node.left.text == "circ":
            e = self.scalar(exponent_node.right, "an exponent")        # (...)^{\circ 2}: entry by entry
            if not (e.is_Integer and abs(e) <= MAX_EXPONENT):
                self.fail("an entrywise power is a whole number", exponent_node)
            return Val(v.expr ** e, v.shape) if not is_literal(v) else Val(v.expr.applyfunc(lambda a: a ** e),
                                                                           v.shape)
        inverse = _inverse_power(exponent_node, self)
        if inverse and not v.is_scalar:
            v = self.inverse(v, node)
            return _transpose(v) if inverse == "-T" else v
        if inverse == "-T":
            self.fail("^{-T} of a number", exponent_node, ShapeMismatch)
        if v.is_scalar and v.expr == sp.E:
            exponent = self.value(exponent_node)
            if isinstance(exponent, Val) and not exponent.is_scalar:   # e^x of a vector: exp entry by entry,
                return self.apply_function("exp", [exponent_node], node)  # as the statements write softplus
        e = self.scalar(exponent_node, "an exponent")
        if e.is_number:
            if not e.is_finite or abs(e) > MAX_EXPONENT:
                self.fail(f"exponent larger than {MAX_EXPONENT}", exponent_node)
            if v.is_scalar:
                try:
                    check_power(v.expr, e)    # also (sqrt(2)*10^59)^1000, which is no rational
                except ExpressionError as exc:
                    self.fail(exc.message, node)
            if v.is_scalar and v.expr == 0 and e.is_negative:
                self.fail("division by zero", node)
        if not v.is_scalar and not _is_eye(v) and e.is_Integer and e >= 2 and not _is_square(v.shape):
            # h_next^2 of an N × m state, (1 - h^2) of a vector: no matrix power exists, so it is the
            # entries' (rnn_step_backward's 1 - next_h**2), as a course means it; a square matrix stays refused
            return Val(v.expr ** e, v.shape) if not is_literal(v) else Val(v.expr.applyfunc(lambda a: a ** e), v.shape)
        if not v.is_scalar:
            self.fail("a power of a square matrix (write ^{\\circ 2} for entries)", node, ShapeMismatch)
        return Val(v.expr ** e)

    # Matrix functions -------------------------------------------------------------
    def declared_matrix(self, tensor, node):
        """The Val of a declared matrix (its entry at ROW, COL)."""
        return Val(tensor.base[ROW, COL], tuple(tensor.shape))

    def square(self, v, what, node):
        """``v`` as a square matrix (symbolic entries); a one-line error for anything else."""
        if v.is_scalar:
            self.fail(f"{what} of a number: it takes a square matrix", node, ShapeMismatch)
        if _is_eye(v):
            return v
        v = as_symbolic(v)
        if not equal_size(*v.shape):
            self.fail(f"{what} of a {_shape(v.shape)} {'vector' if 1 in v.shape else 'matrix'}: it takes a "
                      f"square matrix", node, ShapeMismatch)
        return v

    def whole(self, v):
        """The declared matrix (its ``IndexedBase``) that ``v`` is, or its transpose; else None."""
        e = v.expr
        if isinstance(e, sp.Indexed) and not isinstance(e, MF.InverseEntry) and len(e.indices) == 2 \
                and set(e.indices) == {ROW, COL} and self.ctx.tensor(e.base.label.name) is not None:
            return e.base, e.indices == (COL, ROW)
        return None, False

    def inverse(self, v, node):
        """X⁻¹: for a declared matrix the engine's own X^{-1} (so the two sides can agree
        symbolically); for any other square matrix an entry of its inverse, evaluated numerically."""
        if is_literal(v) and v.shape[1] == v.shape[2]:
            self.small(v, node)
            if v.expr.det() == 0:
                self.fail("the inverse of a singular matrix", node)
            return Val(v.expr.inv(), v.shape)
        v = self.square(v, "an inverse", node)
        if _is_eye(v):
            return v
        base, transposed = self.whole(v)
        if base is not None:
            inv = MF.inverse_of(base)
            return Val(inv[COL, ROW] if transposed else inv[ROW, COL], v.shape)
        if isinstance(v.expr, MF.InverseEntry) and set(v.expr.indices) == {ROW, COL}:   # (X^{-1})^{-1}
            inner = v.expr.base.matrix
            return Val(inner[v.expr.indices], v.shape)
        body, n = self.entries(v)
        return Val(MF.inverse_entry(*body, n, ROW, COL), v.shape)

    def small(self, v, node):
        """Inverses and determinants of written-out matrices only up to MAX_INVERTED_LITERAL rows (SymPy's
        symbolic det grows factorially)."""
        if v.shape[1] > MAX_INVERTED_LITERAL:
            self.fail(f"the inverse or determinant of a written-out matrix larger than "
                      f"{MAX_INVERTED_LITERAL} × {MAX_INVERTED_LITERAL}", node)

    def entries(self, v):
        """(body, row, col) with the entry of ``v`` in two fresh symbols, and its size."""
        row, col = sp.Dummy("r", integer=True), sp.Dummy("c", integer=True)
        return (v.expr.xreplace({ROW: row, COL: col}), row, col), v.shape[0]

    def determinant(self, v, node, log=False):
        """det M (log det M): the engine's det(X) for a declared matrix or its transpose, else numeric."""
        what = "\\log\\det" if log else "\\det"
        if not v.is_scalar and not is_literal(v) and _is_eye(v):
            return Val(sp.Integer(0 if log else 1))
        if is_literal(v) and v.shape[1] == v.shape[2]:
            self.small(v, node)
            d = v.expr.det()
            return Val(sp.log(d) if log else d)
        v = self.square(v, what, node)
        base, _ = self.whole(v)
        if base is not None:
            return Val((MF.logdet if log else MF.det)(base))
        body, n = self.entries(v)
        return Val((MF.logdet_of_entries if log else MF.det_of_entries)(*body, n))

    # Derivative fractions -----------------------------------------------------------
    def derivative(self, num, den, node):
        """∂l/∂y on the right side of a chain-rule answer is the given upstream gradient."""
        top, bottom = partial_arg(num), partial_arg(den)
        ctx = self.ctx
        if ctx.upstream is not None and isinstance(top, R.Name) and _plain_name(top) in ctx.losses \
                and isinstance(bottom, R.Name):
            name = _plain_name(bottom)
            if name in ctx.upstream_of or _stem(name, ctx):
                return self.v_Name(R.Name(bottom.pos, [ctx.upstream.name], bottom.scripts))
        self.fail("a derivative on the right side is not understood (write it out)", node)

    # Names ------------------------------------------------------------------------
    def v_Name(self, node):
        segments = self.segments(node.letters)
        vals = []
        for k, seg in enumerate(segments):
            scripts = node.scripts if k == len(segments) - 1 else []
            vals.append(self.name(seg, scripts, node))
        out = vals[0]
        for v in vals[1:]:
            out = self.matmul(out, v, node)
        return out

    def segments(self, letters):
        """Split a run of letters into declared names (longest first) and single letters."""
        if len(letters) == 1:
            return letters
        out, k = [], 0
        while k < len(letters):
            for m in range(len(letters), k, -1):
                cand = "".join(letters[k:m])
                if m - k == 1 or self.ctx.declared(cand) or cand in self.ctx.bound or cand in self.ctx.free:
                    out.append(cand)
                    k = m
                    break
        return out

    def name(self, name, scripts, node):
        ctx = self.ctx
        scripts = list(scripts)
        # A script that completes a declared name: W_x -> Wx, W^{(1)} -> W1, x_t -> x_t.
        name, scripts = split_name(name, scripts, ctx)
        if ":" in name and not ctx.declared(name):
            # \hat y, \bar x: the accented letter as the identifier a problem gives it (yhat, xbar)
            accent, letter = name.split(":", 1)
            if ctx.declared(letter + accent):
                name = letter + accent
        transpose = primes = 0
        power = None
        groups, time_groups = [], []
        own = ctx.tensor(name)
        is_array = own is not None and len(own.shape) >= 1
        for kind, arg in scripts:
            if kind == "'":
                primes += 1
            elif kind == "^" and self._is_transpose(arg, matrix=is_array and not groups):
                transpose += 1
            elif kind == "^" and isinstance(arg, R.Word) and arg.text == "'":
                primes += 1
            elif kind == "^" and isinstance(arg, R.Tuple) and arg.paren == "script":
                time_groups += [g.body for g in arg.items if isinstance(g, R.Group)]
            elif kind == "^" and isinstance(arg, R.Group) and arg.paren in ("(", "<", "["):
                time_groups.append(arg.body)
            elif kind == "^":
                if power is not None:
                    self.fail("a second superscript here is not understood", arg)
                power = arg
            elif kind == "_":
                groups.append(script_items(arg))
            elif kind == "[":
                groups.append(list(arg))
        if primes and name + "'" * primes in ctx.bound and not groups and not time_groups and power is None:
            return Val(ctx.bound[name + "'" * primes] + ctx.base)          # s' bound by \sum_{s'=1}^{n}
        tensor = ctx.tensor(name)
        if primes == 1 and tensor is not None and tensor.rank in (1, 2):
            transpose, primes = transpose + 1, 0          # A' (as in MATLAB): the transpose
        if primes:
            self.fail(f"{name}{chr(39) * primes} is not declared{_declared_hint(ctx)}", node, UnknownName)
        inverse = _inverse_power(power, self)
        if inverse and tensor is not None and len(tensor.shape) == 2:
            if _script_before(scripts, "_", power):
                # X_{qp}^{-1} reads as 1/X_{qp} as often as (X^{-1})_{qp}: refuse rather than guess
                self.fail(f"{name}_{{..}}^{{-1}} is ambiguous: write ({name}^{{-1}})_{{..}} for an entry of the "
                          f"inverse, or 1/{name}_{{..}}", power)
            if time_groups:
                self.fail(f"the inverse of {name} takes no time step", power)
            value = self.inverse(self.declared_matrix(tensor, node), node)
            if inverse == "-T":
                value = _transpose(value)
            if groups:
                value = self.index_into(value, [i for g in groups for i in g], node)
            return _transpose(value) if transpose % 2 else value
        value = self.entry(name, time_groups, groups, node)
        if transpose % 2:
            value = _transpose(value)
        if power is not None:
            if isinstance(power, R.Word) and power.text == "circ":
                self.fail("write an entrywise power as ^{\\circ 2}", power)
            if isinstance(power, R.Bin) and power.op == "implicit" and isinstance(power.left, R.Word) \
                    and power.left.text == "circ":
                e = self.scalar(power.right)
                value = Val(value.expr ** e, value.shape)
            else:
                value = self.power(value, power, node)
        return value

    def entry(self, name, time_groups, groups, node):
        ctx = self.ctx
        flat = [i for g in groups for i in g]
        if name in ctx.constants and not flat and not time_groups:
            return Val(ctx.constants[name])              # the sheet's abbreviation τ_1 = tanh(7/10)
        # a bare x is the question's size x, if it declares one; x_n is still the alias
        if name in ctx.aliases and not time_groups and ctx.tensor(name) is None \
                and (flat or ctx.size(name) is None):
            return self.alias(ctx.aliases[name], flat, node)
        if name in ctx.definitions and not time_groups and ctx.tensor(name) is None:
            return self.defined(ctx.definitions[name], flat, node)
        # Sizes, bound and free indices, constants.
        if not time_groups and not flat:
            if name in ctx.bound or name in ctx.free:
                return Val(ctx.index_symbol(name, node.pos))
            if ctx.size(name) is not None:
                return Val(ctx.size(name))
        tensor = ctx.tensor(name)
        if tensor is None:
            plural = ctx.tensor(name + "s")
            if plural is not None and plural.shape:
                return self.indexed(plural, time_groups + flat, node, sequence=True)
            if time_groups or (flat and len(flat) >= 1 and _is_time(flat[0])):
                resolved = self.time_step(name, time_groups, flat, node)
                if resolved is not None:
                    return resolved
            if name == "delta" and flat:
                return self.kronecker(flat, node)
            if name == "I" and len(flat) <= 1:               # the identity, I or I_n
                if not flat:
                    return Val(sp.KroneckerDelta(ROW, COL), EYE)
                n = self.scalar(flat[0], "the size of I")
                if not (n.free_symbols <= set(ctx.scope.sizes.values()) and (n.is_Integer or not n.is_number)) \
                        or n.is_Integer and not 1 <= n <= MAX_LITERAL_SIZE:
                    self.fail(f"I_n takes a size (a number from 1 to {MAX_LITERAL_SIZE}, or a declared size)", node)
                return Val(sp.KroneckerDelta(ROW, COL), (n, n))
            if name in ("e",) and not flat and not time_groups:
                return Val(sp.E)
            if name == "pi" and not flat:
                return Val(sp.pi)
            if not flat and not time_groups and len(name) == 1 or name in ("ell",):
                sym = ctx.index_symbol(name, node.pos)
                if sym is not None:
                    return Val(sym)
            self.fail(f"'{_display(name)}' is not declared in this problem{_declared_hint(ctx)}", node, UnknownName)
        indices = time_groups + flat
        if not tensor.shape:
            if indices:
                resolved = self.time_step(name, time_groups, flat, node)
                if resolved is not None:
                    return resolved
                self.fail(f"'{name}' is a scalar; it takes no index", node)
            return Val(tensor.base)
        if (time_groups and len(indices) > tensor.rank) or self._unbound_time(time_groups + flat[:1]):
            resolved = self.time_step(name, time_groups, flat, node)
            if resolved is not None:
                return resolved
        return self.indexed(tensor, indices, node)

    def alias(self, alias, flat, node):
        """The question's own name for part of a tensor (``x_n`` for X[n, :]): the student's subscript
        gives the alias's parameters, then the indices of its ':' axes."""
        tensor = self.ctx.tensor(alias.tensor)
        if tensor is None:
            self.fail(f"'{alias}' stands for '{alias.tensor}', which this question does not declare", node)
        if len(flat) < len(alias.params):
            self.fail(f"'{alias}' needs its index ({', '.join(alias.params)})", node)
        given, rest = list(flat[:len(alias.params)]), list(flat[len(alias.params):])
        if alias.pattern[0][0] == "all":                  # a column of a matrix: u_o = U[:, o]
            kind, what = alias.pattern[1]
            fixed = given[what] if kind == "param" else R.Num(node.pos, what)
            if len(rest) > 1:
                self.fail(f"'{alias}' is a column: it takes one more index", node)
            if rest:
                return self.indexed(tensor, [rest[0], fixed], node)
            column = self.index_value(fixed) - self.ctx.base
            return Val(tensor.base[ROW, column], (tensor.shape[0], sp.Integer(1)))
        indices = []
        for kind, what in alias.pattern:
            if kind == "param":
                indices.append(given[what])
            elif kind == "num":
                indices.append(R.Num(node.pos, what))
            elif rest:
                indices.append(rest.pop(0))
            else:
                break
        if rest or any(kind != "all" for kind, _ in alias.pattern[len(indices):]):
            self.fail(f"'{alias}' takes at most {len(alias.pattern) - sum(k != 'all' for k, _ in alias.pattern)}"
                      " more ind" + "ices", node)
        return self.indexed(tensor, indices, node)

    def defined(self, intermediate, flat, node):
        """A name the sheet defines (ŷ, P, Y): its definition at the student's indices, or the vector or
        matrix of it over the axes left unindexed."""
        shape = intermediate.shape
        if len(flat) > len(shape):
            self.fail(f"'{intermediate.tex}' has {len(shape)} ax{'i' if len(shape) == 1 else 'e'}s but {len(flat)} "
                      "indices are given", node)
        values = []
        for i, size in zip(flat, shape):
            v = self.index_value(i) - self.ctx.base
            values.append(v)
            if v in self.ctx.bound.values():
                self.ctx.inferred.setdefault(v, size)
        rest = shape[len(values):]
        if len(rest) > 2:
            self.fail(f"'{intermediate.tex}' has {len(shape)} axes: give its indices", node)
        placeholders = (ROW,) if len(rest) == 1 else (ROW, COL)
        value = intermediate.at(tuple(values) + placeholders[:len(rest)])
        if not rest:
            return Val(value)
        return Val(value, (rest[0], sp.Integer(1)) if len(rest) == 1 else tuple(rest))

    def _unbound_time(self, groups):
        """A time index t (t - 1, ...) where t is not summed over nor an index of the answer."""
        return any(time_offset(g) is not None and "t" not in self.ctx.bound and "t" not in self.ctx.free
                   and "T" not in self.ctx.bound and "t" not in self.ctx.question_indices for g in groups)

    def time_step(self, name, time_groups, flat, node):
        """h_{t-1} -> hp, h_{t-2} -> hpp, x_t -> x, a^{<t>} -> the state's update."""
        ctx = self.ctx
        groups = list(time_groups) or flat[:1]
        rest = flat if time_groups else flat[1:]
        if len(groups) != 1:
            return None
        offset = time_offset(groups[0])
        if offset is None:
            return None
        if ctx.state is not None and name == ctx.state[0].name:
            if rest:
                return None
            if offset == -1:
                return Val(ctx.state[0])
            if offset == 0:
                return Val(ctx.state[1])
            return None
        target = {0: name, -1: name + "p", -2: name + "pp"}.get(offset)
        tensor = ctx.tensor(target) if target else None
        if tensor is None:
            return None
        if not tensor.shape:
            return Val(tensor.base) if not rest else None
        return self.indexed(tensor, rest, node)

    def kronecker(self, flat, node):
        if len(flat) == 1 and isinstance(flat[0], R.Name) and len(flat[0].letters) == 2:
            flat = [R.Name(flat[0].pos, [c]) for c in flat[0].letters]
        if len(flat) == 1 and isinstance(flat[0], R.Bin) and flat[0].op == "implicit" \
                and all(isinstance(n, (R.Name, R.Num, R.Group)) and not isinstance(getattr(n, "body", None), R.Bin)
                        for n in (flat[0].left, flat[0].right)):
            # \delta_{i p}, \delta_{q {y}_{n}}: two indices separated by a space (one may be a class label)
            flat = [flat[0].left, flat[0].right]
        if len(flat) != 2:
            self.fail("\\delta takes two indices, e.g. \\delta_{ij}", node)
        a, b = (self.index_value(i) for i in flat)
        return Val(sp.KroneckerDelta(a, b))

    def indexed(self, tensor, indices, node, sequence=False):
        rank = tensor.rank
        if len(indices) == 1 and rank > 1 and isinstance(indices[0], (R.Name, R.Num)) \
                and not getattr(indices[0], "scripts", None):
            # W_{ij}: one index per letter (or digit).
            chars = indices[0].letters if isinstance(indices[0], R.Name) else list(indices[0].text)
            if len(chars) == rank and "." not in chars:
                indices = [R.Name(indices[0].pos, [c]) if c.isalpha() else R.Num(indices[0].pos, c)
                           for c in chars]
        if len(indices) > rank:
            self.fail(f"'{tensor.name}' has {rank} ax{'i' if rank == 1 else 'e'}s but {len(indices)} "
                      f"indices are given", node)
        lead = rank - len(indices)
        if indices and lead and all(sp.sympify(n) == 1 for n in tensor.shape[:lead]):
            # K_{0,0} for a 1 × 1 × 2 × 2 kernel (D2L): the indices of the axes that are not of size 1
            indices = [R.Num(node.pos, str(self.ctx.base))] * lead + list(indices)
        values = []
        for i, size in zip(indices, tensor.shape):
            v = self.index_value(i) - self.ctx.base
            values.append(v)
            if v in self.ctx.bound.values():
                self.ctx.inferred.setdefault(v, size)
        rest = tensor.shape[len(values):]
        if len(rest) > 2:
            self.fail(f"'{tensor.name}' has {rank} axes: give its indices", node)
        if not rest:
            return Val(tensor.base[tuple(values)])
        if len(rest) == 1:
            return Val(tensor.base[tuple(values) + (ROW,)], (rest[0], sp.Integer(1)))
        return Val(tensor.base[tuple(values) + (ROW, COL)], tuple(rest))

    # Scripts on groups and calls ----------------------------------------------------
    def apply_scripts(self, v, scripts, node):
        for kind, arg in scripts:
            if kind == "^":
                v = self.power(v, arg, node)
            elif kind == "'":
                self.fail("a prime here is not understood", node)
            else:
                items = script_items(arg) if kind == "_" else list(arg)
                v = self.index_into(v, items, node)
        return v

    def index_into(self, v, items, node):
        """(W x)_i, \\operatorname{softmax}(z)_i: an entry of a vector or matrix value."""
        if v.is_scalar:
            self.fail("a subscript on a number", node)
        v = as_symbolic(v)
        values = [self.index_value(i) - self.ctx.base for i in items]
        rows, cols = v.shape
        if len(values) == 2:
            return Val(v.at(values[0], values[1]))
        if len(values) == 1 and (cols == 1 or rows == 1):
            return Val(v.at(values[0], 0) if cols == 1 else v.at(0, values[0]))
        if len(values) == 1:              # dy[i] of a matrix: its row i (as PyTorch indexes), a column vector
            return Val(v.expr.xreplace({ROW: values[0]}).xreplace({COL: ROW}), (cols, sp.Integer(1)))
        self.fail("give one index for a vector, two for a matrix", node)


#: The shape of an identity I written without its size: it takes the shape of what it meets.
EYE = ("identity",)


def _is_square(shape):
    """Whether a shape is square: its two sizes the same (as written; N and m are different sizes)."""
    return len(shape) == 2 and sp.simplify(sp.sympify(shape[0]) - sp.sympify(shape[1])) == 0


def _is_eye(v):
    return v.shape == EYE


def _sized_eye(v, other):
    """``v`` with the shape of ``other`` when ``v`` is an I without a size."""
    if not _is_eye(v) or _is_eye(other):
        return v
    other = as_symbolic(other)
    return Val(v.expr, other.shape)


def _norm_order(script):
    """'1', '2' or 'F' from a norm's subscript, else None."""
    while isinstance(script, R.Group) and script.paren == "{" and not script.scripts:
        script = script.body
    if isinstance(script, R.Num) and script.text in ("1", "2"):
        return script.text
    if isinstance(script, R.Name) and not script.scripts and "".join(script.letters) in ("F", "Fro", "fro"):
        return "F"
    if isinstance(script, R.Word) and script.text.strip() in ("F", "Fro", "fro"):
        return "F"
    return None


def _inverse_power(power, resolver):
    """'-1' for ^{-1}, '-T' for ^{-T} / ^{-\\top} (the inverse transposed), else None."""
    if power is None:
        return None
    if _minus_one(power):
        return "-1"
    while isinstance(power, R.Group) and power.paren == "{" and not power.scripts:
        power = power.body
    if isinstance(power, R.Neg) and resolver._is_transpose(power.arg):
        return "-T"
    return None


def _script_before(scripts, kind, script):
    """Whether a script of ``kind`` comes before ``script`` in ``scripts``."""
    for k, arg in scripts:
        if arg is script:
            return False
        if k == kind:
            return True
    return False


def is_literal(v):
    """Whether ``v`` is a matrix written out entry by entry."""
    return isinstance(v.shape, tuple) and len(v.shape) == 3 and v.shape[0] == "literal"


def as_symbolic(v):
    """A literal matrix as an expression in (ROW, COL)."""
    if _is_eye(v):
        raise MeaningError("the size of I is not known here: write I_n")
    if not is_literal(v):
        return v
    _, rows, cols = v.shape
    m = v.expr
    pieces = [(m[r, c], sp.And(sp.Eq(ROW, r), sp.Eq(COL, c))) for r in range(rows) for c in range(cols)]
    return Val(sp.Piecewise(*pieces, (0, True)), (sp.Integer(rows), sp.Integer(cols)))


def _collapse(v):
    if v.shape is not None and v.shape[0] == 1 and v.shape[1] == 1:
        return Val(v.expr.xreplace({ROW: 0, COL: 0}))
    return v


def _transpose(v):
    if v.is_scalar or _is_eye(v):
        return v
    if is_literal(v):
        return Val(v.expr.T, ("literal", v.shape[2], v.shape[1]))
    return Val(v.expr.xreplace({ROW: COL, COL: ROW}), (v.shape[1], v.shape[0]))


def equal_size(a, b):
    """Whether two sizes are equal for every value of their symbols."""
    d = sp.simplify(sp.sympify(a) - sp.sympify(b))
    return d == 0


def _same_shape(a, b):
    return equal_size(a[0], b[0]) and equal_size(a[1], b[1])


def _shape(shape):
    return " × ".join(str(s) for s in shape[-2:])


def script_items(arg):
    """The items of a subscript or tuple (a single item otherwise)."""
    if isinstance(arg, R.Tuple) and arg.paren in (",", "script"):
        return [i.body if isinstance(i, R.Group) and i.paren in ("(", "<") and arg.paren == "script" else i
                for i in arg.items]
    return [arg]


def is_partial(node):
    """Whether ``node`` is ∂x, ∂x_i or dx: one side of a derivative written as a fraction."""
    if isinstance(node, R.Partial):
        return True
    if isinstance(node, R.Bin) and node.op == "implicit" and isinstance(_leftmost(node), R.Partial):
        return True                             # ∂x_i, and ∂ aᵀXb: the product read from the left
    if isinstance(node, R.Name) and node.letters[0] == "d" and len(node.letters) > 1:
        return True
    if isinstance(node, R.Bin) and node.op == "implicit" and isinstance(node.left, R.Word) \
            and node.left.text == "d":
        return True
    return False


def _leftmost(node):
    """The first factor of a product written side by side (∂ in ∂ a^T X b)."""
    while isinstance(node, R.Bin) and node.op == "implicit":
        node = node.left
    return node


def partial_arg(node):
    """What ``node`` (see ``is_partial``) differentiates: x in ∂x."""
    if isinstance(node, R.Partial):
        return node.arg
    if isinstance(node, R.Bin) and isinstance(node.left, R.Partial):
        return R.Bin(node.pos, "implicit", node.left.arg, node.right)
    if isinstance(node, R.Bin) and node.op == "implicit" and isinstance(_leftmost(node), R.Partial):
        return R.Bin(node.pos, "implicit", partial_arg(node.left), node.right)
    if isinstance(node, R.Name):
        return R.Name(node.pos, node.letters[1:], node.scripts)
    if isinstance(node, R.Bin):
        return node.right
    return node


def _plain_name(node):
    return "".join(node.letters)


def _stem(name, ctx):
    """y, h: a name whose plural or whose self is the question's output."""
    return any(name == n or name + "s" == n for n in ctx.upstream_of)


def _is_time(node):
    return time_offset(node) is not None and isinstance(node, (R.Name, R.Bin)) and "t" in _letters(node)


def _letters(node):
    if isinstance(node, R.Name):
        return "".join(node.letters)
    if isinstance(node, R.Bin):
        return _letters(node.left) + _letters(node.right)
    return ""


def time_offset(node):
    """0 for t, -1 for t-1, -2 for t-2; None otherwise."""
    if isinstance(node, R.Name) and node.letters in (["t"], ["T"]) and not node.scripts:
        return 0
    if isinstance(node, R.Bin) and node.op in ("+", "-") and isinstance(node.left, R.Name) \
            and node.left.letters in (["t"], ["T"]) and isinstance(node.right, R.Num) and "." not in node.right.text:
        k = int(node.right.text)
        return -k if node.op == "-" else k
    return None


def _display(name):
    """How a declared name is shown to a student. Hook for display names (issue 13: ``tex: W_x`` on a
    declaration): once declarations carry them, return the display form here and in _declared_hint."""
    return name


def _declared_hint(ctx):
    names = sorted(set(ctx.scope.sizes) | set(getattr(ctx.scope, "tensors", {}))
                   | set(getattr(ctx.scope, "layer_specs", {})))
    parent = getattr(ctx.scope, "parent", None)
    while parent is not None:
        names = sorted(set(names) | set(parent.tensors) | set(parent.layer_specs))
        parent = parent.parent
    if ctx.upstream is not None:
        names.append(ctx.upstream.name)
    names += [str(a) for a in ctx.aliases.values()]
    names += list(dict.fromkeys(_defined_hint(d) for d in ctx.definitions.values()))
    return f" (the question knows: {', '.join(_display(n) for n in names)})" if names else ""


def _defined_hint(intermediate):
    r"""How the hint shows a name the sheet defines: its definition as the sheet states it.

    >>> from types import SimpleNamespace as D
    >>> _defined_hint(D(name="yhat", tex=r"\hat{y}", why=r"$\hat{y} = \operatorname{softmax}(s)$, the predicted ..."))
    '\\hat{y} = \\operatorname{softmax}(s)'
    """
    parts = intermediate.why.split("$")
    return parts[1] if len(parts) >= 3 and parts[1].strip() else intermediate.tex


def _describe(node):
    return type(node).__name__.lower()


FUNCTIONS = {"sigmoid": sigmoid, "tanh": sp.tanh, "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "relu": relu,
             "step": lambda a: sp.Heaviside(a, 0), "sign": sp.sign, "floor": sp.floor, "ceiling": sp.ceiling,
             "sech": sp.sech, "cosh": sp.cosh, "sinh": sp.sinh, "erf": sp.erf}
DERIVATIVES = {f.name: f.derivative for f in FUNCTION_RULES if f.derivative is not None}


def _minus_one(power):
    """Whether a superscript reads -1 (as in X^{-1}).

    >>> from symderive.checking import reader as R
    >>> [_minus_one(R.read(t)[0].items[0].scripts[0][1]) for t in ("X^{-1}", "X^{2}", "X^{-2}")]
    [True, False, False]
    """
    while isinstance(power, R.Group) and power.paren == "{" and not power.scripts:
        power = power.body
    return isinstance(power, R.Neg) and isinstance(power.arg, R.Num) and power.arg.text == "1"
