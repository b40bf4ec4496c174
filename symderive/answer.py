"""What the engine hands back: a result, how it was established, and the steps.

Every answer carries a ``Status`` so that a sheet never claims more than was
done: a numeric spot check is never printed as a proof.
"""
import enum
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
    (the variable's), in the order of the left side; ``alt_shapes`` other accepted forms of a SHAPE."""
    label: str
    value: object
    latex: str
    kind: Kind
    key: str = ""
    axes: tuple = ()
    alt_shapes: tuple = ()

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
    names: dict = field(default_factory=dict)         # {identifier: LaTeX display name} the question sees

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
        if not self.results:
            return None
        body = r" \\ ".join((rf"\text{{{r.label}: }}" if r.label else "") + r.latex for r in self.results)
        return r"$\displaystyle \begin{gathered}" + body + r"\end{gathered}$"

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
