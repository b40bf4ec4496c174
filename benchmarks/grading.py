"""Grading speed (issue 14): answers checked per CPU-second on folders of 50 realistic submissions.

The submissions are built from the labelled collection (tests/grading_collection/answers.yaml): for
each problem it covers, student k answers every question of the collection with one of the
collection's answers to it (chosen by k), as a class hands in the same assignment, so that some
answers repeat, as they do in a class. Each problem is graded with ``grade`` as
``symderive check FOLDER`` does (2 worker processes), solving its questions once.

Printed per problem and in total: answers, unique answers, wall time, CPU time (this process and its
workers, the questions' solving included), answers per CPU-second ("per core"), unique answers per
CPU-second (what the rate would be if no two students wrote the same answer), and the ratio against the
baseline: the same run with
another checkout's code (``--baseline DIR``, e.g. a ``git archive main``), or the 35 answers/s/core the
issue measured when no baseline is given.

Then the same with the disk cache of solved answers: once with an empty cache (cold: every question
solved and written) and once more with it (warm: the answers read back), in fresh processes.

Run:  python benchmarks/grading.py [--students 50] [--baseline /tmp/symderive-main]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "tests" / "grading_collection" / "answers.yaml"
ISSUE_BASELINE = 35.0          # answers/s/core measured in issue 14 before this work
TARGET = 200.0


def cpu_seconds():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def submissions(students):
    """{problem file: {student: {question: LaTeX}}} from the collection."""
    import yaml
    cases = yaml.safe_load(COLLECTION.read_text())
    answers = defaultdict(lambda: defaultdict(list))
    for c in cases:
        answers[c["problem"]][c["question"]].append(c["answer"])
    out = {}
    for problem, by_question in answers.items():
        out[problem] = {f"student{k:02d}": {q: options[(k * 7 + len(q)) % len(options)]
                                            for q, options in by_question.items()}
                        for k in range(students)}
    return out


def measure(students, cache_dir=None):
    """One run with the code importable here: a dict of figures (printed as JSON by --child). With
    ``cache_dir``, solved answers are read from and kept in that answer cache (when the code has one)."""
    from symderive import load_problem
    from symderive.checking import grade as grading
    rows = []
    for name, subs in submissions(students).items():
        problem = load_problem(ROOT / "problems" / name)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        if cache_dir and hasattr(grading, "answer_cache"):
            reports = grading.grade(problem, subs, workers=2, cache=grading.answer_cache(problem, folder=cache_dir))
        else:
            reports = grading.grade(problem, subs, workers=2)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        n = sum(1 for r in reports.values() for v in r.verdicts if v.verdict != "missing")
        unique = len({(q, " ".join(a.split())) for s in subs.values() for q, a in s.items()})
        rows.append({"problem": name, "answers": n, "unique": unique, "wall": wall, "cpu": cpu})
    return rows


def run_child(code_dir, students, cache_dir=None):
    env = dict(os.environ, PYTHONPATH=str(code_dir), PYTHONDONTWRITEBYTECODE="1")
    extra = ["--cache-dir", str(cache_dir)] if cache_dir else []
    out = subprocess.run([sys.executable, __file__, "--child", "--students", str(students), *extra], env=env,
                         capture_output=True, text=True, cwd=code_dir, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(title, rows):
    print(title)
    print(f"  {'problem':28s} {'answers':>7s} {'unique':>6s} {'wall s':>7s} {'CPU s':>7s} {'ans/s/core':>10s} "
          f"{'unique/s/core':>13s}")
    for r in rows:
        print(f"  {r['problem']:28s} {r['answers']:7d} {r['unique']:6d} {r['wall']:7.2f} {r['cpu']:7.2f} "
              f"{r['answers'] / r['cpu']:10.1f} {r['unique'] / r['cpu']:13.1f}")
    n, cpu, wall, unique = (sum(r[k] for r in rows) for k in ("answers", "cpu", "wall", "unique"))
    print(f"  {'all':28s} {n:7d} {unique:6d} {wall:7.2f} {cpu:7.2f} {n / cpu:10.1f} {unique / cpu:13.1f}")
    return n / cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.students, args.cache_dir)))
        return
    rate = show(f"this checkout, {args.students} submissions per problem, no answer cache:",
                run_child(ROOT, args.students))
    with tempfile.TemporaryDirectory() as folder:
        cold = show("with an empty answer cache (cold: solved and cached):", run_child(ROOT, args.students, folder))
        warm = show("again with that cache (warm: the answers read from disk):",
                    run_child(ROOT, args.students, folder))
    print(f"answer cache: cold {cold:.1f}, warm {warm:.1f} answers/s/core ({warm / cold:.2f}×)")
    if args.baseline:
        base = show(f"baseline ({args.baseline}):", run_child(args.baseline, args.students))
        print(f"ratio: {rate / base:.2f}× the baseline's answers per CPU-second")
    else:
        print(f"ratio: {rate / ISSUE_BASELINE:.2f}× the issue's 35 answers/s/core (no --baseline given)")
    print(f"target {TARGET:g} answers/s/core: {'met' if rate >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
