"""Command line: ``python -m symderive [solve] PATH... | list PATH... | check PROBLEM ANSWERS``.

Exit status: 0 when every question was answered, 1 when some failed (the
rest are still solved and written), 2 for bad usage or an unreadable file.
"""
import argparse
import difflib
import os
from concurrent.futures import ThreadPoolExecutor
import json
import sys
import textwrap
from pathlib import Path

from rich.console import Console

from .errors import ProblemFileError
from .files import write_atomically
from .parallel import solve_each
from .pdf import PdfError, compile_pdf, tex_engine, INSTALL_HINT
from .problem import DEFAULT_TIMEOUT, declaration_errors, find_problem_files, load_problem

DEFAULT_PROBLEMS = Path("problems")
#: The example problems: package data in an installed wheel, problems/ in a source checkout.
SHIPPED_PROBLEMS = (Path(__file__).resolve().parent / "examples"
                    if (Path(__file__).resolve().parent / "examples").is_dir()
                    else Path(__file__).resolve().parent.parent / "problems")
DEFAULT_OUTPUT = Path("output")


COMMANDS = ("solve", "list", "check", "serve", "examples")


def program_name(argv0=None):
    """How the user ran us, for the usage line: ``symderive`` (the script) or ``python -m symderive``.

    >>> program_name("/venv/bin/symderive"), program_name("/src/symderive/__main__.py")
    ('symderive', 'python -m symderive')
    """
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return "python -m symderive" if name in ("__main__.py", "-m", "-c", "") else name


def version():
    """The installed distribution's version (pyproject.toml), or 'unknown' when not installed."""
    import symderive
    return symderive.__version__


def mistyped_command(word):
    """The subcommand ``word`` was probably meant to be, or None.

    >>> mistyped_command("slove"), mistyped_command("chek"), mistyped_command("problems/x.yaml")
    ('solve', 'check', None)
    """
    if "/" in word or "." in word:
        return None
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    return close[0] if close else None


