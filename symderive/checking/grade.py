"""Grading runs: every answer checked in a worker process under a hard wall-clock limit.

The engine's answers are solved once in the parent; worker processes are forked from it
(so they share them), each check runs under a soft limit (SIGALRM, which interrupts
SymPy) and the parent kills a worker that overruns its hard limit (SIGALRM alone cannot
interrupt C-level work such as big-integer arithmetic) and starts a fresh one: one
answer can neither hang nor crash the others. A folder of submissions is graded with
the same pool (both cores), with a progress callback per finished answer.
"""
import multiprocessing
import os
import time
import zlib
from multiprocessing.connection import wait

from ..errors import QuestionTimeout
from ..timeouts import CHECK_TIMEOUT as DEFAULT_TIMEOUT, time_limit
from .compare import check_latex
from .targets import question_info
from .verdict import ERROR, MISSING, TIMEOUT, UNCHECKED, CheckReport, Verdict

#: Extra seconds past the soft limit before a worker is killed.
GRACE = 2.0
MEMORY_LIMIT = 3 * 2 ** 30


def prepare(problem, qids, solve_timeout=60.0):
    """{question id: QuestionInfo} for the questions that are answered (solved once, here)."""
    infos = {}
    for q in problem.questions:
        if q.id not in qids:
            continue
        answer = problem.solve_question(q, solve_timeout)
        infos[q.id] = question_info(problem, q, answer)
    return infos


def check_one(info, latex, timeout=DEFAULT_TIMEOUT, seed=None):
    """The verdict for one answer, in this process (soft time limit only)."""
    start = time.monotonic()
    qid = info.question.id
    if not info.checkable:
        return Verdict(qid, UNCHECKED, "", info.reason, answer=latex)
    if not isinstance(latex, str) or not latex.strip():
        return Verdict(qid, MISSING, "", "the answer is empty", answer="")
    seed = zlib.crc32(f"{qid}\n{latex}".encode()) if seed is None else seed
    try:
        with time_limit(timeout):
            outcome = check_latex(info, latex, start + timeout, seed)
        verdict = Verdict(qid, outcome.verdict, outcome.decided_by, outcome.evidence, outcome.position, latex,
                          flags=list(outcome.flags))
    except QuestionTimeout:
        verdict = Verdict(qid, TIMEOUT, "time limit", f"not decided within {timeout:g} s", answer=latex)
    except RecursionError:
        verdict = Verdict(qid, "unparseable", "parse", "the answer is nested too deeply", answer=latex)
    except MemoryError:
        verdict = Verdict(qid, ERROR, "", "the check ran out of memory", answer=latex)
    except Exception as exc:   # a checker bug must not take the other answers with it
        verdict = Verdict(qid, ERROR, "", f"internal error: {type(exc).__name__}: {exc}", answer=latex)
    verdict.seconds = time.monotonic() - start
    return verdict


# The pool ---------------------------------------------------------------------------------

_STATE = {}


def serve_tasks(conn, handle, on_error):
    """A checking worker's loop (here and in the web page's pool): under the memory limit, answer
    each task from ``conn`` with ``handle(task)`` until None or a closed pipe; a reply that cannot
    be sent (unpicklable) is replaced by ``on_error(task, exc)`` rather than killing the worker."""
    limit_memory()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        reply = handle(task)
        try:
            conn.send(reply)
        except Exception as exc:
            conn.send(on_error(task, exc))


def _worker(conn, timeout):
    infos = _STATE["infos"]
    serve_tasks(conn, lambda task: (task[0], check_one(infos[task[1]], task[2], timeout)),
                lambda task, exc: (task[0], Verdict(task[1], ERROR, "", f"internal error: {exc}", answer=task[2])))


def limit_memory():
    try:
        import resource
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        current = pages * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (current + MEMORY_LIMIT, current + MEMORY_LIMIT))
    except Exception:
        pass


class _Slot:
    def __init__(self, ctx, timeout):
        self.parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, timeout), daemon=True)
        self.process.start()
        child.close()
        self.task, self.started = None, None


