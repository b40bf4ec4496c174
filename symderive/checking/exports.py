"""Verdicts in the formats of autograders: Gradescope's ``results.json`` and PrairieLearn's external
grader results, with the points of each question from the problem file (``points:``, default 1).

Gradescope (https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level ``score``
and one test per question with ``score``, ``max_score``, ``output``, ``status`` and ``visibility``.
PrairieLearn (external grading, https://prairielearn.readthedocs.io/en/latest/externalGrading/):
``gradable``, ``score`` as a fraction of 1, ``message`` and ``tests`` with ``points`` and
``max_points``. A question graded by hand (an authored-text question: ``unchecked``) is listed
with no points awarded and says so; it does not count towards the maximum.
"""
import json
from pathlib import Path

import sympy as sp

from ..errors import ProblemFileError
from ..files import write_atomically
from ..yaml_positions import key_position
from .verdict import CORRECT, UNCHECKED

DEFAULT_POINTS = 1


def read_points(question):
    """The question's ``points:`` (a non-negative number, default 1); ProblemFileError otherwise.

    >>> from types import SimpleNamespace as Q
    >>> read_points(Q(id="q", spec={"points": 2.5})), read_points(Q(id="q", spec={}))
    (2.5, 1)
    """
    value = question.spec.get("points", DEFAULT_POINTS)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = sp.Rational(str(value))
    except (TypeError, ValueError):
        raise ProblemFileError(f"question {question.id}: points must be a number, got {value!r}",
                               *key_position(question.spec, "points")) from None
    if number < 0:
        raise ProblemFileError(f"question {question.id}: points must not be negative",
                               *key_position(question.spec, "points"))
    return int(number) if number.is_Integer else float(number)


def _rows(problem, report):
    """(question id, verdict, points awarded, points possible, output) per question of the report."""
    questions = {q.id: q for q in problem.questions}
    out = []
    for v in report.verdicts:
        possible = read_points(questions[v.question]) if v.question in questions else 0   # an unknown id
        awarded = possible if v.verdict == CORRECT else 0
        text = f"{v.verdict}" + (f" ({v.decided_by})" if v.decided_by else "") + \
            (f": {v.evidence}" if v.evidence else "") + "".join(f" [{f}]" for f in v.flags)
        if v.verdict == UNCHECKED:
            text = "graded by hand: " + (v.evidence or "nothing to compare with")
        out.append((v.question, v, awarded, possible, text))
    return out


def gradescope_results(problem, report):
    """Gradescope's results.json for one submission, as a dict."""
    tests = []
    for qid, v, awarded, possible, text in _rows(problem, report):
        test = {"name": qid, "output": text, "visibility": "visible"}
        if v.verdict != UNCHECKED:
            test.update(score=awarded, max_score=possible, status="passed" if v.verdict == CORRECT else "failed")
        tests.append(test)
    score = sum(t.get("score", 0) for t in tests)
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items())
    return {"score": score, "output": f"{problem.title}: {counts}", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def prairielearn_results(problem, report):
    """PrairieLearn's external-grader results for one submission, as a dict."""
    tests = []
    for qid, v, awarded, possible, text in _rows(problem, report):
        tests.append({"name": qid, "description": v.verdict, "points": awarded,
                      "max_points": 0 if v.verdict == UNCHECKED else possible, "message": text, "output": v.answer})
    maximum = sum(t["max_points"] for t in tests)
    score = sum(t["points"] for t in tests) / maximum if maximum else 0
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items())
    return {"gradable": True, "score": score, "message": f"{problem.title}: {counts}", "tests": tests}


FORMATS = {"gradescope": gradescope_results, "prairielearn": prairielearn_results}


def write_results(kind, path, problem, reports, folder):
    """Write ``kind`` results: to ``path`` for one submission, or one ``<submission>.json`` per
    submission inside the folder ``path`` when a folder of submissions was graded."""
    make = FORMATS[kind]
    path = Path(path)
    if not folder:
        write_atomically(path, json.dumps(make(problem, reports[0]), indent=2, ensure_ascii=False) + "\n")
        return
    path.mkdir(parents=True, exist_ok=True)
    for report in reports:
        name = Path(report.submission).name or "submission"      # a file name from the folder: no separators
        write_atomically(path / f"{name}.json", json.dumps(make(problem, report), indent=2, ensure_ascii=False)
                         + "\n")
