"""Read expressions from problem files without ``eval``: a whitelist over Python's ``ast``.

Allowed: numbers (decimals become exact rationals), declared names, + − × ÷ and
powers with small exponents, subscripts of declared tensors, calls of known
functions, ``Sum(body, (j, lo, hi))``, and (where a layer is being declared)
one call of the layer library. Everything else is refused with the column
where it starts. Indices in the file are in the file's index base; they are
converted to the engine's 0-based indices while reading.
"""
import ast
import re
from dataclasses import dataclass, field

import sympy as sp

from .errors import ExpressionError, ShapeError
from .functions import KNOWN_CONSTANTS, KNOWN_FUNCTIONS
from .layers import formula_kinds
from .matrix_functions import MATRIX_CALLS

MAX_LENGTH = 2000          # characters in one expression
MAX_DEPTH = 40             # nesting of the syntax tree
MAX_EXPONENT = 1000        # |n| in x**n
MAX_DIGITS = 60            # digits in one number literal
MAX_RESULT_DIGITS = 1000   # digits of a number computed from literals (e.g. (10**999)**999)


@dataclass
class Scope:
    """Names visible to an expression: sizes, tensors (and built layers), indices.

    ``resolve`` is called for a name not found here (lazy layers, outer scopes).
    """
    sizes: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)
    indices: dict = field(default_factory=dict)
    resolve: object = None
    base: int = 0

    def tensor(self, name):
        if name in self.tensors:
            return self.tensors[name]
        return self.resolve(name) if self.resolve else None

    def child(self, **indices):
        return Scope(self.sizes, self.tensors, {**self.indices, **indices}, self.resolve, self.base)


def parse(text, scope, *, layer_name=None):
    """Parse ``text``; with ``layer_name``, a top-level layer-library call builds that layer.

    >>> x = __import__('symderive.tensors', fromlist=['Tensor']).Tensor('x', (3,))
    >>> parse("2*x[1] + 0.5", Scope(tensors={'x': x}))
    2*x[1] + 1/2
    >>> parse("__import__('os')", Scope())
    Traceback (most recent call last):
    ...
    symderive.errors.ExpressionError: line 1, column 1: '__import__' is not a declared name or known function
    """
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        raise ExpressionError(f"expected an expression, got {type(text).__name__}")
    text = str(text)
    from .latex_input import is_latex, parse_latex   # LaTeX is accepted wherever an expression is
    if is_latex(text):
        return parse_latex(text, scope)
    tree = syntax_tree(text)
    return Reader(text.strip(), scope, layer_name).read(tree.body, depth=0)


def syntax_tree(text, what="expression"):
    """Python's syntax tree of ``text`` (stripped), refused beyond MAX_LENGTH characters; syntax
    errors carry their line and column. (Reading the tree is the whitelist's job.)"""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"{what} is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", line=exc.lineno, column=exc.offset) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError(f"{what} is nested too deeply") from None


