"""Verdicts: one per question of a submission, for the terminal, JSON, CSV and notebooks."""
from dataclasses import asdict, dataclass, field

CORRECT, INCORRECT, UNPARSEABLE, MISSING, TIMEOUT = "correct", "incorrect", "unparseable", "missing", "timeout"
UNCHECKED, ERROR = "unchecked", "error"
#: The LaTeX was read, but names something the question does not declare (a typo, another notation).
UNKNOWN_NAME = "unknown name"
#: Verdicts that leave the exit status at 0.
PASSING = {CORRECT, UNCHECKED}
VERDICTS = (CORRECT, INCORRECT, UNPARSEABLE, UNKNOWN_NAME, MISSING, TIMEOUT, UNCHECKED, ERROR)


@dataclass
class Verdict:
    question: str
    verdict: str
    decided_by: str = ""
    evidence: str = ""
    position: int = None            # 0-based offset in the answer, for unparseable answers
    answer: str = ""
    seconds: float = 0.0
    submission: str = ""
    flags: list = field(default_factory=list)      # remarks beside the verdict: "wrong working"

    @property
    def ok(self):
        return self.verdict in PASSING

    def to_json(self):
        record = asdict(self)
        record["seconds"] = round(self.seconds, 3)
        if not self.submission:
            record.pop("submission")
        return record

    def _repr_markdown_(self):
        mark = {CORRECT: "✅", INCORRECT: "❌", UNPARSEABLE: "⚠️", UNKNOWN_NAME: "❓", MISSING: "∅", TIMEOUT: "⏱",
                UNCHECKED: "·", ERROR: "⚠️"}[self.verdict]
        how = f" ({self.decided_by})" if self.decided_by else ""
        evidence = f": {_md(self.evidence)}" if self.evidence else ""
        return f"{mark} **{self.question}**: {self.verdict}{how}{evidence}"


@dataclass
class CheckReport:
    """The verdicts for one submission (a list with a table for notebooks)."""
    problem: str
    verdicts: list = field(default_factory=list)
    submission: str = ""

    def __iter__(self):
        return iter(self.verdicts)

    def __len__(self):
        return len(self.verdicts)

    def __getitem__(self, key):
        if isinstance(key, str):
            for v in self.verdicts:
                if v.question == key:
                    return v
            raise KeyError(key)
        return self.verdicts[key]

    @property
    def ok(self):
        return all(v.ok for v in self.verdicts)

    def counts(self):
        out = {}
        for v in self.verdicts:
            out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    def to_json(self):
        return {"problem": self.problem, **({"submission": self.submission} if self.submission else {}),
                "verdicts": [v.to_json() for v in self.verdicts], "counts": self.counts()}

    def _repr_markdown_(self):
        rows = ["| question | verdict | decided by | evidence |", "| --- | --- | --- | --- |"]
        for v in self.verdicts:
            rows.append(f"| {v.question} | {v.verdict} | {v.decided_by} | {_md(v.evidence)} |")
        summary = ", ".join(f"{n} {k}" for k, n in self.counts().items())
        return f"**{self.problem}**{' — ' + self.submission if self.submission else ''}: {summary}\n\n" + \
            "\n".join(rows)


def _md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")
