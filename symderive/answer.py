"""What the engine hands back: a result, how it was established, and the steps.

Every answer carries a ``Status`` so that a sheet never claims more than was
done: a numeric spot check is never printed as a proof.
"""
import enum
import pickle
from dataclasses import dataclass, field

import sympy as sp


class Status(str, enum.Enum):
    DERIVED = "derived"                    # symbolic derivation or exact computation, all sizes given
    PROVED = "proved"                      # an identity proved for all sizes
    VERIFIED = "verified at sizes"         # an identity checked exactly at listed concrete sizes
    NUMERIC = "numerically checked"        # agreement at random points, or a value solved numerically
    FAILED = "failed"                      # could not be answered, or an identity is false
    AUTHORED = "authored text"             # written by the problem's author, not derived

    def sentence(self):
        return {
            Status.DERIVED: "Derived symbolically by the engine (exact).",
            Status.PROVED: "Proved for all sizes.",
            Status.VERIFIED: "Verified exactly at concrete sizes (not a proof for all sizes).",
            Status.NUMERIC: "Established numerically only (not a proof).",
            Status.FAILED: "Failed.",
            Status.AUTHORED: "Authored text from the problem file, not derived by the engine.",
        }[self]


@dataclass
class Step:
    """One line of a derivation: a LaTeX statement and why it holds."""
    latex: str
    why: str = ""


class Kind(str, enum.Enum):
    """What a result is, set by the ask that makes it: ``verify`` and ``checking`` read this,
    never the label, which is only shown."""
    SHAPE = "shape"                  # a tuple of sizes (a tensor's dimension, a layer's output shape)
    ELEMENT = "element"              # an index formula for one entry; ``axes`` names its free indices
    ENTRIES = "entries"              # explicit entries: a matrix or array
    VALUE = "value"                  # one exact scalar (a number or a formula in sizes/variables)
    DECIMAL = "decimal"              # a decimal approximation, graded by the exact VALUE when there is one
    TUPLE = "tuple"                  # several scalars that are not a shape (a trajectory, a receptive field)
    WORD = "word"                    # a one-word verdict
    MATRIX_FORM = "matrix form"      # the formula written with whole matrices, LaTeX only
    CLAIM = "claim"                  # an identity lhs = rhs (sympy.Eq)
    FACT = "fact"                    # something the derivation established, shown, not graded (B = A^T)
    TEXT = "text"                    # words: authored text, definitions of abbreviations


@dataclass
class Result:
    """One boxed line of an answer: a label (shown only), the SymPy value, its LaTeX, and what it is.

    ``key`` is the name ``verify`` and ``checking`` find it by (``Answer.value``); it defaults to
    the kind's name and is given when an answer has several results of one kind. ``axes`` are the
    free indices of an ELEMENT or CLAIM as ((group, Idx), ...), group "of" (the output's) or "wrt"
    (the variable's), in the order of the left side; ``alt_shapes`` other accepted forms of a SHAPE;
    ``components`` what each entry of a TUPLE counts ("with bias", "without bias"): grading compares a
    single number with the first entry unless the answer names another. ``blocks`` of a matrix printed by
    blocks (A^{(1)} = ..., B^{(0;0)} = ...): ((name, the label's indices as printed, first row, first
    column, rows, columns), ...), so that grading compares each labelled block with its part of the whole.
    ``claim``: the entry a MATRIX_FORM equation states, with its ``axes`` (a differential dY = -Y dX Y:
    Σ_pq (∂Y_ij/∂X_pq) dX_pq), so that grading compares an answer's right side with it."""
    label: str
    value: object
    latex: str
    kind: Kind
    key: str = ""
    axes: tuple = ()
    alt_shapes: tuple = ()
    components: tuple = ()
    blocks: tuple = ()
    claim: object = None

    def __post_init__(self):
        self.kind = Kind(self.kind)
        self.key = self.key or self.kind.value