class Reader:
    def __init__(self, text, scope, layer_name):
        self.text, self.scope, self.layer_name = text, scope, layer_name

    def fail(self, node, message, error=ExpressionError):
        raise error(message, line=getattr(node, "lineno", None),
                    column=getattr(node, "col_offset", -1) + 1)

    def read(self, node, depth):
        if depth > MAX_DEPTH:
            self.fail(node, f"expression is nested deeper than {MAX_DEPTH} levels")
        method = getattr(self, "read_" + type(node).__name__, None)
        if method is None:
            self.fail(node, f"{_describe(node)} is not allowed in an expression")
        return method(node, depth + 1)

    # Literals -----------------------------------------------------------------
    def read_Constant(self, node, depth):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(node, f"{value!r} is not a number")
        literal = ast.get_source_segment(self.text, node) or repr(value)
        if len(literal.replace("_", "")) > MAX_DIGITS:
            self.fail(node, f"number literal longer than {MAX_DIGITS} digits")
        if isinstance(value, int):
            return sp.Integer(value)
        try:
            return sp.Rational(literal.replace("_", ""))   # 0.1 is exactly 1/10
        except (TypeError, ValueError):
            return sp.Rational(repr(value))

    def read_UnaryOp(self, node, depth):
        operand = self.read(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        self.fail(node, f"operator {type(node.op).__name__} is not allowed")

    def matrices(self):
        """The reader of whole-matrix expressions (``A @ x``, ``trace(...)``): one per expression,
        so that the indices its products sum over are all different."""
        if getattr(self, "_matrices", None) is None:
            from .matrix_functions import MatrixReader
            self._matrices = MatrixReader(self)
        return self._matrices

    def _is_matrix_power(self, node):
        tensor = self.scope.tensor(node.left.id) if isinstance(node.left, ast.Name) else None
        return isinstance(node.op, ast.Pow) and tensor is not None and tensor.rank == 2

    def read_BinOp(self, node, depth):
        if isinstance(node.op, ast.MatMult) or self._is_matrix_power(node):
            return self.matrices().whole(node, depth)        # x.T A x is a number; A x needs an index
        left, right = self.read(node.left, depth), self.read(node.right, depth)
        op = type(node.op)
        if op is ast.Pow:
            try:
                check_power(left, right)
            except ExpressionError as exc:
                self.fail(node.right if "exponent" in exc.message else node, exc.message)
            return left ** right
        ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
               ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}
        if op not in ops:
            self.fail(node, f"operator {op.__name__} is not allowed (use + - * / **)")
        if op is ast.Div and right == 0:
            self.fail(node.right, "division by zero")
        return ops[op](left, right)

    def read_Tuple(self, node, depth):
        return tuple(self.read(e, depth) for e in node.elts)

    read_List = read_Tuple

    # Names --------------------------------------------------------------------
    def read_Name(self, node, depth):
        name = node.id
        if name in self.scope.indices:
            return self.scope.indices[name] + self.scope.base
        if name in self.scope.sizes:
            return self.scope.sizes[name]
        tensor = self._tensor(node, name)
        if tensor is not None:
            if tensor.shape:
                self.fail(node, f"'{name}' has shape {_shape(tensor.shape)}; index it, e.g. "
                                f"{name}[{', '.join('i' * 1 for _ in tensor.shape)}]")
            return tensor.base
        if name in KNOWN_CONSTANTS:
            return KNOWN_CONSTANTS[name]
        if name in KNOWN_FUNCTIONS or name in formula_kinds() or name in ("Sum", "diff"):
            self.fail(node, f"'{name}' is a function; call it")
        self.fail(node, f"'{name}' is not declared (declare it under sizes, tensors or layers)")

    def _tensor(self, node, name):
        # An error inside a lazily built layer propagates with that layer's own position.
        return self.scope.tensor(name)

    def read_Subscript(self, node, depth):
        if not isinstance(node.value, ast.Name):
            return self.matrices().entry(node, depth)     # (A @ x)[i], inverse(X)[i, j]
        name = node.value.id
        tensor = self._tensor(node.value, name)
        if tensor is None:
            self.fail(node.value, f"'{name}' is not a declared tensor")
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if any(isinstance(p, ast.Slice) for p in parts):
            self.fail(node, "slices are not supported; index every axis")
        if len(parts) != tensor.rank:
            self.fail(node, f"'{name}' has {tensor.rank} ax{'i' if tensor.rank == 1 else 'e'}s "
                            f"(shape {_shape(tensor.shape)}) but {len(parts)} index(es) were given")
        idx = tuple(self.read(p, depth) - self.scope.base for p in parts)
        for part, value, size in zip(parts, idx, tensor.shape):
            if value.is_Integer and size.is_Integer and not 0 <= value < size:
                self.fail(part, f"index {value + self.scope.base} is outside {name}'s axis of "
                                f"size {size} (index base {self.scope.base})")
        return tensor.base[idx]          # a layer's entry stays opaque: y[i], not its definition

    # Calls --------------------------------------------------------------------
    def read_Call(self, node, depth):
        if not isinstance(node.func, ast.Name):
            self.fail(node, "only named functions can be called")
        name = node.func.id
        if name == "Sum":
            return self._sum(node, depth)
        if name == "diff":
            return self._diff(node, depth)
        if name in MATRIX_CALLS and self.scope.tensor(name) is None:
            if name in ("trace", "det", "logdet", "norm"):
                return self.matrices().scalar_call(node, depth)
            return self.matrices().whole(node, depth)
        if name in formula_kinds() and self.layer_name is not None and depth > 1 and name not in KNOWN_FUNCTIONS:
            self.fail(node, f"{name}() builds a layer: declare it as a layer of its own and use its name here")
        whole = self.layer_name is not None and depth == 1 and all(isinstance(a, ast.Name) for a in node.args)
        if name in formula_kinds() and (whole or name not in KNOWN_FUNCTIONS):
            return self._layer(node, depth)   # only a whole value sigmoid(x) is a layer; inside, sigmoid is σ
        if name not in KNOWN_FUNCTIONS:
            self.fail(node, f"'{name}' is not a declared name or known function")
        if node.keywords:
            self.fail(node.keywords[0].value, f"{name}() takes no keyword arguments")
        args = [self.read(a, depth) for a in node.args]
        try:
            check_call(name, args)
            return KNOWN_FUNCTIONS[name](*args)
        except ExpressionError as exc:
            self.fail(node, exc.message)
        except (TypeError, ValueError) as exc:
            self.fail(node, f"{name}(): {exc}")

    def _sum(self, node, depth):
        """Sum(body, (j, lo, hi), ...): j is a new index, lo and hi in the file's index base."""
        if len(node.args) < 2 or node.keywords:
            self.fail(node, "Sum needs a body and at least one limit (j, lo, hi)")
        scope, limits = self.scope, []
        for lim in node.args[1:]:
            if not (isinstance(lim, ast.Tuple) and len(lim.elts) == 3 and isinstance(lim.elts[0], ast.Name)):
                self.fail(lim, "a Sum limit is (index, lower, upper)")
            lo, hi = (Reader(self.text, scope, None).read(e, depth) for e in lim.elts[1:])
            name = lim.elts[0].id
            if name in scope.sizes or scope.tensor(name) is not None:
                self.fail(lim.elts[0], f"'{name}' is already declared; pick another index name")
            idx = sp.Idx(sp.Symbol(name, integer=True), (lo - scope.base, hi - scope.base))
            scope = scope.child(**{name: idx})
            limits.append((idx, lo - scope.base, hi - scope.base))
        body = Reader(self.text, scope, None).read(node.args[0], depth)
        return sp.Sum(body, *reversed(limits))

    def _diff(self, node, depth):
        """diff(f, x[i]): the derivative of f by one entry, kept unevaluated for the proof steps."""
        if len(node.args) != 2 or node.keywords:
            self.fail(node, "diff takes two arguments: diff(expression, x[i])")
        f, target = (self.read(a, depth) for a in node.args)
        if not isinstance(target, (sp.Indexed, sp.Symbol)):
            self.fail(node.args[1], "diff differentiates by one entry of a tensor, e.g. z[x]")
        return sp.Derivative(f, target, evaluate=False)

    def _layer(self, node, depth):
        name = node.func.id
        if self.layer_name is None:
            self.fail(node, f"layer {name}() can only be used to declare a layer under 'layers'")
        kind = formula_kinds()[name]
        builder, positional, keywords = kind.formula, kind.inputs, kind.options
        if len(node.args) > len(positional):
            self.fail(node, f"{name}() takes at most {len(positional)} tensor argument(s): "
                            f"{', '.join(positional)}")
        slots = {}          # tensor argument name -> tensor: a keyword fills its own slot (bias=b without weight)
        for arg, slot in zip(node.args, positional):
            if not isinstance(arg, ast.Name):
                self.fail(arg, f"{name}(): tensor arguments are names of declared tensors or layers")
            tensor = self._tensor(arg, arg.id)
            if tensor is None:
                self.fail(arg, f"'{arg.id}' is not a declared tensor or layer")
            slots[slot] = tensor
        options = {}
        for kw in node.keywords:
            if kw.arg in positional and kw.arg != "input":
                tensor = self._tensor(kw.value, kw.value.id) if isinstance(kw.value, ast.Name) else None
                if tensor is None:
                    self.fail(kw.value, f"{name}(): {kw.arg} must name a declared tensor")
                if kw.arg in slots:
                    self.fail(kw.value, f"{name}(): {kw.arg} is given twice")
                slots[kw.arg] = tensor
                continue
            if kw.arg not in keywords:
                allowed = ", ".join(keywords) or "none"
                self.fail(kw.value if kw.arg else node, f"{name}() has no argument '{kw.arg}' "
                                                        f"(keyword arguments: {allowed})")
            if kw.arg in kind.flags:             # True or False, such as ceil_mode=True
                if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, bool)):
                    self.fail(kw.value, f"{name}(): {kw.arg} is True or False")
                options[kw.arg] = kw.value.value
                continue
            if kw.arg in kind.choices:           # a string of PyTorch's, such as reduction='sum'
                options[kw.arg] = read_choice(self, kw.value, name, kw.arg, kind.choices[kw.arg])
                continue
            value = self.read(kw.value, depth)
            if kw.arg in kind.numbers:           # a real number such as a slope
                if isinstance(value, tuple) or not (value.is_real and value.is_number):
                    self.fail(kw.value, f"{name}(): {kw.arg} must be a number, got {value}")
                options[kw.arg] = value
                continue
            for v in value if isinstance(value, tuple) else (value,):
                if not (v.is_integer or (v.is_Symbol and v.is_integer)):
                    self.fail(kw.value, f"{name}(): {kw.arg} must be an integer or a declared size, got {v}")
            options[kw.arg] = value
        given = [i for i, slot in enumerate(positional) if slot in slots]
        tensors = [slots.get(slot) for slot in positional[:given[-1] + 1]] if given else []
        missing = [slot for slot, tensor in zip(positional, tensors) if tensor is None and slot in kind.required()]
        if missing:
            self.fail(node, f"{name}() needs the tensor argument(s) {', '.join(missing)}")
        try:
            return builder(self.layer_name, *tensors, **options)
        except ShapeError as exc:
            self.fail(node, f"{name}(): {exc.message}", error=ShapeError)
        except TypeError as exc:
            self.fail(node, f"{name}(): {exc}")


