"""Fuzz benchmark: hostile answers and hostile problem files, counting crashes, hangs and silent
wrong results. Issue 15's target: at least 5,000 answers and 300 problem files in under 10
minutes on this 2-core machine, and every count zero.

Answers (checked in the checker's worker pool, both cores, hard time limits): token soups and
random text, adversarial LaTeX, huge numbers, trivial answers (``1``, ``0``, ``x``) to every
shipped question, and the engine's own answers made wrong (``+ 1``, a factor 2). A crash is an
``error`` verdict; a hang is a worker killed at its hard limit, or a ``timeout`` on an answer
shorter than 20 characters; a silent wrong result is a ``correct`` verdict for an answer made
wrong, or for random text.

Problem files (tests/hostile_problems.py, each in a forked process under a hard limit): the
families of issue 15 and mutations of the shipped problems. A crash is a traceback, an internal
error or a multi-line error; a hang is a process killed at the hard limit; a silent wrong result
is an outcome other than the one the family must have.

Run:  python benchmarks/fuzz.py [--answers 5000] [--problems 300] [--seed 15]
"""
import argparse
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import wait
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostile_problems as hp  # noqa: E402
from test_check_cli import ADVERSARIAL, TOKENS  # noqa: E402
from symderive import load_problem  # noqa: E402
from symderive.checking.grade import DEFAULT_TIMEOUT, prepare, run_tasks  # noqa: E402

TARGET_SECONDS = 600
ANSWER_TIMEOUT = DEFAULT_TIMEOUT     # as `check` runs
PROBLEM_TIMEOUT = 5.0          # per question solved
PROBLEM_HARD_LIMIT = 60.0      # per problem file, load included
HUGE = [r"\exp(\exp(\exp(\exp(10))))", r"(\sqrt{2} \cdot 10^{59})^{1000}", r"(10^{1000})^{1000}",
        "1." + "1" * 1500, r"100000!", r"\binom{100000}{50000}", r"e^{e^{e^{e^{10}}}}", "9" * 5000,
        r"\frac{1}{" * 40 + "1" + "}" * 40, r"x_{" * 100, "\\begin{answer}{a}" * 1000, r"\sum_{i=1}^{10^{9}} 1"]
TRIVIAL = ["1", "0", "x", "-1", r"\infty", "?", r"\emptyset"]


def cpu_seconds():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# Answers -------------------------------------------------------------------------------------

def answer_cases(rng, infos, count):
    """[(kind, qid, latex)]: trivial and huge answers to every question, wrong versions of the
    engine's answers, then token soups, random text and adversarial LaTeX up to ``count``."""
    qids = sorted(infos)
    cases = [("trivial", q, t) for q in qids for t in TRIVIAL]
    cases += [("huge", q, h) for q in qids for h in HUGE]
    for q in qids:
        answer = infos[q].answer
        for r in getattr(answer, "results", [])[:3]:
            if r.latex and len(r.latex) < 3000 and r"\text" not in r.latex:
                cases += [("made wrong", q, r.latex + " + 1"), ("made wrong", q, r.latex.split("=")[-1] + " - 1")]
    while len(cases) < count:
        kind = rng.choice(["soup", "soup", "text", "adversarial"])
        latex = {"soup": lambda: " ".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 40))),
                 "text": lambda: "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0, 0x2FFF)]))
                                         for _ in range(rng.randint(0, 120))),
                 "adversarial": lambda: rng.choice(ADVERSARIAL + HUGE)}[kind]()
        cases.append((kind, rng.choice(qids), latex))
    return cases


def classify_answer(kind, latex, verdict):
    if verdict.verdict == "error":
        return "crash"
    if verdict.verdict == "timeout" and ("stopped" in verdict.evidence or len(latex) < 20):
        return "hang"
    if verdict.verdict == "correct" and kind in ("made wrong", "text", "huge"):
        return "silent wrong"
    return None