@dataclass
class Answer:
    question_id: str
    statement: str
    status: Status
    results: list = field(default_factory=list)       # [Result]
    steps: list = field(default_factory=list)         # [Step]
    notes: list = field(default_factory=list)         # author-written remarks, shown as authored
    conventions: set = field(default_factory=set)     # keys of conventions the answer relies on
    detail: str = ""                                  # e.g. "at sizes N = 2, 3"
    error: str = ""
    seconds: float = 0.0
    problem: str = ""
    index_base: int = 0                               # indices in sympy strings are shown in this base
    cross_check: object = None                        # verify.CrossCheck: numerical agreement, not a status
    source: str = ""                                  # where the question comes from (authored, per question)
    names: dict = field(default_factory=dict)         # {identifier: LaTeX display name} the question sees
    abbreviations: dict = field(default_factory=dict)  # {Symbol τ_k: exact value} the sheet writes τ_k for
    #: {name: course_forms.Intermediate}: the names the sheet defines (ŷ = softmax(s), the one-hot Y), which
    #: the checker resolves to their definitions in a student's answer
    intermediates: dict = field(default_factory=dict)
    #: Text made from this answer in the worker process that solved it (``parallel``): its sheet section
    #: and terminal lines, so that the parent does not redo them serially, with cold caches, at the end
    prepared: dict = field(default_factory=dict, repr=False, compare=False)

    # A pickled Answer carries the fields that hold SymPy values (``PACKED``) as one pickle of their own,
    # unpickled here only when one of them is first read. The parent of a parallel run and a run reading the
    # answer cache mostly need only the status, the times and the texts the worker prepared; rebuilding
    # every answer's SymPy values cost the parent 0.6 s CPU for 185 answers (docs/performance.md), and
    # the cache stores the bytes as they came. Each of these fields has no class default (only
    # ``default_factory``), so reading a missing one reaches ``__getattr__``.
    PACKED = ("results", "steps", "notes", "names", "abbreviations", "intermediates")

    def __getstate__(self):
        state = dict(self.__dict__)
        if "_packed" in state and not any(k in state for k in self.PACKED):
            return state                                  # not unpacked since it came: the same bytes
        if "_packed" in state:
            self._unpack()
            state = dict(self.__dict__)
        packed = {k: state.pop(k) for k in self.PACKED if k in state}
        state["_packed"] = pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)
        # every Dummy in the values is below this process's next Dummy index, or below the one of the
        # process that pickled the answer before (see ``_keep_dummies_apart``)
        state["_dummy_top"] = max(_next_dummy_index(), state.get("_dummy_top", 0))
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        _keep_dummies_apart(state.get("_dummy_top", 0))

    def __getattr__(self, name):
        """Only called for an attribute not set: a packed field of an answer that came pickled."""
        if name in self.PACKED and "_packed" in self.__dict__:
            self._unpack()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _unpack(self):
        # the bytes come from this engine only: a forked worker, or the answer cache, which unpickles
        # nothing it has not authenticated (checking/answer_cache.py); a field set since then is kept.
        # The bytes are dropped last: another thread reading a field meanwhile unpacks them too, and
        # the first values set are kept (``parallel`` unpacks in the pool's result thread)
        packed = self.__dict__.get("_packed")
        for k, v in (pickle.loads(packed) if packed is not None else {}).items():
            self.__dict__.setdefault(k, v)
        self.__dict__.pop("_packed", None)

    def value(self, key):
        """The value of the result called ``key`` (see ``Result.key``), or None."""
        for r in self.results:
            if r.key == key:
                return r.value
        return None

    @property
    def ok(self):
        return self.status is not Status.FAILED

    @property
    def latex(self):
        return r" \\ ".join(r.latex for r in self.results)

    def _repr_latex_(self):
        """The question, its boxed results and how they were established, as one MathJax formula
        (MathJax 2 and 3 both render it; authored text is read through ``authored_text``)."""
        return r"$\displaystyle \begin{gathered}" + r" \\ ".join(self._latex_rows()) + r"\end{gathered}$"

    def _latex_rows(self):
        from .authored_text import to_mathjax
        rows = [to_mathjax(f"{self.question_id}: {self.statement}" if self.statement else self.question_id)]
        if self.status is Status.FAILED:
            return rows + [to_mathjax("Failed: " + self.error.replace("$", ""))]
        for r in self.results:
            label = to_mathjax(f"{r.label}: ") if r.label else ""
            rows.append(label + (to_mathjax(r.latex) if r.kind is Kind.TEXT else rf"\boxed{{{r.latex}}}"))
        status = self.status.sentence() + (f" {self.detail}" if self.detail else "")
        return rows + [to_mathjax(f"Established: {status}")]

    def _repr_html_(self):
        """As on the HTML sheet, the derivation folded (``derivation()`` shows it open)."""
        from .html_sheet import notebook_html
        return notebook_html([self])

    def derivation(self):
        """The steps of the derivation, to display on their own in a notebook."""
        return Derivation(self.question_id, self.steps)

    def to_json(self):
        record = {
            "problem": self.problem,
            "question": self.question_id,
            "status": self.status.value,
            "detail": self.detail,
            "answers": [{"label": r.label, "latex": r.latex,
                         "sympy": sympy_string(r.value, self.index_base)} for r in self.results],
            "error": self.error,
            "names": dict(sorted(self.names.items())),
            "seconds": round(self.seconds, 4),
        }
        if self.cross_check is not None:
            record["cross_check"] = self.cross_check.to_json()
        return record