def read_choice(reader, node, call, arg, allowed):
    """A string argument of PyTorch's (``reduction='sum'``), one of ``allowed``; anything else,
    including an expression, is refused at its position."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in allowed):
        reader.fail(node, f"{call}(): {arg} is one of " + ", ".join(f"'{a}'" for a in allowed))
    return node.value


def free_index_names(text, scope):
    """Names used as subscripts that are not declared and not bound by a Sum: the free indices.

    >>> from symderive.tensors import Tensor
    >>> sorted(free_index_names("q[x] - Sum(p[i], (i, 1, 3)) + diff(E, z[x])", Scope()))
    ['x']
    """
    if _is_latex(text):
        return {name for _, parts in latex_subscripts(text, scope) for part in parts
                for name in NAME_TOKEN.findall(part) if _undeclared(name, scope)} - latex_bound_names(text)
    tree = syntax_tree(str(text))
    bound = {lim.elts[0].id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Sum"
             for lim in node.args[1:] if isinstance(lim, ast.Tuple) and lim.elts
             and isinstance(lim.elts[0], ast.Name)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            for part in parts:
                for sub in ast.walk(part):
                    if isinstance(sub, ast.Name) and sub.id not in bound and sub.id not in scope.sizes \
                            and sub.id not in scope.indices and scope.tensor(sub.id) is None:
                        names.add(sub.id)
    return names


def parse_equation(text, scope):
    """``lhs == rhs`` (one equation) into two expressions.

    >>> from symderive.tensors import Tensor
    >>> parse_equation("p[1] + p[2] == 1", Scope(tensors={'p': Tensor('p', (2,))}, base=1))
    (p[0] + p[1], 1)
    """
    text = str(text).strip()
    node = syntax_tree(text).body
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
        raise ExpressionError("expected an equation 'left == right'", line=1, column=1)
    reader = Reader(text, scope, None)
    return reader.read(node.left, 0), reader.read(node.comparators[0], 0)


def parse_sign(text, scope):
    """A sign condition on one entry, ``z[1] > 0`` or ``z[3] < 0``: returns (entry, +1 or -1).

    >>> from symderive.tensors import Tensor
    >>> parse_sign("z[2] < 0", Scope(tensors={'z': Tensor('z', (3,))}, base=1))
    (z[1], -1)
    """
    text = str(text).strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", line=exc.lineno, column=exc.offset) from None
    node = tree.body
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.left, ast.Subscript)
            and isinstance(node.comparators[0], ast.Constant) and node.comparators[0].value == 0
            and isinstance(node.ops[0], (ast.Gt, ast.Lt))):
        raise ExpressionError("a given condition is a sign of one entry, e.g. z[1] > 0 or z[3] < 0",
                              line=1, column=1)
    entry = Reader(text, scope, None).read(node.left, depth=0)
    return entry, 1 if isinstance(node.ops[0], ast.Gt) else -1


def check_power(base, exponent):
    """Refuse ``base**exponent`` whose exponent or numeric result is too large to compute or print
    (Python refuses to print integers of more than 4300 digits; SymPy would compute them first).

    >>> check_power(sp.Integer(2), sp.Integer(10))
    >>> check_power(sp.sqrt(2) * 10**59, sp.Integer(1000))
    Traceback (most recent call last):
    ...
    symderive.errors.ExpressionError: the result would have more than 1000 digits
    """
    if exponent.is_number and (not exponent.is_finite or not exponent.is_comparable
                               or abs(exponent) > MAX_EXPONENT):
        raise ExpressionError(f"exponent {exponent} is larger than {MAX_EXPONENT}")
    if not (base.is_number and exponent.is_number) or base == 0:
        return
    if base.is_Rational and exponent.is_Rational:
        digits = float(abs(exponent)) * literal_digits(base)
    else:
        digits = float(abs(sp.N(exponent, 15))) * abs(float(sp.N(sp.log(abs(base), 10), 15)))
    if digits > MAX_RESULT_DIGITS:
        raise ExpressionError(f"the result would have more than {MAX_RESULT_DIGITS} digits")


def check_call(name, args):
    """Refuse ``exp`` of a number whose value has more than MAX_RESULT_DIGITS digits (``exp(exp(exp(10)))``
    overflows every float conversion downstream).

    >>> check_call("exp", [sp.exp(10)])
    Traceback (most recent call last):
    ...
    symderive.errors.ExpressionError: exp(): the result would have more than 1000 digits
    """
    if name in ("exp",) and len(args) == 1 and args[0].is_number:
        real = sp.re(args[0])
        if not real.is_comparable or abs(float(sp.N(real, 15))) / 2.302585 > MAX_RESULT_DIGITS:
            raise ExpressionError(f"{name}(): the result would have more than {MAX_RESULT_DIGITS} digits")


def literal_digits(r):
    """Decimal digits of the larger of numerator and denominator, without printing them."""
    return max(abs(r.p).bit_length(), abs(r.q).bit_length()) * 0.30103 + 1


def _describe(node):
    kinds = {"Attribute": "attribute access ('.')", "Lambda": "lambda", "Compare": "a comparison",
             "BoolOp": "'and'/'or'", "IfExp": "'if'/'else'", "Dict": "a dict", "Set": "a set",
             "ListComp": "a comprehension", "GeneratorExp": "a generator", "Starred": "'*'",
             "JoinedStr": "an f-string", "NamedExpr": "':='", "Await": "'await'"}
    return kinds.get(type(node).__name__, type(node).__name__)


def _shape(shape):
    return "×".join(str(s) for s in shape) or "scalar"


def infer_index_ranges(text, index_names, scope):
    """Ranges of the free indices of a custom layer, read off the tensors they index.

    In ``W[i, j] * x[j]`` with W of shape m×n, i runs over m values. Returns
    {name: size}; a name never used alone as a subscript is missing.
    """
    sizes = {}
    if _is_latex(text):
        for tensor, parts in latex_subscripts(text, scope):
            for part, size in zip(parts, tensor.shape):
                if part.strip() in index_names:
                    sizes.setdefault(part.strip(), size)
        return sizes
    tree = syntax_tree(str(text))
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            tensor = scope.tensor(node.value.id)
            if tensor is None:
                continue
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            for part, size in zip(parts, tensor.shape):
                if isinstance(part, ast.Name) and part.id in index_names:
                    sizes.setdefault(part.id, size)
    return sizes



NAME_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
LATEX_SUBSCRIPT = re.compile(r"(?<![\\A-Za-z])([A-Za-z][A-Za-z0-9]*)_(?:\{([^{}]*)\}|([A-Za-z0-9]))")


def _is_latex(text):
    from .latex_input import is_latex
    return is_latex(text)


def _undeclared(name, scope):
    return name not in scope.sizes and name not in scope.indices and scope.tensor(name) is None


def latex_subscripts(text, scope):
    r"""(tensor, [subscript parts]) for each subscripted declared tensor in LaTeX text.

    >>> from symderive.tensors import Tensor
    >>> [(t.name, parts) for t, parts in latex_subscripts(r"$q_{x} - p_i + \sum_{j} z_{x,j}$",
    ...     Scope(tensors={n: Tensor(n, (3,) * r) for n, r in (("q", 1), ("p", 1), ("z", 2))}))]
    [('q', ['x']), ('p', ['i']), ('z', ['x', 'j'])]
    """
    out = []
    for m in LATEX_SUBSCRIPT.finditer(str(text)):
        tensor = scope.tensor(m.group(1))
        if tensor is not None and tensor.shape:
            out.append((tensor, [p.strip() for p in (m.group(2) if m.group(2) is not None else m.group(3)).split(",")]))
    return out


def latex_bound_names(text):
    r"""Index names bound by ``\sum_{j=...}`` or ``\sum_j`` in LaTeX text.

    >>> sorted(latex_bound_names(r"$\sum_{j=1}^{n} x_j + \sum_k y_k$"))
    ['j', 'k']
    """
    return set(re.findall(r"\\sum_\{?\s*([A-Za-z][A-Za-z0-9]*)", str(text)))
