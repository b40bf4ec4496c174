"""``python -m symderive check PROBLEM ANSWERS`` and ``check PROBLEM FOLDER --report report.csv``.

Exit status: 0 when every answer is correct (or unchecked: an authored-text question),
1 when any is not, 2 when the problem file or an answers file cannot be used.
"""
import csv
import io
import json
from collections import Counter
from pathlib import Path

from rich.table import Table
from rich.text import Text

from ..errors import ProblemFileError
from ..files import write_atomically
from ..problem import load_problem
from ..timeouts import CHECK_TIMEOUT as DEFAULT_TIMEOUT

CSV_FIELDS = ["submission", "question", "verdict", "decided_by", "evidence", "flags"]
STYLES = {"correct": "green", "incorrect": "red", "unparseable": "yellow", "unknown name": "yellow",
          "missing": "magenta", "timeout": "yellow", "unchecked": "dim", "error": "red"}


SUMMARY = ("correct", "incorrect", "unparseable", "unknown name", "missing", "timeout")


def add_parser(sub):
    check = sub.add_parser("check", help="check students' LaTeX answers against the engine's")
    check.add_argument("problem", type=Path, help="the problem file (.yaml)")
    check.add_argument("answers", type=Path,
                       help="an answers file (.yaml mapping id: LaTeX, or .tex with \\answer{ID}{...}), "
                            "or a folder with one answers file per student")
    check.add_argument("--json", action="store_true", help="print verdicts as JSON instead of a table")
    check.add_argument("--report", type=Path, metavar="CSV",
                       help="write one CSV row per submission and question")
    check.add_argument("--gradescope", type=Path, metavar="JSON",
                       help="write Gradescope's results.json (a folder of them, one per submission, when grading "
                            "a folder); points per question from the problem file's points:")
    check.add_argument("--prairielearn", type=Path, metavar="JSON",
                       help="write PrairieLearn external-grader results (a folder of them for a folder)")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds allowed per answer (default {DEFAULT_TIMEOUT:g})")
    check.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    check.add_argument("--no-cache", action="store_true",
                       help="solve the questions again instead of reading the answers cached on disk by an "
                            "earlier run on the same problem file (see docs/checking.md)")
    return check


def run(args, console, errors):
    # The grading modules (NumPy, multiprocessing, the LaTeX reader) load only when checking:
    # the parser is built for every subcommand and must not import them.
    from .answers import AnswersFileError, read_answers_file
    from .answer_cache import run_cache
    from .grade import grade
    from .exports import read_points
    from .tolerance import read_tolerance
    from .aliases import read_aliases
    if args.timeout <= 0 or args.workers < 1:
        errors.print("error: --timeout must be positive and --workers at least 1", markup=False)
        return 2
    try:
        problem = load_problem(args.problem)
        for q in problem.questions:
            read_tolerance(q)
            read_points(q)
            read_aliases(q, problem.declarations(q))
    except ProblemFileError as exc:
        errors.print(f"error: {exc}", markup=False)
        return 2
    if not args.answers.exists():
        errors.print(f"error: {args.answers}: no such file or folder", markup=False)
        return 2
    if args.answers.is_dir():
        return _folder(problem, args, console, errors)
    try:
        answers = read_answers_file(args.answers, args.timeout)
    except AnswersFileError as exc:
        errors.print(f"error: {exc}", markup=False)
        return 2
    _warn_unknown_ids(errors, args.answers, problem, answers)
    name = args.answers.stem
    cache = run_cache(problem, args.no_cache, errors)
    report = grade(problem, {name: answers}, args.timeout, args.workers, cache=cache)[name]
    if args.report:
        _write_csv(args.report, [report])
    _write_exports(args, problem, [report], folder=False)
    if args.json:
        _print_json(console, report.to_json())
    else:
        _print_report(console, problem, report, args.answers)
    return 0 if report.ok else 1


