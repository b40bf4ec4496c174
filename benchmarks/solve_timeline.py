"""Timeline of one cold `python -m symderive solve` run: where the parent's and the workers' time goes.

In-process timestamps (seconds since launch) around the parent's phases (imports, loading, forking the
workers, each file's report and PDF) and around each question in the forked workers, then CPU time of
the parent, of each worker, and of the other children (pdflatex). Solves every question
(SYMDERIVE_NO_CACHE=1). Issue 17: the fifth-round section of docs/performance.md was measured with it.

Run:  python benchmarks/solve_timeline.py [--tree PATH] [solve arguments...]
      e.g. python benchmarks/solve_timeline.py --tree /work/main problems/ --no-pdf
      --tree: measure another checkout's code (e.g. main) with this script.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def instrumented(log):
    """Runs in the measured process: wrap the CLI's phases, then run the CLI."""
    launch = float(os.environ["TIMELINE_LAUNCH"])

    def mark(what, tag=""):
        with open(log, "a") as f:
            f.write(json.dumps(dict(t=time.time() - launch, pid=os.getpid(), what=what, tag=tag,
                                    cpu=time.process_time())) + "\n")
    mark("python started")
    import sympy  # noqa: F401
    mark("sympy imported")
    from symderive import cli, parallel
    mark("cli imported")

    def wrap(module, name, label, tag):
        f = getattr(module, name)

        def timed(*args, **kwargs):
            mark(label + " start", tag(args))
            result = f(*args, **kwargs)
            mark(label + " end", tag(args))
            return result
        timed.__module__, timed.__qualname__ = f.__module__, f.__qualname__      # picklable as f is
        setattr(module, name, timed)
    wrap(cli, "load_problem", "load", lambda a: Path(a[0]).name)
    wrap(cli, "_report", "report", lambda a: a[0].name)
    wrap(cli, "compile_pdf", "pdf", lambda a: Path(a[0]).name)
    wrap(parallel, "_solve_and_prepare", "question", lambda a: f"{a[0][0]}:{a[0][1]}")
    solve_all = parallel._solve_all

    def timed_solve_all(*args, **kwargs):
        mark("solving starts")
        for answers in solve_all(*args, **kwargs):
            mark("a file's answers are in")
            yield answers
    parallel._solve_all = timed_solve_all
    import concurrent.futures.process as pool
    start = pool.ProcessPoolExecutor._start_executor_manager_thread

    def timed_start(self):
        mark("forking the workers")
        start(self)
    pool.ProcessPoolExecutor._start_executor_manager_thread = timed_start
    status = cli.main(sys.argv[1:])
    mark("end")
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    mark(json.dumps([own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime]), "cpu")
    return status


def summary(records):
    parent = records[0]["pid"]
    mine = [r for r in records if r["pid"] == parent]
    workers = {}
    for r in records:
        if r["pid"] != parent:
            workers.setdefault(r["pid"], []).append(r)

    def at(what):
        r = next(r for r in mine if r["what"] == what)
        return f"{r['t']:.2f} s (parent CPU {r['cpu']:.2f} s)"
    lines = [f"{what}: {at(what)}" for what in ("sympy imported", "cli imported", "solving starts")]
    loads = [r for r in mine if r["what"].startswith("load")]
    lines.insert(2, f"problem files loaded: {loads[0]['t']:.2f}-{loads[-1]['t']:.2f} s "
                    f"(CPU {loads[-1]['cpu'] - loads[0]['cpu']:.3f} s)")
    if workers:
        lines.append(f"forking the workers: {at('forking the workers')}")
        for pid, rs in workers.items():
            starts = [r for r in rs if r["what"] == "question start"]
            ends = [r for r in rs if r["what"] == "question end"]
            busy = sum(e["t"] - s["t"] for s, e in zip(starts, ends))
            lines.append(f"  worker {pid}: {len(ends)} questions, {starts[0]['t']:.2f}-{ends[-1]['t']:.2f} s, "
                         f"busy {busy:.2f} s, CPU {ends[-1]['cpu']:.2f} s")
    ready = [r for r in mine if r["what"] == "a file's answers are in"]
    start = next(r for r in mine if r["what"] == "solving starts")
    times = ", ".join(f"{r['t']:.2f}" for r in ready)
    lines.append(f"files' answers in at {times} s; parent CPU while solving "
                 f"(with the reports of files already in) {ready[-1]['cpu'] - start['cpu']:.2f} s")
    reports = [r for r in mine if r["what"].startswith("report")]
    lines.append(f"reports: CPU {sum(b['cpu'] - a['cpu'] for a, b in zip(reports[::2], reports[1::2])):.2f} s")
    pdfs = [r for r in mine if r["what"].startswith("pdf")]
    if pdfs:
        lines.append(f"PDFs: {min(r['t'] for r in pdfs):.2f}-{max(r['t'] for r in pdfs):.2f} s")
    own, children = json.loads(next(r for r in mine if r["tag"] == "cpu")["what"])
    worker_cpu = sum(rs[-1]["cpu"] for rs in workers.values())
    lines.append(f"end: {at('end')}; CPU: parent {own:.2f} s, workers {worker_cpu:.2f} s, "
                 f"other children (pdflatex) {children - worker_cpu:.2f} s; load {os.getloadavg()[0]:.2f}")
    return "\n".join(lines)


def main():
    args = sys.argv[1:]
    tree = ROOT
    if "--tree" in args:
        k = args.index("--tree")
        tree = Path(args[k + 1]).resolve()
        del args[k:k + 2]
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "timeline.jsonl"
        env = dict(os.environ, SYMDERIVE_NO_CACHE="1", PYTHONPATH=str(tree), TIMELINE_LAUNCH=repr(time.time()))
        done = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
                               f"import solve_timeline as t; sys.exit(t.instrumented({str(log)!r}))", "solve", *args,
                               "-o", str(Path(scratch) / "out")], cwd=tree, capture_output=True, text=True, env=env)
        print(f"exit {done.returncode}; {tree}: solve {' '.join(args)}")
        print(summary([json.loads(line) for line in log.read_text().splitlines()]))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
