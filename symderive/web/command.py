"""The ``serve`` and ``examples`` subcommands (parsers and runners, kept out of cli.py)."""
import shutil
from pathlib import Path

from ..timeouts import CHECK_TIMEOUT as DEFAULT_TIMEOUT


def add_parsers(sub, shipped):
    serve = sub.add_parser("serve", help="a local web page where students check answers (and TAs read keys)")
    serve.add_argument("paths", nargs="*", type=Path,
                       help="problem files or folders (default: the bundled examples)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds allowed per answer (default {DEFAULT_TIMEOUT:g})")
    serve.add_argument("--workers", type=int, default=2, help="checking processes (default 2)")
    serve.add_argument("--no-cache", dest="cache", action="store_false",
                       help="solve the questions again instead of reading the answers cached on disk")
    examples = sub.add_parser("examples", help="copy the bundled example problems into a folder for editing")
    examples.add_argument("folder", type=Path, help="where to copy them (created if missing)")


def run(args, shipped, console, errors):
    if args.command == "examples":
        return copy_examples(shipped, args.folder, console, errors)
    from ..problem import find_problem_files
    from .app import serve
    paths = args.paths or [shipped]
    missing = [p for p in paths if not p.exists()]
    if missing:
        errors.print(f"error: {missing[0]}: no such file or folder", markup=False)
        return 2
    problems = _load(find_problem_files(paths), errors)
    if not problems:
        errors.print("error: no readable problem files", markup=False)
        return 2
    if args.workers < 1 or not 0 < args.timeout < float("inf") or not 0 < args.port < 65536:
        errors.print("error: --workers, --timeout and --port must be positive (port below 65536)", markup=False)
        return 2
    serve(problems, args.host, args.port, args.timeout, args.workers,
          log=lambda line: console.print(line, markup=False), cache=args.cache)
    return 0


def _load(files, errors):
    from ..errors import ProblemFileError
    from ..problem import load_problem
    out = []
    for path in files:
        try:
            out.append(load_problem(path))
        except ProblemFileError as exc:
            errors.print(f"error: {exc}", markup=False)
    return out


def copy_examples(shipped, folder, console, errors):
    files = sorted(shipped.glob("*.yaml"))
    folder.mkdir(parents=True, exist_ok=True)
    existing = [folder / f.name for f in files if (folder / f.name).exists()]
    if existing:
        errors.print(f"error: {existing[0]} exists; nothing copied (choose an empty folder)", markup=False)
        return 2
    for f in files:
        shutil.copyfile(f, folder / f.name)
    console.print(f"copied {len(files)} example problem files to {folder}/ "
                  f"(solve them with: symderive {folder})", markup=False)
    return 0