@dataclass
class Derivation:
    """An answer's steps: ``answer.derivation()`` in a notebook shows them numbered, with the formulas."""
    question_id: str
    steps: list

    def _repr_latex_(self):
        from .authored_text import to_mathjax
        rows = [to_mathjax(f"{self.question_id}: derivation")]
        for n, step in enumerate(self.steps, 1):
            rows.append(to_mathjax(f"{n}. {step.why}"))
            if step.latex:
                rows.append(step.latex)
        return r"$\displaystyle \begin{gathered}" + r" \\ ".join(rows) + r"\end{gathered}$"

    def _repr_html_(self):
        import html
        from .html_sheet import NOTEBOOK_STYLE, steps_html
        title = html.escape(self.question_id)
        return f'{NOTEBOOK_STYLE}<div class="symderive"><p><strong>{title}: derivation</strong></p>' \
               f"{steps_html(self.steps)}</div>"


class Answers(list):
    """What ``Problem.solve()`` returns: a list of ``Answer`` that a notebook shows as the sheet does
    (statement, folded derivation, boxed answers, how each was established)."""

    def _repr_html_(self):
        from .html_sheet import notebook_html
        return notebook_html(self)

    def _repr_latex_(self):
        rows = [row for answer in self for row in answer._latex_rows()]
        return r"$\displaystyle \begin{gathered}" + r" \\ ".join(rows) + r"\end{gathered}$"


def _next_dummy_index():
    """The ``dummy_index`` the next ``sympy.Dummy()`` of this process gets (SymPy adds a random
    per-process base to a counter)."""
    return getattr(sp.Dummy, "_base_dummy_index", 0) + sp.Dummy._count


def _keep_dummies_apart(top):
    """SymPy tells Dummy symbols apart by their ``dummy_index``; one restored from a pickle keeps its
    index, so this process's counter is moved until its next index is at least ``top``, the next index of
    the process that pickled it (every Dummy in the answer is below that). A Dummy made here later then
    cannot equal one of the answer's, even before the answer's values are unpacked.

    >>> _keep_dummies_apart(_next_dummy_index() + 100); top = _next_dummy_index()
    >>> sp.Dummy().dummy_index == top
    True
    >>> _keep_dummies_apart(5); _next_dummy_index() == top + 1          # never moved back
    True
    """
    need = top - getattr(sp.Dummy, "_base_dummy_index", 0)
    if need > sp.Dummy._count:
        sp.Dummy._count = need


def sympy_string(value, base=0):
    """SymPy's string form, with indices shifted to ``base`` like the LaTeX."""
    from .indices import for_display
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(sympy_string(v, base) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, sp.MatrixBase):
        return sp.sstr(value.applyfunc(lambda v: for_display(v, base)))
    return sp.sstr(for_display(value, base) if isinstance(value, sp.Basic) else value)
