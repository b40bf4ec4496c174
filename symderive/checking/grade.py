"""Grading runs: every answer checked in a worker process under a hard wall-clock limit.

The engine's answers are solved once in the parent; worker processes are forked from it
(so they share them), each check runs under a soft limit (SIGALRM, which interrupts
SymPy) and the parent kills a worker that overruns its hard limit (SIGALRM alone cannot
interrupt C-level work such as big-integer arithmetic) and starts a fresh one: one
answer can neither hang nor crash the others. A folder of submissions is graded with
the same pool (both cores), with a progress callback per finished answer.
"""
import dataclasses
import multiprocessing
import os
import time
import zlib
from multiprocessing.connection import wait

from ..errors import QuestionTimeout
from ..timeouts import CHECK_TIMEOUT as DEFAULT_TIMEOUT, time_limit
from .compare import check_latex
from .targets import question_info
from .verdict import CORRECT, ERROR, INCORRECT, MISSING, TIMEOUT, UNCHECKED, UNKNOWN_NAME, UNPARSEABLE, \
    CheckReport, Verdict

#: Extra seconds past the soft limit before a worker is killed.
GRACE = 2.0
MEMORY_LIMIT = 3 * 2 ** 30


def prepare(problem, qids, solve_timeout=60.0, cache=None):
    """{question id: QuestionInfo} for the questions that are answered (solved once, here, or read from
    ``cache``, an ``AnswerCache`` of the problem file: see answer_cache.py)."""
    infos = {}
    for q in problem.questions:
        if q.id not in qids:
            continue
        infos[q.id] = question_info(problem, q, solved_answer(problem, q, solve_timeout, cache))
    return infos


def solved_answer(problem, question, solve_timeout, cache):
    """The engine's answer to ``question``: from ``cache`` (an AnswerCache, or None), else solved (and stored)."""
    answer = cache.get(question.id) if cache is not None else None
    if answer is None:
        answer = problem.solve_question(question, solve_timeout)
        if cache is not None:
            cache.put(question.id, answer)
    return answer


def answer_cache(problem, enabled=True, folder=None):
    """The disk cache of ``problem``'s answers, or None when it is turned off (``enabled`` False,
    ``SYMDERIVE_NO_CACHE=1``) or the problem was not read from a file."""
    from .answer_cache import AnswerCache
    if not enabled or os.environ.get("SYMDERIVE_NO_CACHE") or not getattr(problem, "path", None):
        return None
    cache = AnswerCache(problem.path, folder)
    return cache if cache.enabled else None


def check_one(info, latex, timeout=DEFAULT_TIMEOUT, seed=None, part=None):
    """The verdict for one answer, in this process (soft time limit only). ``part``: the answer is to
    that part of the question only (``csce636-q2:dW1``: a result's label or key)."""
    start = time.monotonic()
    qid = info.question.id
    if not info.checkable:
        return Verdict(qid, UNCHECKED, "", info.reason, answer=latex)
    if not isinstance(latex, str) or not latex.strip():
        return Verdict(qid, MISSING, "", "the answer is empty", answer="")
    target = None
    if part is not None:
        target = find_part(info, part)
        if target is None:
            return Verdict(qid, UNKNOWN_NAME, "parts", f"no part “{part}” in {qid} (its parts: "
                           f"{', '.join(part_ids(info))})", answer=latex)
    seed = zlib.crc32(f"{qid}\n{latex}".encode()) if seed is None else seed
    try:
        with time_limit(timeout):
            outcome = check_latex(info, latex, start + timeout, seed, target)
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
    serve_tasks(conn, lambda task: (task[0], _check_task(infos, task, timeout)),
                lambda task, exc: (task[0], Verdict(task[1], ERROR, "", f"internal error: {exc}", answer=task[2])))


