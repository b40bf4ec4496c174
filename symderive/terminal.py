"""Answers in the terminal, readable at 80 columns: one-line Unicode formulas (Σ, δ, ·, ≤, ⌊⌋)
instead of SymPy's ``Sum(...)`` and raw LaTeX, long answers cut with a pointer to the sheet, a
progress bar while questions are solved and one summary line per problem."""
import contextlib
import functools
import re

import sympy as sp
from rich.table import Table
from rich.text import Text
from sympy.printing.str import StrPrinter

from .answer import Kind, Status
from .authored_text import to_plain

#: Lines of the answer column one result may take before it is cut (the sheet has it whole).
MAX_ANSWER_LINES = 3
#: The answer column never gets narrower than this.
MIN_ANSWER_WIDTH = 28


class UnicodePrinter(StrPrinter):
    """SymPy's one-line form with the notation of a sheet: Σ_{k=1..3}, δ(i,p), 𝟙[z > 0], σ(z), ⌊x⌋, ≤."""

    def _print_Sum(self, expr):
        limits = ", ".join(f"{self._print(i)}={self._print(lo)}..{self._print(hi)}" for i, lo, hi in expr.limits)
        body = self._print(expr.function)
        return f"Σ_{{{limits}}} " + (f"({body})" if isinstance(expr.function, sp.Add) else body)

    def _print_KroneckerDelta(self, expr):
        return f"δ({self._print(expr.args[0])},{self._print(expr.args[1])})"

    def _print_Heaviside(self, expr):
        from .latex import compared_with
        arg = expr.args[0]
        maxima = compared_with(arg)
        if isinstance(arg, sp.Add) and len(maxima) == 1:        # max pooling: 𝟙[x_p > max(the others)]
            return f"𝟙[{self._print(arg - maxima[0])} > {self._print(-maxima[0])}]"
        return f"𝟙[{self._print(arg)} > 0]"

    def _print_floor(self, expr):
        return f"⌊{self._print(expr.args[0])}⌋"

    def _print_ceiling(self, expr):
        return f"⌈{self._print(expr.args[0])}⌉"

    def _print_Piecewise(self, expr):
        parts = [self._print(v) if c == sp.true else f"{self._print(v)} if {self._print(c)}" for v, c in expr.args]
        return "{" + "; else ".join(parts) + "}"

    def _print_And(self, expr):
        return ", ".join(self._print(a) for a in expr.args)

    def _print_Relational(self, expr):
        op = {"<=": "≤", ">=": "≥", "!=": "≠", "==": "="}.get(expr.rel_op, expr.rel_op)
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_Derivative(self, expr):
        wrt = "".join(f"∂{self._print(v)}" for v in expr.variables)
        inner = self._print(expr.expr)
        return f"∂{inner}/{wrt}" if isinstance(expr.expr, (sp.Symbol, sp.Indexed)) else f"∂({inner})/{wrt}"

    def _print_Exp1(self, expr):
        return "e"

    def _print_Function(self, expr):
        name = {"sigmoid": "σ"}.get(type(expr).__name__, type(expr).__name__)
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"


class _MemoUnicodePrinter(UnicodePrinter):
    """The printer of ``formula``: each subtree's text is kept, as the terminal lines of a run print
    the same subtrees again and again (the sheet's printer has the same memo, ``latex._MemoPrinter``).
    SymPy's ``StrPrinter`` writes a subtree the same wherever it occurs, except a ``Float``, whose
    zeros are stripped below the top level (``_print_level``): that level is part of the key."""

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic) and not kwargs:
            return _subtree_text(expr, self._print_level > 0)
        return super()._print(expr, **kwargs)


_MEMO_PRINTER = _MemoUnicodePrinter()


@functools.lru_cache(maxsize=1 << 14, typed=True)
def _subtree_text(expr, nested):
    level, _MEMO_PRINTER._print_level = _MEMO_PRINTER._print_level, int(nested)
    try:
        return UnicodePrinter._print(_MEMO_PRINTER, expr)
    finally:
        _MEMO_PRINTER._print_level = level


def formula(value, base=0):
    """One line of Unicode for a SymPy value, indices shown in ``base``.

    >>> i, k = sp.symbols("i k", integer=True)
    >>> x = sp.IndexedBase("x")
    >>> formula(sp.Sum(2 * x[i + k] ** 2, (k, 0, 2)) * sp.KroneckerDelta(i, k) + sp.floor(i / 2))
    'δ(i,k)·Σ_{k=0..2} 2·x[i + k]² + ⌊i/2⌋'
    >>> formula(sp.Eq(sp.Derivative(sp.Symbol("E"), x[i]), sp.E / 2))
    '∂E/∂x[i] = e/2'
    """
    from .indices import for_display
    shown = _MEMO_PRINTER.doprint(for_display(value, base) if isinstance(value, sp.Basic) else value)
    shown = re.sub(r"\*\*2\b", "²", shown)
    shown = re.sub(r"\*\*(\w+|\([^()]*\))", r"^\1", shown)
    return shown.replace("*", "·")


