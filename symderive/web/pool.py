"""The server's checking processes: answers are checked exactly as ``check`` checks them.

The problems are solved once, in the server process, before the worker processes are
forked (they share the solved answers). Each answer is checked by
``checking.grade.check_one`` (the function ``check`` runs) in a worker under the same soft
limit (SIGALRM) and memory limit; the server kills a worker that overruns the hard limit
(soft limit + grace) and forks a fresh one, so a hostile answer costs one worker for a
bounded time and the server keeps serving. Requests wait for a free worker.
"""
import multiprocessing
import queue
import threading
import time

import sympy as sp

from ..checking.grade import DEFAULT_TIMEOUT, GRACE, check_one, serve_tasks
from ..checking.targets import question_info
from ..checking.verdict import ERROR, TIMEOUT, Verdict
from ..errors import QuestionTimeout
from ..timeouts import time_limit

#: Seconds allowed to show how an answer was read (parsing only, no comparison).
PREVIEW_TIMEOUT = 3.0
#: Seconds a request waits for a free worker before it is told the server is busy.
QUEUE_WAIT = 60.0

_INFOS = {}     # (problem number, question id) -> QuestionInfo, set before forking


class Busy(Exception):
    """No worker became free in time."""


def solve_all(problems, timeout=60.0, cache=True):
    """[(problem, answers)] and {(k, qid): QuestionInfo}: every question solved once, or read from the disk
    cache of answers that ``check`` keeps (``cache`` False, or SYMDERIVE_NO_CACHE=1, solves again)."""
    from ..checking.grade import answer_cache, solved_answer
    solved, infos = [], {}
    for k, problem in enumerate(problems):
        store = answer_cache(problem, enabled=cache)
        answers = [solved_answer(problem, q, timeout, store) for q in problem.questions]
        for q, a in zip(problem.questions, answers):
            infos[(k, q.id)] = question_info(problem, q, a)
        solved.append((problem, answers))
    return solved, infos


def read_form(info, latex):
    """LaTeX of how the checker reads ``latex`` (the parsed form); ReadError/MeaningError otherwise."""
    from ..checking import meaning as M
    from ..checking import reader as R
    shown = []
    for part in R.read(latex):
        items = []
        for item in part.items:
            ctx = info.context()
            ctx.index_context = 1
            if isinstance(item, R.Reals):
                dims = M.resolve_dims(item.dims, ctx)
                items.append(r"\mathbb{R}^{" + r" \times ".join(sp.latex(d) for d in dims) + "}")
                continue
            try:
                value = M.resolve(item, ctx)
            except M.MeaningError:
                if part.items.index(item) == 0 and len(part.items) > 1:
                    items.append(r"\text{(left side)}")     # a label such as \partial l / \partial W_{p,q}
                    continue
                raise
            items.append(_value_latex(value))
        ops = [{"=": "=", "in": r"\in", "approx": r"\approx"}.get(op, sp.latex(sp.Symbol(op)) if op else "=")
               for op in part.ops]
        line = items[0]
        for op, item in zip(ops, items[1:]):
            line += f" {op} {item}"
        shown.append(line)
    return r" \quad ".join(shown)


def _value_latex(value):
    if isinstance(value, list):
        return r"\left(" + ", ".join(_value_latex(v) for v in value) + r"\right)"
    if value.is_scalar:
        return sp.latex(value.expr)
    rows, cols = value.shape
    return (r"\left[" + sp.latex(value.expr) + r"\right]_{\mathrm{row},\mathrm{col}}"
            + rf" \in \mathbb{{R}}^{{{sp.latex(rows)} \times {sp.latex(cols)}}}")


def preview_one(info, latex):
    """{'ok': True, 'latex': ...} or {'ok': False, 'message': ..., 'position': ...}."""
    from ..checking import meaning as M
    from ..checking import reader as R
    try:
        with time_limit(PREVIEW_TIMEOUT):
            return {"ok": True, "latex": read_form(info, latex)}
    except (R.ReadError, M.MeaningError) as exc:
        return {"ok": False, "message": str(getattr(exc, "message", exc)), "position": exc.pos}
    except QuestionTimeout:
        return {"ok": False, "message": f"not read within {PREVIEW_TIMEOUT:g} s", "position": None}
    except RecursionError:
        return {"ok": False, "message": "the answer is nested too deeply", "position": None}
    except Exception as exc:      # the preview is a courtesy: it must never break the page
        return {"ok": False, "message": f"cannot show: {type(exc).__name__}", "position": None}


def _worker(conn, timeout):
    def handle(task):
        kind, key, latex = task
        info = _INFOS[key]
        return check_one(info, latex, timeout) if kind == "check" else preview_one(info, latex)

    serve_tasks(conn, handle,
                lambda task, exc: Verdict(task[1][1], ERROR, "", f"internal error: {exc}", answer=task[2]))


class _Slot:
    def __init__(self, ctx, timeout):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, timeout), daemon=True)
        self.process.start()
        child.close()

    def stop(self, kill=False):
        try:
            if kill:
                self.process.kill()
            else:
                self.conn.send(None)
        except Exception:
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class CheckPool:
    """``workers`` checking processes over solved problems; ``run`` is called from request threads."""

    def __init__(self, infos, timeout=DEFAULT_TIMEOUT, workers=2):
        self.timeout, self.hard = timeout, timeout + GRACE
        self.ctx = multiprocessing.get_context("fork")
        _INFOS.clear()
        _INFOS.update(infos)
        self.infos = infos
        self.free = queue.Queue()
        self.slots_lock = threading.Lock()
        self.restarts = 0
        for _ in range(max(1, workers)):
            self.free.put(_Slot(self.ctx, timeout))

    def check(self, key, latex):
        """The Verdict for one answer, as ``check`` gives it."""
        return self._run("check", key, latex)

    def preview(self, key, latex):
        return self._run("preview", key, latex)

    def _run(self, kind, key, latex):
        try:
            slot = self.free.get(timeout=QUEUE_WAIT)
        except queue.Empty:
            raise Busy() from None
        limit = self.hard if kind == "check" else PREVIEW_TIMEOUT + GRACE
        start = time.monotonic()
        try:
            slot.conn.send((kind, key, latex))
            if slot.conn.poll(limit):
                return slot.conn.recv()
            slot = self._replace(slot)
            if kind == "check":
                return Verdict(key[1], TIMEOUT, "time limit", f"not decided within {self.timeout:g} s "
                               "(the check was stopped)", answer=latex, seconds=time.monotonic() - start)
            return {"ok": False, "message": "not read in time", "position": None}
        except (EOFError, OSError):
            code = slot.process.exitcode
            slot = self._replace(slot)
            if kind == "check":
                return Verdict(key[1], ERROR, "", f"the checking process died (exit code {code})", answer=latex)
            return {"ok": False, "message": "the reading process died", "position": None}
        finally:
            self.free.put(slot)

    def _replace(self, slot):
        slot.stop(kill=True)
        with self.slots_lock:
            self.restarts += 1
        return _Slot(self.ctx, self.timeout)

    def close(self):
        while True:
            try:
                self.free.get_nowait().stop()
            except queue.Empty:
                return