def _check_task(infos, task, timeout):
    _, qid, latex, part = task
    if part is None:
        return check_one(infos[qid], latex, timeout)
    return check_one(infos[qid], latex, timeout, part=part)


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
    """Check ``tasks`` [(key, qid, latex, part)] in worker processes; {key: Verdict}."""
    results = {}
    if not tasks:
        return results
    tasks = [tuple(t) + (None,) * (4 - len(t)) for t in tasks]     # (key, qid, latex) answers a whole question
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:                       # no fork (Windows): in-process, soft limits only
        for task in tasks:
            key = task[0]
            results[key] = _check_task(infos, task, timeout)
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
                key, qid, latex, _ = s.task
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
    """Answer ids naming no question. ``QID:PART`` counts as its question's. Neither an unknown part
    nor an unknown question refuses the file: each is a verdict on that answer (``unknown_question``)."""
    known = {q.id for q in problem.questions}
    return [k for k in answers if k not in known and split_id(k, known)[0] not in known]


def split_id(key, known):
    """(question id, part or None): ``csce636-q2:dW1`` -> ("csce636-q2", "dW1"); a question id that
    itself holds a colon is kept whole.

    >>> split_id("q2:dW1", {"q2"}), split_id("q2", {"q2"}), split_id("a:b", {"a:b"})
    (('q2', 'dW1'), ('q2', None), ('a:b', None))
    """
    if key in known or ":" not in key:
        return key, None
    qid, part = key.rsplit(":", 1)
    return qid, part.strip()


def part_ids(info):
    """The ids a part answer may use: each result's key (and label where it differs)."""
    out = []
    for t in info.targets:
        for name in (t.key, t.label):
            if name and name not in out:
                out.append(name)
    return out


def find_part(info, part):
    """The target a part id names: its key or label as written, or loosely (``dW1`` for ``de/dW1``,
    ``W'`` for ``W'``, case and punctuation aside)."""
    def norm(s):
        return "".join(ch for ch in str(s) if ch.isalnum() or ch == "'").lower()
    want = norm(part)
    for t in info.targets:
        if part in (t.key, t.label) or want in (norm(t.key), norm(t.label)):
            return t
    for t in info.targets:                      # de/dW1 as dW1
        for name in (t.key, t.label):
            if "/" in str(name) and want == norm(str(name).split("/", 1)[1]):
                return t
    return None


def unknown_question(problem, key, latex=""):
    """The verdict for an answer whose id names no question of ``problem`` (a typo, another problem's
    id): ``unknown name``, decided by ``question id``, with the nearest ids as a hint. It counts as not
    correct (exit status 1) but the rest of the file is graded.

    >>> from types import SimpleNamespace as N
    >>> p = N(name="hw", questions=[N(id="nyu21-1.1a"), N(id="nyu21-1.1b")])
    >>> unknown_question(p, "nyu21-1.1c", "1").evidence
    'no question “nyu21-1.1c” in hw (did you mean nyu21-1.1b, nyu21-1.1a?); this answer was not graded'
    """
    import difflib
    ids = [q.id for q in problem.questions]
    qid = key.rsplit(":", 1)[0] if ":" in key else key
    near = difflib.get_close_matches(qid, ids, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(near)}?" if near else f"its questions: {', '.join(ids[:12])}" + \
        (", ..." if len(ids) > 12 else "")
    return Verdict(key, UNKNOWN_NAME, "question id", f"no question “{key}” in {problem.name} ({hint}); "
                   "this answer was not graded", answer=str(latex))


#: Which part's verdict a question takes when its parts disagree (first listed wins).
SEVERITY = (ERROR, TIMEOUT, INCORRECT, UNPARSEABLE, UNKNOWN_NAME, MISSING, CORRECT, UNCHECKED)


def normalized(latex):
    """The answer with runs of spacing as one space: the key under which identical answers share a check.

    >>> normalized("  3 \\\\times  4\\n") == normalized("3 \\\\times 4")
    True
    """
    return " ".join(str(latex).split())


