"""What an ask sees of its question: typed access to options, located errors, LaTeX in the
problem's index base, and the answer constructor."""
from ..answer import Answer, Status
from ..errors import ExpressionError, SymderiveError
from ..expressions import parse, parse_sign
import sympy as sp
from ..latex_input import is_latex, parse_latex
from ..latex import show
from ..yaml_positions import locate, position


class Context:
    def __init__(self, problem, question, declarations):
        self.problem, self.question, self.decls = problem, question, declarations
        self.base = problem.index_base
        self.allowed = None
        self.intermediates = {}      # {name: course_forms.Intermediate} the sheet defines (see matrix_view)

    def option(self, key, default=None):
        return self.question.spec.get(key, default)

    def require(self, key):
        if key not in self.question.spec:
            raise ExpressionError(f"ask '{self.question.ask}' needs '{key}'",
                                  self.question.line, None)
        return self.question.spec[key]

    def declared_names(self):
        """The names declared for this question: no index of an answer is named after one."""
        return self.decls.names()

    def tensor(self, key):
        """The tensor or layer named by option ``key``."""
        name = self.require(key)
        if not isinstance(name, str):
            raise ExpressionError(f"'{key}' must name a tensor or layer", *position(name))
        found = self.decls.lookup(name.strip())
        if found is None:
            raise ExpressionError(f"'{name}' is not a declared tensor or layer", *position(name))
        return found

    def tensor_or_entry(self, key):
        """Option ``key`` names a tensor (``f``) or one entry (``f[1]``): (tensor, 0-based index or None)."""
        text = self.require(key)
        if isinstance(text, str) and "[" in text:
            value = self.expression(key)
            if not isinstance(value, sp.Indexed) or not all(a.is_Integer for a in value.indices):
                raise ExpressionError(f"'{key}' must be a tensor name or one entry such as f[1]",
                                      *position(text))
            return self.decls.lookup(value.base.label.name), tuple(value.indices)
        return self.tensor(key), None

    def signs(self):
        """The question's ``given`` sign conditions: {entry: +1 or -1}, entries as written (opaque)."""
        given = self.option("given", [])
        if not isinstance(given, list):
            raise ExpressionError("'given' is a list of sign conditions such as 'z[1] > 0'", *position(given))
        out = {}
        for text in given:
            try:
                entry, sign = parse_sign(text, self.decls.scope())
            except SymderiveError as exc:
                raise locate(exc, text) from None
            out[entry] = sign
        return out

    def expanded_signs(self):
        """The sign conditions keyed by each entry written down to the leaves (to match H(...))."""
        out = {}
        for entry, sign in self.signs().items():
            layer = self.decls.lookup(entry.base.label.name)
            expanded = layer.element(entry.indices, expand=True).doit() if layer.is_layer else entry
            out[sp.expand(expanded)] = sign
        return out

    def expression(self, key):
        """Option ``key`` read as an expression: SymPy syntax, or LaTeX between $...$."""
        text = self.require(key)
        try:
            if is_latex(text):
                return parse_latex(text, self.decls.scope())
            return parse(text, self.decls.scope())
        except SymderiveError as exc:
            raise locate(exc, text) from None

    def flag(self, key, default=False):
        value = self.option(key, default)
        if not isinstance(value, bool):
            raise ExpressionError(f"'{key}' must be true or false", *position(value))
        return value

    def show(self, expr):
        return show(expr, self.base)

    def answer(self, results, steps=(), status=Status.DERIVED, conventions=(), detail=""):
        notes = self.option("note")
        answer = Answer(self.question.id, self.question.statement, status, list(results), list(steps),
                        [str(notes)] if notes else [], set(conventions) | {"index_base"}, detail)
        answer.intermediates = dict(getattr(self, "intermediates", {}))
        if status is Status.FAILED:   # e.g. a disproved identity: say why wherever errors are shown
            answer.error = f"{self.problem.path}: question {self.question.id}: {detail}"
        return answer