def run_tasks(infos, tasks, timeout=DEFAULT_TIMEOUT, workers=2, on_done=None):
    """Check ``tasks`` [(key, qid, latex)] in worker processes; {key: Verdict}."""
    results = {}
    if not tasks:
        return results
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:                       # no fork (Windows): in-process, soft limits only
        for key, qid, latex in tasks:
            results[key] = check_one(infos[qid], latex, timeout)
            if on_done:
                on_done(key, results[key])
        return results
    _STATE["infos"] = infos
    pending = list(reversed(tasks))
    slots = [_Slot(ctx, timeout) for _ in range(max(1, min(workers, len(tasks))))]
    hard = timeout + GRACE
    try:
        while pending or any(s.task for s in slots):
            for s in slots:
                if s.task is None and pending:
                    s.task = pending.pop()
                    s.started = time.monotonic()
                    s.parent.send(s.task)
            busy = [s for s in slots if s.task]
            now = time.monotonic()
            wait_for = max(0.0, min(s.started + hard - now for s in busy))
            ready = wait([s.parent for s in busy], timeout=wait_for)
            for k, s in enumerate(slots):
                if not s.task:
                    continue
                key, qid, latex = s.task
                verdict = None
                if s.parent in ready:
                    try:
                        got_key, verdict = s.parent.recv()
                    except (EOFError, OSError):
                        code = s.process.exitcode
                        verdict = Verdict(qid, ERROR, "", f"the checking process died (exit code {code})",
                                          answer=latex)
                        slots[k] = _replace(s, ctx, timeout)
                elif time.monotonic() >= s.started + hard:
                    verdict = Verdict(qid, TIMEOUT, "time limit", f"not decided within {timeout:g} s "
                                      "(the check was stopped)", answer=latex, seconds=hard)
                    slots[k] = _replace(s, ctx, timeout)
                if verdict is not None:
                    results[key] = verdict
                    slots[k].task = None
                    if on_done:
                        on_done(key, verdict)
    finally:
        for s in slots:
            try:
                s.parent.send(None)
            except Exception:
                pass
        for s in slots:
            s.process.join(timeout=1)
            if s.process.is_alive():
                s.process.kill()
                s.process.join()
        _STATE.clear()
    return results


def _replace(slot, ctx, timeout):
    slot.process.kill()
    slot.process.join()
    slot.parent.close()
    return _Slot(ctx, timeout)


# Submissions ---------------------------------------------------------------------------

def unknown_ids(problem, answers):
    known = {q.id for q in problem.questions}
    return [k for k in answers if k not in known]


def grade(problem, submissions, timeout=DEFAULT_TIMEOUT, workers=2, isolate=True, on_done=None,
          solve_timeout=60.0):
    """Check several submissions ({name: {id: LaTeX}}) against one problem; {name: CheckReport}.

    Questions a submission does not answer are ``missing`` (authored-text questions are
    only listed when answered: there is nothing to check them against).
    """
    wanted = {qid for answers in submissions.values() for qid in answers}
    infos = prepare(problem, wanted, solve_timeout)
    text_questions = {q.id for q in problem.questions if q.ask == "text"}
    tasks = []
    for name, answers in submissions.items():
        for q in problem.questions:
            if q.id in answers and str(answers[q.id]).strip():
                tasks.append(((name, q.id), q.id, str(answers[q.id])))
    if isolate:
        results = run_tasks(infos, tasks, timeout, workers, on_done)
    else:
        results = {}
        for key, qid, latex in tasks:
            results[key] = check_one(infos[qid], latex, timeout)
            if on_done:
                on_done(key, results[key])
    reports = {}
    for name, answers in submissions.items():
        report = CheckReport(problem.name, submission=name)
        for q in problem.questions:
            key = (name, q.id)
            if key in results:
                v = results[key]
            elif q.id in text_questions:
                continue
            else:
                v = Verdict(q.id, MISSING, "", "no answer given")
            v.submission = name
            report.verdicts.append(v)
        reports[name] = report
    return reports


def check(problem, answers, timeout=DEFAULT_TIMEOUT, workers=2, isolate=True):
    """Check one submission ({id: LaTeX}); a CheckReport. Unknown ids raise KeyError."""
    bad = unknown_ids(problem, answers)
    if bad:
        raise KeyError(f"{problem.path}: no question {bad[0]!r}; questions: "
                       f"{', '.join(q.id for q in problem.questions)}")
    report = grade(problem, {"": dict(answers)}, timeout, workers, isolate)[""]
    for v in report.verdicts:
        v.submission = ""
    return report