def plain(result, base=0):
    """A result for the terminal: label and value, never LaTeX (matrix forms and text are converted)."""
    value = result.value
    if isinstance(value, (sp.MatrixBase, sp.NDimArray)):
        shown = _small_matrix(value, base) or f"{'×'.join(map(str, value.shape))} array (see the sheet)"
    elif result.kind is Kind.MATRIX_FORM:           # LaTeX only: its maths, as Unicode
        shown = to_plain(f"${result.latex}$")
    elif isinstance(value, str):
        shown = to_plain(value)
    elif isinstance(value, (list, tuple)):
        shown = "(" + ", ".join(formula(v, base) for v in value) + ("," if len(value) == 1 else "") + ")"
    else:
        shown = formula(value, base)
    shown = re.sub(r"\\(?:left|right|big|Big|bigl|bigr)\b\.?", "", shown)
    shown = re.sub(r"\s+", " ", shown).strip()
    return f"{result.label}: {shown}" if result.label else shown


def _small_matrix(value, base, longest=80):
    """A matrix of at most 12 entries in one line, rows separated by ';' ([a; b] is a column), or None.

    >>> _small_matrix(sp.Matrix([[1, sp.Rational(1, 2)], [0, 3]]), 0)
    '[1, 1/2; 0, 3]'
    """
    if len(value.shape) != 2 or value.shape[0] * value.shape[1] > 12:
        return None
    rows = [", ".join(formula(value[r, c], base) for c in range(value.shape[1])) for r in range(value.shape[0])]
    shown = "[" + "; ".join(rows) + "]"
    return shown if len(shown) <= longest else None


def cut(text, width, lines=MAX_ANSWER_LINES, where="the sheet"):
    """``text`` if it fits in ``lines`` lines of ``width``, else its start and a pointer to ``where``.

    >>> cut("a" * 50, 20, lines=2, where="out/p.tex")
    'aaaaaaaaaaaaaaaaaaaaa… (see out/p.tex)'
    """
    room = width * lines
    if len(text) <= room:
        return text
    tail = f"… (see {where})"
    return text[:max(room - len(tail) - 2, 8)] + tail     # 2: room lost where the wrapping breaks lines


def answer_table(problem, answers, width, sheet="the sheet"):
    """The table of one problem's answers, fitted to ``width`` columns."""
    id_width = max([len("question")] + [len(a.question_id) for a in answers])
    answer_width = max(MIN_ANSWER_WIDTH, width - id_width - len("established") - 6 - 13)
    title = to_plain(problem.title)
    title = title if len(title) <= width else title[:width - 1] + "…"
    table = Table(title=title, show_lines=True, title_justify="left")
    table.add_column("question", no_wrap=True, max_width=max(id_width, 12), overflow="fold")
    table.add_column("answer", max_width=answer_width, overflow="fold")
    table.add_column("established", max_width=len("established"))
    table.add_column("s", justify="right", no_wrap=True)
    for a in answers:
        if a.status is Status.FAILED:
            shown = a.error
        else:
            lines = a.prepared.get("terminal") or [plain(r, problem.index_base) for r in a.results]
            shown = "\n".join(cut(line, answer_width - 2, where=sheet) for line in lines)
        table.add_row(Text(a.question_id), Text(shown), a.status.value, f"{a.seconds:.1f}",
                      style="red" if a.status is Status.FAILED else None)
    return table


def summary(problem, answers, cached=0):
    """One line per problem: how many questions, and how each was established; ``cached`` of them were
    read from the answer cache (their time is that of the run that solved them).

    >>> from types import SimpleNamespace as NS
    >>> p = NS(name="hw", path="problems/hw.yaml")
    >>> summary(p, [NS(status=Status.DERIVED, seconds=1.0), NS(status=Status.DERIVED, seconds=0.5),
    ...             NS(status=Status.FAILED, seconds=0.25)])
    'problems/hw.yaml: 3 questions: 2 derived, 1 failed (1.8 s)'
    >>> summary(p, [NS(status=Status.DERIVED, seconds=1.0), NS(status=Status.DERIVED, seconds=0.5)], cached=1)
    'problems/hw.yaml: 2 questions: 2 derived (1 of 2 read from the answer cache; 1.5 s when solved)'
    """
    counts = {}
    for a in answers:
        counts[a.status.value] = counts.get(a.status.value, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    total = sum(a.seconds for a in answers)
    noun = "question" if len(answers) == 1 else "questions"
    took = f"{cached} of {len(answers)} read from the answer cache; {total:.1f} s when solved" if cached \
        else f"{total:.1f} s"
    return f"{problem.path}: {len(answers)} {noun}: {parts} ({took})"


class Bar:
    """A progress bar over questions: call it after each question; print only inside ``paused()``
    (rich's live display would be overwritten by another console's output)."""

    def __init__(self, progress=None):
        self._progress = progress
        self._task = progress.add_task("solving", total=progress.total) if progress else None

    def __call__(self):
        if self._progress:
            self._progress.advance(self._task)

    @contextlib.contextmanager
    def paused(self):
        if self._progress:
            self._progress.stop()
        try:
            yield
        finally:
            if self._progress:
                self._progress.start()


@contextlib.contextmanager
def progress(console, total):
    """A progress bar over ``total`` questions on ``console`` (transient; nothing when it is not a
    terminal or there is one question)."""
    if total < 2 or not console.is_terminal:
        yield Bar()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    bar = Progress(TextColumn("solving"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    bar.total = total
    with bar:
        yield Bar(bar)