def fuzz_answers(rng, count, problems):
    infos = {}
    for problem in problems:
        infos.update(prepare(problem, {q.id for q in problem.questions if q.ask != "text"}))
    cases = answer_cases(rng, infos, count)
    tasks = [(n, qid, latex) for n, (_, qid, latex) in enumerate(cases)]
    verdicts = run_tasks(infos, tasks, timeout=ANSWER_TIMEOUT, workers=2)
    found, outcomes = Counter(), Counter()
    examples = {}
    for n, (kind, qid, latex) in enumerate(cases):
        v = verdicts[n]
        outcomes[v.verdict] += 1
        defect = classify_answer(kind, latex, v)
        if defect:
            found[defect] += 1
            examples.setdefault(defect, (qid, latex[:200], v.verdict, v.evidence[:200]))
    return len(cases), found, outcomes, examples


# Problem files ---------------------------------------------------------------------------------

def _problem_worker(conn, case, folder):
    path = Path(folder) / "fuzz.yaml"
    path.write_text(case.text)
    try:
        conn.send(hp.run_case(case, path, timeout=PROBLEM_TIMEOUT))
    except BaseException as exc:  # noqa: BLE001 -- reported as a crash
        conn.send([f"crash: the worker: {type(exc).__name__}: {exc!s:.200}"])


def fuzz_problems(rng, count, scratch):
    ctx = multiprocessing.get_context("fork")
    cases = [hp.generate(rng) for _ in range(count)]
    pending, running, found, families, examples = list(enumerate(cases)), {}, Counter(), Counter(), {}
    while pending or running:
        while pending and len(running) < 2:
            n, case = pending.pop()
            folder = Path(scratch) / f"p{n}"
            folder.mkdir()
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_problem_worker, args=(child, case, folder), daemon=True)
            process.start()
            child.close()
            running[parent] = (n, case, process, time.monotonic())
        ready = wait(list(running), timeout=1.0)
        for conn in list(running):
            n, case, process, started = running[conn]
            defects = None
            if conn in ready:
                try:
                    defects = conn.recv()
                except EOFError:
                    defects = [f"crash: the process died (exit code {process.exitcode})"]
            elif time.monotonic() - started > PROBLEM_HARD_LIMIT:
                process.kill()
                defects = [f"hang: no outcome within {PROBLEM_HARD_LIMIT:g} s"]
            if defects is None:
                continue
            process.join()
            conn.close()
            del running[conn]
            families[case.family.split(" (")[0]] += 1
            for d in defects:
                kind = {"crash": "crash", "hang": "hang", "wrong": "silent wrong"}[d.split(":")[0]]
                found[kind] += 1
                examples.setdefault(kind, (case.family, d, case.text[:300]))
    return len(cases), found, families, examples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=5000)
    parser.add_argument("--problems", type=int, default=300)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    start, cpu = time.perf_counter(), cpu_seconds()
    problems = [load_problem(p) for p in hp.SHIPPED]
    n_answers, answer_defects, outcomes, answer_examples = fuzz_answers(rng, args.answers, problems)
    answers_wall, answers_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(f"answers: {n_answers} in {answers_wall:.0f} s wall, {answers_cpu:.0f} s CPU; verdicts: "
          + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    with tempfile.TemporaryDirectory() as scratch:
        n_problems, problem_defects, families, problem_examples = fuzz_problems(rng, args.problems, scratch)
    wall, total_cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(f"problem files: {n_problems} in {wall - answers_wall:.0f} s wall, {total_cpu - answers_cpu:.0f} s CPU; "
          "families: " + ", ".join(f"{k} {v}" for k, v in sorted(families.items())))
    total = answer_defects + problem_defects
    for kind in ("crash", "hang", "silent wrong"):
        print(f"{kind}: {total[kind]} (answers {answer_defects[kind]}, problem files {problem_defects[kind]})")
    for kind, example in {**answer_examples, **problem_examples}.items():
        print(f"  first {kind}: {example}")
    print(f"total: {wall:.0f} s wall, {total_cpu:.0f} s CPU, against the target of {TARGET_SECONDS} s: "
          + ("met" if wall < TARGET_SECONDS else "NOT met"))
    ok = not sum(total.values()) and wall < TARGET_SECONDS and n_answers >= 5000 and n_problems >= 300
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