def combine_parts(qid, verdicts):
    """One verdict for a question answered part by part: the most severe part's, with every part's
    evidence (``dW1: correct; dW3: incorrect — entry (2, 1) ...``)."""
    if len(verdicts) == 1 and verdicts[0][0] is None:
        return verdicts[0][1]
    order = {k: n for n, k in enumerate(SEVERITY)}
    worst = min((v for _, v in verdicts), key=lambda v: order.get(v.verdict, 0))
    evidence = "; ".join(f"{part or 'whole'}: {v.verdict}" + (f" — {v.evidence}" if v.evidence else "")
                         for part, v in verdicts)
    decided = "; ".join(dict.fromkeys(v.decided_by for _, v in verdicts if v.decided_by))
    flags = list(dict.fromkeys(f for _, v in verdicts for f in v.flags))
    answer = "\n".join(f"{part}: {v.answer}" if part else v.answer for part, v in verdicts)
    return Verdict(qid, worst.verdict, decided, evidence, None, answer,
                   sum(v.seconds for _, v in verdicts), flags=flags)


def grade(problem, submissions, timeout=DEFAULT_TIMEOUT, workers=2, isolate=True, on_done=None,
          solve_timeout=60.0, cache=None):
    """Check several submissions ({name: {id: LaTeX}}) against one problem; {name: CheckReport}.

    Questions a submission does not answer are ``missing`` (authored-text questions are
    only listed when answered: there is nothing to check them against). An id ``QID:PART``
    answers one part of a question; the question's verdict combines its parts. An id naming no
    question gets its own ``unknown name`` verdict after the questions' (``unknown_question``).
    """
    known = {q.id for q in problem.questions}
    wanted = {split_id(k, known)[0] for answers in submissions.values() for k in answers}
    infos = prepare(problem, wanted, solve_timeout, cache)
    text_questions = {q.id for q in problem.questions if q.ask == "text"}
    tasks, order = [], {}
    for name, answers in submissions.items():
        order[name] = {}
        for key, latex in answers.items():
            qid, part = split_id(key, known)
            if qid in infos and str(latex).strip():
                tasks.append(((name, qid, part), qid, str(latex), part))
                order[name].setdefault(qid, []).append(part)
    # Identical answers (the same question, part and LaTeX up to spacing) are checked once: in a class,
    # many students write the same "280".
    unique, same_as = {}, {}
    for task in tasks:
        same_as[task[0]] = unique.setdefault((task[1], task[3], normalized(task[2])), task)[0]
    firsts = list({t[0]: t for t in unique.values()}.values())

    def done(key, verdict):
        if on_done:
            for other in copies.get(key, [key]):
                on_done(other, verdict)

    copies = {}
    for key, first in same_as.items():
        copies.setdefault(first, []).append(key)
    if isolate:
        checked = run_tasks(infos, firsts, timeout, workers, done)
    else:
        checked = {}
        for task in firsts:
            checked[task[0]] = _check_task(infos, task, timeout)
            done(task[0], checked[task[0]])
    latex_of = {t[0]: t[2] for t in tasks}
    results = {key: dataclasses.replace(checked[first], answer=latex_of[key], flags=list(checked[first].flags))
               for key, first in same_as.items() if first in checked}
    reports = {}
    for name, answers in submissions.items():
        report = CheckReport(problem.name, submission=name)
        for q in problem.questions:
            parts = [(part, results[(name, q.id, part)]) for part in order[name].get(q.id, [])
                     if (name, q.id, part) in results]
            if parts:
                v = combine_parts(q.id, parts)
            elif q.id in text_questions:
                continue
            else:
                v = Verdict(q.id, MISSING, "", "no answer given")
            v.submission = name
            report.verdicts.append(v)
        for key in unknown_ids(problem, answers):
            v = unknown_question(problem, key, answers[key])
            v.submission = name
            report.verdicts.append(v)
        reports[name] = report
    return reports


def check(problem, answers, timeout=DEFAULT_TIMEOUT, workers=2, isolate=True, cache=None):
    """Check one submission ({id: LaTeX}); a CheckReport (an unknown id is an ``unknown name`` verdict).
    ``cache``: an AnswerCache of the problem file (``answer_cache``), or None to solve."""
    report = grade(problem, {"": dict(answers)}, timeout, workers, isolate, cache=cache)[""]
    for v in report.verdicts:
        v.submission = ""
    return report