class _Version(argparse.Action):
    """``--version``, read from the installed metadata only when asked for (importlib.metadata
    costs every other call a few hundredths of a second)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {version()}")        # on stdout, as argparse's own version action
        parser.exit()


def build_parser():
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Solve deep-learning derivation problems and write LaTeX answer sheets.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command")
    solve = sub.add_parser("solve", help="solve problem files and write sheets (the default)")
    solve.add_argument("paths", nargs="*", type=Path,
                       help=f"problem files or folders (default: {DEFAULT_PROBLEMS}/)")
    solve.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                       help=f"folder for the sheets (default: {DEFAULT_OUTPUT}/)")
    pdf = solve.add_mutually_exclusive_group()
    pdf.add_argument("--pdf", dest="pdf", action="store_true", default=None,
                     help="compile each sheet to PDF (an error if no TeX engine is installed); "
                          "by default PDFs are made when pdflatex or latexmk is installed")
    pdf.add_argument("--no-pdf", dest="pdf", action="store_false", help="write only the .tex sheets")
    solve.add_argument("--json", action="store_true", help="print answers as JSON instead of a table")
    solve.add_argument("--only", action="append", metavar="ID", help="solve only this question id")
    solve.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds allowed per question (default {DEFAULT_TIMEOUT:g})")
    solve.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                       help="worker processes solving questions (default: one per core; 1 solves here)")
    solve.add_argument("--verify", action="store_true",
                       help="cross-check every derived answer with PyTorch autograd at random float64 "
                            "inputs (needs torch: pip install 'symderive[verify]'); exit status 1 on a "
                            "disagreement")
    solve.add_argument("--no-cache", action="store_true",
                       help="solve every question again instead of reading the answers an earlier run (solve or "
                            "check) cached on disk for the same problem file and engine (see docs/performance.md)")
    solve.add_argument("--html", action="store_true",
                       help="also write each answer key as HTML (maths as MathML) beside the .tex")
    lister = sub.add_parser("list", help="list problems and their question ids")
    lister.add_argument("paths", nargs="*", type=Path)
    from .checking.command import add_parser as add_check_parser
    add_check_parser(sub)
    from .web.command import add_parsers as add_web_parsers
    add_web_parsers(sub, SHIPPED_PROBLEMS)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not Path(argv[0]).exists() and mistyped_command(argv[0]):
        print(f"{program_name()}: error: unknown command '{argv[0]}'; did you mean "
              f"'{mistyped_command(argv[0])}'? (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help", "--version"):
        argv.insert(0, "solve")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    if args.command == "check":
        from .checking.command import run as check_answers
        return check_answers(args, console, errors)
    if args.command in ("serve", "examples"):
        from .web.command import run as run_web
        return run_web(args, SHIPPED_PROBLEMS, console, errors)
    paths = args.paths or [DEFAULT_PROBLEMS if DEFAULT_PROBLEMS.is_dir() or not SHIPPED_PROBLEMS.is_dir()
                           else SHIPPED_PROBLEMS]
    if not args.paths and paths[0] == SHIPPED_PROBLEMS and args.command == "solve":
        errors.print(f"no {DEFAULT_PROBLEMS}/ here: solving the bundled examples ({SHIPPED_PROBLEMS}) into "
                     f"{args.output}/ (copy them out for editing: {program_name()} examples DIR)", markup=False)
    missing = [p for p in paths if not p.exists()]
    if missing:
        errors.print(f"error: {missing[0]}: no such file or folder", markup=False)
        return 2
    files = find_problem_files(paths)
    if not files:
        errors.print(f"error: no problem files (.yaml) in {', '.join(map(str, paths))}", markup=False)
        return 2
    if args.command == "list":
        return list_problems(files, console, errors)
    return solve_problems(files, args, console, errors)


def readable_problems(files, errors, check_layers=True):
    """Yield (problem or None) per file; an unreadable file is reported and yields None."""
    for path in files:
        try:
            yield load_problem(path, check_layers=check_layers)
        except ProblemFileError as exc:
            errors.print(f"error: {exc}", markup=False)
            yield None


def unreported(declaration_errors, answers):
    """The declaration errors that no failed answer has reported already (one line per mistake)."""
    from .answer import Status
    failed = [a.error for a in answers if a.status is Status.FAILED]
    return [exc for exc in declaration_errors
            if not any(exc.message.split(": ", 1)[-1] in e and f":{exc.line}:{exc.column}:" in e for e in failed)]


def list_problems(files, console, errors):
    """Each file's title and its questions' ids and asks. Only the files' structure is read (no
    SymPy: ``list`` starts in a fifth of a second); mistakes in declared layers are reported by
    ``solve``."""
    status = 0
    for problem in readable_problems(files, errors, check_layers=False):
        if problem is None:
            status = 2
            continue
        path = problem.path
        console.print(f"{path}: {problem.title}", markup=False)
        for q in problem.questions:
            console.print(f"  {q.id}  [{q.ask}]", markup=False)
    return status


def solve_problems(files, args, console, errors):
    from .terminal import progress
    if args.pdf and tex_engine() is None:
        errors.print(f"error: --pdf: {INSTALL_HINT}", markup=False)
        return 2
    if args.pdf is None:
        args.pdf = tex_engine() is not None
        if not args.pdf and not args.json:
            errors.print(f"note: PDFs skipped, only .tex sheets written: {INSTALL_HINT}", markup=False)
    if args.verify:
        from . import verify
        try:
            verify.require_torch()
        except verify.TorchMissing as exc:
            errors.print(f"error: {exc}", markup=False)
            return 2
    # the declared layers are built (to report their mistakes) once the workers are solving: only this
    # process needs them, for the report (docs/performance.md, fifth round)
    problems = list(readable_problems(files, errors, check_layers=False))
    status = 2 if None in problems else 0
    problems = [p for p in problems if p is not None]
    if args.only:
        known = {q.id for p in problems for q in p.questions}
        unknown = [qid for qid in args.only if qid not in known]
        if unknown:
            errors.print(f"error: --only {', '.join(unknown)}: no such question (questions: "
                         f"{', '.join(sorted(known))})", markup=False)
            return 2
    args.output.mkdir(parents=True, exist_ok=True)
    # no sheet for a file none of whose questions was asked for
    problems = [p for p in problems if not args.only or any(q.id in args.only for q in p.questions)]
    total = sum(1 for p in problems for q in p.questions if not args.only or q.id in args.only)
    from .checking.answer_cache import run_cache
    caches = [run_cache(p, args.no_cache, errors) for p in problems]
    with progress(errors, total) as bar:
        solved = solve_each(problems, ids=set(args.only) if args.only else None, timeout=args.timeout,
                            jobs=args.jobs, done=bar, caches=caches, meanwhile=lambda: _check_layers(problems),
                            values=args.json or args.verify or args.html)
        status, records, pdf_jobs = _write_each(problems, solved, caches, args, console, errors, status, bar)
    return _finish(pdf_jobs, records, args, console, errors, status)


def _check_layers(problems):
    for problem in problems:
        problem.declaration_errors = declaration_errors(problem)


def _write_each(problems, solved, caches, args, console, errors, status, bar):
    """Report, write the sheets of, and start the PDFs of each problem as its answers arrive (the
    progress ``bar`` paused while they are printed)."""
    records = []
    pdf_pool, pdf_jobs = ThreadPoolExecutor(max_workers=os.cpu_count() or 1), []
    for problem, answers, cache in zip(problems, solved, caches):
        with bar.paused():
            status = _report(problem, answers, cache.hits if cache else 0, args, console, errors, status, records,
                             pdf_pool, pdf_jobs)
    pdf_pool.shutdown(wait=False)
    return status, records, pdf_jobs


def _report(problem, answers, cached, args, console, errors, status, records, pdf_pool, pdf_jobs):
    """One problem's errors, sheets, PDF job and answers (table or JSON records); ``cached`` of the
    answers were read from the answer cache."""
    from .answer import Status
    if args.verify:
        from . import verify
    for a in answers:
        if a.status is Status.FAILED:
            errors.print(f"error: {a.error}", markup=False)
            status = max(status, 1)
    for exc in unreported(problem.declaration_errors, answers):
        errors.print(f"error: {exc}", markup=False)
        status = max(status, 1)
    reports = verify.cross_check(problem, answers, timeout=args.timeout) if args.verify else []
    for r in reports:
        if not r.ok:
            errors.print(f"error: {problem.path}: question {r.question}: {r.sentence()}", markup=False)
            status = max(status, 1)
    tex = args.output / f"{problem.name}.tex"
    write_atomically(tex, problem.sheet(answers))
    written = [tex]
    if args.html:
        from .html_sheet import render_html
        written.append(args.output / f"{problem.name}.html")
        write_atomically(written[-1], render_html(problem, answers))
    if args.pdf:   # TeX runs in the background while the next problem is solved
        pdf_jobs.append(pdf_pool.submit(compile_pdf, tex))
    if args.json:
        records += [a.to_json() for a in answers]
    else:
        print_answers(console, problem, answers, written, cached)
        for line in verify.report_lines(problem, reports) if reports else []:
            console.print(line, markup=False)
    return status


def _finish(pdf_jobs, records, args, console, errors, status):
    for job in pdf_jobs:
        try:
            pdf = job.result()
            if not args.json:
                console.print(f"wrote {pdf}", markup=False)
        except PdfError as exc:
            errors.print(f"error: {exc}", markup=False)
            status = max(status, 1)
    if args.json:
        console.print_json(json.dumps(records)) if console.is_terminal else print(json.dumps(records, indent=2))
    return status


def print_answers(console, problem, answers, written, cached=0):
    """The answers as a table fitted to the terminal, then what was written and a summary line."""
    from .terminal import answer_table, summary
    console.print(answer_table(problem, answers, console.width, sheet=str(written[0])))
    console.print("wrote " + ", ".join(map(str, written)), markup=False)     # paths whole, never broken
    # wrapped at spaces only, so that a path is never broken either
    console.print("\n".join(textwrap.wrap(summary(problem, answers, cached), console.width, break_long_words=False,
                                          break_on_hyphens=False)), markup=False)
