"""Solving in worker processes (``symderive.parallel``, ``solve --jobs``) gives exactly what a
serial run gives: the same sheets byte for byte, the same answers, in the same order."""
import json
from pathlib import Path

import pytest

from symderive.answer import Answer
from symderive.parallel import solve_each
from symderive.problem import find_problem_files, load_problem
from helpers import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _without_times(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_parallel_cli_run_equals_serial(tmp_path):
    """Every shipped problem, solved in one process and in two workers: sheets and answers agree."""
    runs = {}
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        done = run_cli(["solve", ROOT / "problems", "--no-pdf", "--json", "-j", jobs, "-o", out], ROOT, timeout=600)
        assert done.returncode == 0, done.stderr
        runs[jobs] = (_without_times(json.loads(done.stdout)),
                      {p.name: p.read_bytes() for p in sorted(out.glob("*.tex"))})
    (serial_answers, serial_sheets), (parallel_answers, parallel_sheets) = runs[1], runs[2]
    assert len(serial_answers) > 40 and len(serial_sheets) == len(find_problem_files([ROOT / "problems"]))
    assert parallel_answers == serial_answers
    assert parallel_sheets == serial_sheets


def _small_problems():
    return [load_problem(ROOT / "problems" / name) for name in ("hw5-written.yaml", "conceptual-cnn-rnn.yaml")]


def _summary(answers_per_problem):
    return [[(a.question_id, a.status, a.latex, a.error) for a in answers] for answers in answers_per_problem]


def test_solve_each_matches_problem_solve():
    problems = _small_problems()
    ids = {q.id for p in problems for q in p.questions[::2]}
    serial = [p.solve(ids) for p in problems]
    assert _summary(solve_each(problems, ids, jobs=2)) == _summary(serial)
    assert [len(a) for a in serial] == [len(p.questions[::2]) for p in problems]


def test_answer_that_cannot_come_back_is_solved_here(monkeypatch):
    """Workers inherit the patch (they are forked), so every answer fails to pickle; the
    parent then solves each question itself and nothing is lost."""
    def unpicklable(self, protocol):
        raise TypeError("cannot pickle this answer")
    monkeypatch.setattr(Answer, "__reduce_ex__", unpicklable)
    problems = _small_problems()[:1]
    with pytest.raises(TypeError):
        __import__("pickle").dumps(problems[0].solve()[0])
    assert _summary(solve_each(problems, jobs=2)) == _summary([p.solve() for p in problems])


def test_worker_made_texts_equal_the_parents():
    """The sheet section and terminal lines a worker makes with the answer (``Answer.prepared``) are
    what the parent would make from the answer it receives, so that the sheet and the table are the
    same whichever process made them."""
    from symderive.sheet import question_section
    from symderive.terminal import plain
    problems = _small_problems()
    for problem, answers in zip(problems, solve_each(problems, jobs=2)):
        assert all(a.prepared for a in answers)
        for a in answers:
            assert a.prepared["sheet"] == question_section(a)
            assert a.prepared["terminal"] == [plain(r, problem.index_base) for r in a.results]
    assert not any(a.prepared for p in problems[:1] for a in p.solve())     # a serial run makes none


def test_parent_rebuilds_no_sympy_value_for_sheet_table_and_cache(monkeypatch, tmp_path):
    """The parent of a run without --json, --verify or --html needs only what the worker prepared: the
    answers' SymPy values stay packed (``Answer.PACKED``) through the sheet, the table, the summary and
    the answer cache, and the sheet and table are those of a serial run. Reading a value unpacks it."""
    from symderive.checking.answer_cache import AnswerCache
    from symderive.cli import unreported
    from symderive.terminal import answer_table, summary
    from rich.console import Console
    problems = _small_problems()
    unpacked = []
    real_unpack = Answer._unpack
    monkeypatch.setattr(Answer, "_unpack", lambda self: unpacked.append(self.question_id) or real_unpack(self))
    caches = [AnswerCache(p.path, tmp_path / "cache") for p in problems]

    def shown(problem, answers):
        for a in answers:
            a.seconds = 0.0            # the one column that differs between runs
        console = Console(width=100, record=True, file=open(tmp_path / "table.txt", "w"))
        console.print(answer_table(problem, answers, 100))
        return console.export_text(), summary(problem, answers)

    parallel = list(solve_each(problems, jobs=2, caches=caches, values=False))
    sheets = [p.sheet(answers) for p, answers in zip(problems, parallel)]
    tables = [shown(p, answers) for p, answers in zip(problems, parallel)]
    assert not any(unreported(p.declaration_errors, answers) for p, answers in zip(problems, parallel))
    assert unpacked == [] and all("_packed" in a.__dict__ for answers in parallel for a in answers)
    assert all(len(list((tmp_path / "cache").glob("*.answer"))) for _ in caches)
    serial = [p.solve() for p in problems]
    assert sheets == [p.sheet(answers) for p, answers in zip(problems, serial)]
    assert tables == [shown(p, answers) for p, answers in zip(problems, serial)]
    # the values, once read, give the serial run's JSON answers, and so do the answer cache's entries (a
    # SymPy pickle rebuilds an unevaluated product evaluated, g[ceiling((p - 1)/2)] as g[ceiling(p/2 - 1/2)],
    # on main as here, so values are compared as printed)
    def records(answers_per_problem):
        return [_without_times([a.to_json() for a in answers]) for answers in answers_per_problem]
    assert records(parallel) == records(serial) and len(unpacked) == sum(map(len, serial))
    read_back = [[c.get(a.question_id) for a in answers] for c, answers in zip(caches, serial)]
    assert all("_packed" in a.__dict__ for answers in read_back for a in answers)
    assert records(read_back) == records(serial)


def test_meanwhile_runs_once_here_while_the_workers_solve():
    """``meanwhile`` (the CLI builds the declared layers in it, for the report) runs once in this process,
    after the workers are forked, so that they do not wait for it; in a serial run, before solving."""
    import multiprocessing
    problems = _small_problems()[:1]
    seen = []
    list(solve_each(problems, jobs=2, meanwhile=lambda: seen.append(len(multiprocessing.active_children()))))
    list(solve_each(problems, jobs=1, meanwhile=lambda: seen.append(len(multiprocessing.active_children()))))
    assert seen == [2, 0]


def test_values_asked_for_are_unpacked_as_answers_arrive(monkeypatch):
    """With ``values`` (--json, --verify, --html read them) each answer's SymPy values are unpacked once,
    in the pool's result thread while the workers still solve, not later in the report."""
    import threading
    problems = _small_problems()[:1]
    threads = []
    real_unpack = Answer._unpack
    monkeypatch.setattr(Answer, "_unpack", lambda self: threads.append(threading.current_thread()) or real_unpack(self))
    [answers] = list(solve_each(problems, jobs=2))
    assert all("_packed" not in a.__dict__ for a in answers) and len(threads) == len(answers)
    assert threading.main_thread() not in threads
    assert _summary([answers]) == _summary([problems[0].solve()])


BROKEN_UNUSED_LAYER = """\
title: T
sizes: [N]
tensors: {x: [N]}
layers:
  bad: conv1d(x, nothere)
  good: relu(x)
questions:
  - {id: q1, ask: shape, of: good}
  - {id: q2, ask: shape, of: x}
"""


def test_a_broken_layer_is_reported_once_in_a_parallel_run(tmp_path):
    """The declared layers are built in the parent while the workers solve: their mistakes are still
    reported, once, with their position, and the run's status is 1, as in a serial run."""
    (tmp_path / "u.yaml").write_text(BROKEN_UNUSED_LAYER)
    runs = [run_cli(["solve", "u.yaml", "-o", f"out{jobs}", "--no-pdf", "-j", jobs], tmp_path) for jobs in (1, 2)]
    for run in runs:
        assert run.returncode == 1
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert errors == ["error: u.yaml:5:18: layer 'bad': 'nothere' is not a declared tensor or layer"], run.stderr
    assert (tmp_path / "out1" / "u.tex").read_bytes() == (tmp_path / "out2" / "u.tex").read_bytes()