def _folder(problem, args, console, errors):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from .answers import AnswersFileError, read_answers_file, submission_files
    from .answer_cache import run_cache
    from .grade import grade, split_id
    files = submission_files(args.answers)
    if not files:
        errors.print(f"error: {args.answers}: no answers files (.yaml, .yml, .tex)", markup=False)
        return 2
    names = submission_names(files)
    submissions, unusable = {}, {}
    for path in files:
        try:
            answers = read_answers_file(path, args.timeout)
            _warn_unknown_ids(errors, path, problem, answers)
            submissions[names[path]] = answers
        except AnswersFileError as exc:
            unusable[names[path]] = str(exc)
            errors.print(f"error: {exc}", markup=False)
    known = {q.id for q in problem.questions}
    total = sum(1 for answers in submissions.values() for key, latex in answers.items()
                if split_id(key, known)[0] in known and str(latex).strip())
    with Progress(TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=errors, transient=True, disable=args.json and not errors.is_terminal) as progress:
        task = progress.add_task("answers", total=total)
        reports = grade(problem, submissions, args.timeout, args.workers,
                        on_done=lambda key, verdict: progress.advance(task),
                        cache=run_cache(problem, args.no_cache, errors))
    ordered = [reports[names[p]] for p in files if names[p] in reports]
    if args.report:
        _write_csv(args.report, ordered, unusable)
    _write_exports(args, problem, ordered, folder=True)
    if args.json:
        _print_json(console, {"problem": problem.name,
                              "submissions": [r.to_json() for r in ordered],
                              "unusable": [{"submission": k, "error": v} for k, v in unusable.items()]})
    else:
        _print_summary(console, problem, ordered, unusable, args.report)
    if unusable:
        return 2
    return 0 if all(r.ok for r in ordered) else 1


def _warn_unknown_ids(errors, path, problem, answers):
    """One warning line per answer id naming no question; the answer gets an ``unknown name`` verdict
    and the rest of the file is graded (a typo in one id must not cost a student the whole file)."""
    from .grade import unknown_question, unknown_ids
    for key in unknown_ids(problem, answers):
        errors.print(f"warning: {path}: {unknown_question(problem, key).evidence}", markup=False)


def _write_exports(args, problem, reports, folder):
    from .exports import write_results
    for kind in ("gradescope", "prairielearn"):
        path = getattr(args, kind, None)
        if path:
            write_results(kind, path, problem, reports, folder)


def submission_names(files):
    """{path: name}: the file name without its suffix, or with it when two files share a stem
    (``bob.tex`` and ``bob.yaml`` are two submissions, not one overwriting the other).

    >>> sorted(submission_names([Path("a.yaml"), Path("bob.tex"), Path("bob.yaml")]).values())
    ['a', 'bob.tex', 'bob.yaml']
    """
    stems = Counter(p.stem for p in files)
    return {p: p.stem if stems[p.stem] == 1 else p.name for p in files}


#: A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralized(cell):
    """The cell with a leading ' when a spreadsheet would run it as a formula.

    >>> neutralized("=HYPERLINK(1)"), neutralized("-1"), neutralized("alice")
    ("'=HYPERLINK(1)", "'-1", 'alice')
    """
    cell = str(cell)
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _write_csv(path, reports, unusable=None):
    rows = [{"submission": report.submission, "question": v.question, "verdict": v.verdict,
             "decided_by": v.decided_by, "evidence": v.evidence, "flags": "; ".join(v.flags)}
            for report in reports for v in report.verdicts]
    rows += [{"submission": name, "question": "", "verdict": "unreadable", "decided_by": "", "evidence": error,
              "flags": ""}
             for name, error in (unusable or {}).items()]
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows({k: neutralized(v) for k, v in row.items()} for row in rows)
    write_atomically(path, out.getvalue())


def _print_json(console, record):
    text = json.dumps(record, indent=2, ensure_ascii=False)
    if console.is_terminal:
        console.print_json(text)
    else:
        print(text)


def _print_report(console, problem, report, path):
    table = Table(title=f"{problem.title}  ({path})", show_lines=True, title_justify="left")
    table.add_column("question", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("decided by")
    table.add_column("evidence")
    for v in report.verdicts:
        shown = v.verdict + "".join(f" ({f})" for f in v.flags)
        table.add_row(Text(v.question), Text(shown, style=STYLES.get(v.verdict)), Text(v.decided_by),
                      Text(v.evidence))
    console.print(table)
    console.print(", ".join(f"{n} {k}" for k, n in report.counts().items()), markup=False)


def _print_summary(console, problem, reports, unusable, csv_path):
    table = Table(title=f"{problem.title}  ({problem.path})", title_justify="left")
    table.add_column("submission", no_wrap=True)
    for k in SUMMARY + ("other",):
        table.add_column(k, justify="right")
    for r in reports:
        counts = r.counts()
        other = sum(n for k, n in counts.items() if k not in SUMMARY)
        table.add_row(Text(r.submission), *[str(counts.get(k, 0)) for k in SUMMARY], str(other))
    for name in unusable:
        table.add_row(Text(name), Text("unreadable", style="red"), *[""] * len(SUMMARY))
    console.print(table)
    if csv_path:
        console.print(f"wrote {csv_path}", markup=False)
