r"""LaTeX matrix expressions in problem files: ``$\operatorname{tr}(A X^{-1})$``, ``$\log\det\Lambda$``,
``$\frac{1}{2}\|X\theta - y\|_2^2$``, read by the checker's LaTeX reader (no ``eval``) and written in
the file's matrix syntax (``trace(A @ inverse(X))``), which ``matrix_functions`` then reads.

latex2sympy (``latex_input``) multiplies commuting symbols and drops ``^T``, so it cannot read these;
an expression goes this way when it uses a matrix spelling (``MATRIX_SPELLING``).
"""
import re

from .errors import ExpressionError

#: LaTeX that only a matrix expression uses.
MATRIX_SPELLING = re.compile(r"\\operatorname\{(tr|Tr|diag|logdet)\}|\\mathrm\{tr\}|\\text\{tr\}|\\det\b|\\\||"
                             r"\\lVert|\^\{?-1\}?|\^\{?-?(\\top|T)\b|\^\{-?\\top\}|\^\{\\mathsf\{?T|\\odot|\\circ")

_FUNCTIONS = {"trace": "trace", "det": "det", "logdet": "logdet", "diag": "diag", "exp": "exp", "log": "log",
              "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "sqrt": "sqrt"}


def uses_matrices(body):
    r"""Whether a LaTeX body uses a matrix spelling.

    >>> uses_matrices(r"\operatorname{tr}(A X)"), uses_matrices(r"\frac{1}{2} x_{1}^2")
    (True, False)
    """
    return MATRIX_SPELLING.search(body) is not None


def to_matrix_syntax(body, scope):
    r"""The matrix syntax of a LaTeX body, over the scope's declarations.

    >>> from symderive.expressions import Scope
    >>> from symderive.tensors import Tensor
    >>> import sympy as sp
    >>> D = sp.Symbol('D', positive=True, integer=True)
    >>> s = Scope(sizes={'D': D}, tensors={'A': Tensor('A', (D, D)), 'X': Tensor('X', (D, D))})
    >>> to_matrix_syntax(r"\operatorname{tr}(A X^{-1})", s)
    'trace((A @ inverse(X)))'
    >>> to_matrix_syntax(r"\log\det X - \|A\|_F^2", s)
    '(logdet(X) - norm(A)**(2))'
    """
    from .checking import reader as R
    try:
        items = R.read(body)
    except Exception as exc:       # the reader's own one-line message
        raise ExpressionError(f"cannot read the LaTeX: {getattr(exc, 'message', exc)}") from None
    if len(items) != 1 or not isinstance(items[0], R.Relation) or items[0].ops or len(items[0].items) != 1:
        raise ExpressionError("a LaTeX matrix expression is one expression, not a relation or a list")
    try:
        return _Writer(scope, R).text(items[0].items[0])
    except RecursionError:
        raise ExpressionError("LaTeX expression is nested too deeply") from None


class _Writer:
    def __init__(self, scope, reader):
        self.scope, self.R = scope, reader

    def fail(self, message):
        raise ExpressionError(message)

    # shapes: does a node stand for a matrix or vector (True), or a number (False)?
    def is_matrix(self, node):
        R = self.R
        if isinstance(node, R.Name):
            return any(self.rank(seg) for seg in self.segments(node.letters))
        if isinstance(node, R.Group):
            return self.is_matrix(node.body)
        if isinstance(node, R.Neg):
            return self.is_matrix(node.arg)
        if isinstance(node, R.Bin):
            return self.is_matrix(node.left) or self.is_matrix(node.right)
        if isinstance(node, R.Frac):
            return self.is_matrix(node.num)
        if isinstance(node, R.Call):
            return node.func not in ("trace", "det", "logdet") and any(self.is_matrix(a) for a in node.args)
        return False

    def rank(self, name):
        tensor = self.scope.tensor(name)
        if name == "I":
            return 2
        return tensor.rank if tensor is not None else 0

    def segments(self, letters):
        """A run of letters as declared names, longest first (Xw is X w; theta is one name)."""
        out, k = [], 0
        while k < len(letters):
            for m in range(len(letters), k, -1):
                cand = "".join(letters[k:m])
                if self.known(cand) or m - k == 1:
                    out.append(cand)
                    k = m
                    break
        return out

    def known(self, name):
        return self.scope.tensor(name) is not None or name in self.scope.sizes

    def name(self, name):
        if self.known(name):
            return name
        if name == "lambda" and self.known("lamda"):          # \lambda for the Python-safe lamda
            return "lamda"
        self.fail(f"'{name}' is not declared")

    # writing -----------------------------------------------------------------------------
    def text(self, node):
        R = self.R
        method = getattr(self, "w_" + type(node).__name__, None)
        if method is None or isinstance(node, (R.Relation, R.Tuple)):
            self.fail(f"{type(node).__name__.lower()} is not read in a LaTeX matrix expression")
        return method(node)

    def w_Num(self, node):
        return node.text

    def w_Neg(self, node):
        return f"(-{self.text(node.arg)})"

    def w_Frac(self, node):
        return f"(({self.text(node.num)}) / ({self.text(node.den)}))"

    def w_Sqrt(self, node):
        if node.index is not None:
            self.fail("only square roots are read")
        return f"sqrt({self.text(node.arg)})"

    def w_Group(self, node):
        if node.body is None:
            self.fail("empty braces")
        return self.scripts(f"({self.text(node.body)})", node.scripts, self.is_matrix(node.body))

    def w_Bin(self, node):
        left, right = self.text(node.left), self.text(node.right)
        op = node.op
        if op in ("+", "-"):
            return f"({left} {op} {right})"
        if op == "/":
            return f"({left} / ({right}))"
        if op == "odot":
            return f"({left} * {right})"
        if op in ("implicit", "cdot", "times", "*"):
            both = self.is_matrix(node.left) and self.is_matrix(node.right)
            return f"({left} {'@' if both else '*'} {right})"
        self.fail(f"the operation {op} is not read in a LaTeX matrix expression")

    def w_Name(self, node):
        segments = self.segments(node.letters)
        parts = []
        for k, seg in enumerate(segments):
            scripts = node.scripts if k == len(segments) - 1 else []
            if seg == "I" and not self.known("I"):
                sub = [a for kind, a in scripts if kind == "_"]
                if len(sub) != 1:
                    self.fail("write the identity with its size, I_n")
                parts.append(self.scripts(f"eye({self.text(sub[0])})", [s for s in scripts if s[0] != "_"], True))
                continue
            if any(kind in ("_", "[") for kind, _ in scripts):
                self.fail(f"entries ({seg}_{{...}}) are not read in a LaTeX matrix expression; "
                          "write the layer in the matrix syntax, e.g. (A @ x)[i]")
            parts.append(self.scripts(self.name(seg), scripts, self.rank(seg) > 0))
        out = parts[0]
        ranks = [self.rank(s) for s in segments]
        for part, rank, before in zip(parts[1:], ranks[1:], ranks):
            out = f"({out} {'@' if rank and before else '*'} {part})"
        return out

    def scripts(self, text, scripts, matrix):
        R = self.R
        for kind, arg in scripts:
            if kind == "'" and matrix:
                text = f"transpose({text})"
                continue
            if kind != "^":
                self.fail("a subscript or prime here is not read in a LaTeX matrix expression")
            while isinstance(arg, R.Group) and arg.paren == "{" and not arg.scripts:
                arg = arg.body
            if self.is_transpose(arg):
                text = f"transpose({text})" if matrix else text
            elif isinstance(arg, R.Neg) and self.is_transpose(arg.arg):
                text = f"transpose(inverse({text}))"
            elif isinstance(arg, R.Neg) and isinstance(arg.arg, R.Num) and arg.arg.text == "1" and matrix:
                text = f"inverse({text})"
            else:
                text = f"{text}**({self.text(arg)})"
        return text

    def is_transpose(self, arg):
        R = self.R
        if isinstance(arg, R.Word) and arg.text == "T":
            return True
        return isinstance(arg, R.Name) and arg.letters == ["T"] and not arg.scripts and not self.known("T")

    def w_Call(self, node):
        func = node.func
        if func == "log" and len(node.args) == 1 and isinstance(node.args[0], self.R.Call) \
                and node.args[0].func == "det":
            node = self.R.Call(node.pos, "logdet", node.args[0].args, 0, node.power, None, node.scripts)
            func = "logdet"
        if func not in _FUNCTIONS or node.sub is not None or node.primes:
            self.fail(f"\\{func} is not read in a LaTeX matrix expression")
        out = f"{_FUNCTIONS[func]}({', '.join(self.text(a) for a in node.args)})"
        if node.power is not None:
            out = f"{out}**({self.text(node.power)})"
        return self.scripts(out, node.scripts, False)

    def w_Delim(self, node):
        R = self.R
        inner = self.text(node.body)
        scripts = list(node.scripts)
        if node.kind == "abs":
            out = f"det({inner})" if self.is_matrix(node.body) else f"Abs({inner})"
            return self.scripts(out, scripts, False)
        if node.kind != "norm":
            self.fail(f"{node.kind} is not read in a LaTeX matrix expression")
        order = ""
        if scripts and scripts[0][0] == "_":
            sub = scripts.pop(0)[1]
            while isinstance(sub, R.Group) and not sub.scripts:
                sub = sub.body
            if isinstance(sub, R.Num) and sub.text in ("1", "2"):
                order = ", 1" if sub.text == "1" else ""
            elif isinstance(sub, (R.Name, R.Word)) and "".join(getattr(sub, "letters", [getattr(sub, "text", "")])) \
                    == "F":
                order = ""
            else:
                self.fail("a norm's subscript is 1, 2 or F")
        return self.scripts(f"norm({inner}{order})", scripts, False)
