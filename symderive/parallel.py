"""Solving on every core: questions in forked worker processes, answers as a serial run gives them.

Questions are independent (each is solved in its own ``Context``), so the unit of work is one
question, not one file: the largest shipped file is 42 % of the run, so by file two cores could
save at most a third. Workers are forked after the problems are loaded and inherit them; each
job is only (file number, question number) and its ``Answer`` comes back pickled, its SymPy values
packed until the parent reads them (``Answer.PACKED``); the parent builds the declared layers, for its
report, once the workers are solving. Answers are yielded per file, in question order, as soon as that
file is complete, so sheets are written (and PDFs compiled) while later files are still being solved;
questions start longest first.

A question whose answer cannot come back from a worker (it could not be pickled, or the worker
died) is solved again here, so a parallel run never answers less than a serial one.
"""
import os

from .problem import DEFAULT_TIMEOUT

#: The problems being solved, set before the workers are forked (they inherit it).
_PROBLEMS = []


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:       # not on Linux
        return os.cpu_count() or 1


def _solve(job):
    file, number, timeout = job
    problem = _PROBLEMS[file]
    return problem.solve_question(problem.questions[number], timeout)


def _solve_and_prepare(job):
    """In a worker: the answer, with its sheet section and terminal lines made here, in parallel and
    with this process's caches warm (in the parent they took 2.2 s CPU of a 15-file run, at the end)."""
    from . import sheet, terminal
    answer = _solve(job)
    base = _PROBLEMS[job[0]].index_base
    answer.prepared = {"sheet": sheet.question_section(answer),
                       "terminal": [terminal.plain(r, base) for r in answer.results]}
    return answer


def solve_each(problems, ids=None, timeout=DEFAULT_TIMEOUT, jobs=None, done=None, caches=None, meanwhile=None,
               values=True):
    """Yield, for each problem in order, what ``problem.solve(ids, timeout)`` returns; ``done()`` is
    called as each question is solved (a progress bar). ``caches``: one ``AnswerCache`` (or None)
    per problem; a question found there is not solved again, and each one solved is stored.
    ``meanwhile()``: work only this process needs, done here once the workers are solving (before
    solving, when nothing is solved in workers), so that it does not delay them. ``values``: whether the
    caller reads the answers' SymPy values (``--json``, ``--verify``, ``--html``): a worker's answer comes
    with them packed (``Answer.PACKED``), and they are then unpacked as each answer arrives, while the
    workers still solve, rather than when first read; otherwise they stay packed."""
    done = done or (lambda: None)
    meanwhile = meanwhile or (lambda: None)
    caches = caches or [None] * len(problems)
    asked = [[n for n, q in enumerate(p.questions) if ids is None or q.id in ids] for p in problems]
    answers = [{} for _ in problems]          # question number -> its answer (read from the cache, or solved)
    for f, (problem, cache) in enumerate(zip(problems, caches)):
        for n in asked[f] if cache is not None else ():
            answer = cache.get(problem.questions[n].id)
            if answer is not None:
                answers[f][n] = answer
                done()
    work = [[(f, n, timeout) for n in numbers if n not in answers[f]] for f, numbers in enumerate(asked)]
    for f, solved in enumerate(_solve_all(problems, work, jobs, done, meanwhile, values)):
        for (_, n, _), answer in zip(work[f], solved):
            answers[f][n] = answer
            if caches[f] is not None:
                caches[f].put(problems[f].questions[n].id, answer)
        yield [answers[f][n] for n in asked[f]]


def _solve_all(problems, work, jobs, done, meanwhile, values):
    """The answers to ``work`` (per problem, a list of jobs), a list per problem in order."""
    import multiprocessing           # here: 'list' imports this module and must not load these
    from concurrent.futures import ProcessPoolExecutor
    jobs = min(jobs or cores(), sum(map(len, work)))
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        meanwhile()
        for problem, file_jobs in zip(problems, work):
            answers = []
            for _, number, timeout in file_jobs:
                answers.append(problem.solve_question(problem.questions[number], timeout))
                done()
            yield answers
        return
    global _PROBLEMS
    _PROBLEMS = problems
    from . import asks, sheet  # noqa: F401  imported once here, not again in every worker
    asks.ASKS               # the ask modules are imported on first use (``list`` needs none of them)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))
    try:
        futures = {job: pool.submit(_solve_and_prepare, job) for job in sorted(
            (job for file_jobs in work for job in file_jobs), key=lambda job: -_expected_cost(job))}
        for future in futures.values():
            future.add_done_callback(lambda future: _arrived(future, done, values))
        meanwhile()
        for file_jobs in work:
            yield [_result(futures[job], job) for job in file_jobs]
    finally:        # also when the caller stops early: queued questions are dropped, not solved
        pool.shutdown(wait=True, cancel_futures=True)
        _PROBLEMS = []


def _expected_cost(job):
    """Longest first, so that no long question starts last: the size of the question's own
    declarations (layers and tensors written in it) ranks the two longest shipped questions
    (2.1 s and 1.0 s of 6 s) among the first three."""
    file, number, _ = job
    return len(repr(_PROBLEMS[file].questions[number].spec))


def _arrived(future, done, values):
    """In the pool's result thread, as an answer arrives."""
    done()
    if values and not future.cancelled() and future.exception() is None:
        future.result().results                # unpacks the SymPy values (Answer.__getattr__)


def _result(future, job):
    try:
        return future.result()
    except Exception:            # unpicklable answer or a dead worker: solve it here instead
        return _solve(job)
