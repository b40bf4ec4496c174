"""The report of one question's cross-check (``CrossCheck``), the tolerances and the
terminal lines."""
from dataclasses import dataclass, field


#: Entries agree when |engine - torch| <= TOLERANCE * max(|torch|, 1):
#: relative error for values of magnitude 1 or more, absolute error below.
TOLERANCE = 1e-9
#: The reported relative error is taken over entries with |torch value| >= NEAR_ZERO.
NEAR_ZERO = 1e-6
#: At most this many entries of one array (and rows of one Jacobian) are compared; chosen at random.
MAX_ENTRIES = 400
MAX_ROWS = 64
#: Random size assignments tried per question when sizes are symbolic.
SHAPE_DRAWS = 20
FORMULA_DRAWS = 3
#: Base seed; each question's generator is seeded with this and a hash of its problem and id.
SEED = 20240607

INSTALL_HINT = ("--verify cross-checks answers with PyTorch, which is not installed. Install it with\n"
                "    pip install 'symderive[verify]'\n"
                "or\n"
                "    pip install torch==2.13.0")

AGREE, DISAGREE, NO_COUNTERPART = "agree", "disagree", "no PyTorch counterpart"
NOT_CHECKED, NOTHING = "not checked", "nothing to check"


class TorchMissing(RuntimeError):
    """PyTorch is not importable."""


def require_torch():
    """Import torch or raise ``TorchMissing`` with the install hint."""
    try:
        import torch
    except ImportError:
        raise TorchMissing(INSTALL_HINT) from None
    return torch


@dataclass
class CrossCheck:
    """How one answer compares with PyTorch. ``outcome`` is one of AGREE, DISAGREE,
    NO_COUNTERPART (agreement, but some layer was computed from its own SymPy formula),
    NOT_CHECKED (a reason says why) or NOTHING (nothing numerical to compare)."""
    question: str
    outcome: str
    reason: str = ""
    max_abs: float = None
    max_rel: float = None
    compared: list = field(default_factory=list)        # what was compared, in words
    formula_layers: list = field(default_factory=list)  # (name, kind, registered): no torch op used
    sizes: list = field(default_factory=list)           # random size assignments used (symbolic sizes)
    worst: str = ""                                      # where the largest difference is
    autograd: bool = False                               # whether derivatives were compared
    random_inputs: bool = True                           # False: a constant expression, no inputs
    also: list = field(default_factory=list)            # agreements not within the tolerance (decimals, words)
    seed: int = None
    entries: int = 0                                     # numbers compared
    seconds: float = 0.0
    tolerance: float = TOLERANCE
    torch_version: str = ""

    @property
    def ok(self):
        return self.outcome != DISAGREE

    def _errors(self):
        rel = "n/a (all values near zero)" if self.max_rel is None else f"{self.max_rel:.1e}"
        return f"max abs. error {self.max_abs:.1e}, max rel. error {rel}"

    def _where(self):
        if not self.random_inputs:
            return "float64"
        parts = [f"random float64 inputs, seed {self.seed}"]
        if self.sizes:
            shown = "; ".join(", ".join(f"{k} = {v}" for k, v in s.items()) for s in self.sizes[:3])
            more = f" and {len(self.sizes) - 3} more" if len(self.sizes) > 3 else ""
            parts.append(f"random sizes {shown}{more}")
        return "; ".join(parts)

    def _compared(self):
        items = list(self.compared)
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    def formula_note(self):
        """Which layers had no PyTorch counterpart, and what that leaves checked."""
        names = ", ".join(f"{n} ({k}{'' if registered else ', no torch op registered under symderive/layers/'})"
                          for n, k, registered in self.formula_layers)
        many = len(self.formula_layers) > 1
        it = "them" if many else "it"
        checked = (f"so only the differentiation through {it} is checked, not the formula itself" if self.autograd
                   else "so the formula is compared with itself")
        return (f"layer{'s' if many else ''} {names} {'have' if many else 'has'} no PyTorch counterpart and "
                f"{'were' if many else 'was'} computed from "
                f"{'their own SymPy formulas' if many else 'its own SymPy formula'}, {checked}")

    def sentence(self):
        """One honest sentence for the sheet: what was compared, with what, and the errors."""
        tool = "PyTorch autograd" if self.autograd else "PyTorch"
        points = "at random points" if self.random_inputs else "in floating point"
        if self.outcome == AGREE:
            parts = [f"compared {self._compared()}; all agree within {self.tolerance:g} ({self._errors()})"
                     ] if self.max_abs is not None else []
            return (f"Cross-checked with {tool} ({self._where()}): " + "; ".join(parts + self.also)
                    + f". This is numerical agreement {points}; it does not change how the answer was established.")
        if self.outcome == NO_COUNTERPART:
            if self.max_abs is None:
                return f"Not cross-checked with PyTorch: {self.reason or self.formula_note()}."
            return (f"Not fully cross-checked with PyTorch: {self.formula_note()}. With that, compared "
                    f"{self._compared()}; all agree within {self.tolerance:g} ({self._where()}; {self._errors()}).")
        if self.outcome == DISAGREE:
            return (f"Cross-check with {tool} DISAGREES ({self._where()}): {self.worst}; {self._errors()}. "
                    "The status above is the engine's; this numerical check contradicts it.")
        if self.outcome == NOT_CHECKED:
            return f"Not cross-checked with PyTorch: {self.reason}."
        return f"Nothing to cross-check with PyTorch: {self.reason}."

    def _repr_markdown_(self):
        return self.sentence()

    def to_json(self):
        return {
            "outcome": self.outcome,
            "tool": (f"PyTorch {self.torch_version}" + (" autograd" if self.autograd else "")).strip(),
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "tolerance": self.tolerance,
            "compared": list(self.compared),
            "also_agree": list(self.also),
            "entries": self.entries,
            "no_counterpart": [{"layer": n, "kind": k} for n, k, _ in self.formula_layers],
            "sizes": [dict(s) for s in self.sizes],
            "seed": self.seed,
            "worst": self.worst,
            "reason": self.reason,
            "text": self.sentence(),
            "seconds": round(self.seconds, 4),
        }


def report_lines(problem, reports):
    """Plain lines for the terminal: one per question, the worst difference for a disagreement."""
    width = max((len(r.question) for r in reports), default=0)
    lines = [f"cross-check with PyTorch ({problem.path}), agreement within {TOLERANCE:g} "
             "(relative; absolute where |value| < 1):"]
    for r in reports:
        if r.max_abs is not None:
            rel = "n/a (every value compared was near zero: this comparison could not fail)" \
                if r.max_rel is None else f"{r.max_rel:.1e}"
            numbers = f"max abs. error {r.max_abs:.1e}, max rel. error {rel}, {r.entries} numbers, {r.seconds:.2f} s: "
        else:
            numbers = ""
        what = "; ".join(r.compared + r.also) or r.reason
        if r.formula_layers:
            what += "; " + r.formula_note()
        lines.append(f"  {r.question:<{width}}  {r.outcome}: {numbers}{what}")
        if r.outcome == DISAGREE:
            lines.append(f"  {'':<{width}}  worst: {r.worst}")
    return lines
