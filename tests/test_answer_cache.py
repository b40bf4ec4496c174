"""The disk cache of solved answers for grading (issue 14): a second run reads the answers instead of
solving; a changed problem file or engine misses; a tampered, truncated or foreign entry is never
unpickled; the folder must be private; the bounds hold; --no-cache and SYMDERIVE_NO_CACHE turn it off."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symderive import load_problem
from symderive.checking import answer_cache as AC
from symderive.checking.grade import answer_cache, check_one, prepare

ROOT = Path(__file__).resolve().parent.parent
SMALL = """\
title: cache
index_base: 1
sizes: [N]
questions:
  - id: sig
    statement: "sigma'"
    ask: derivative
    of: y
    wrt: x
    tensors: {x: [N]}
    layers:
      y: sigmoid(x)
  - id: count
    statement: "a count"
    ask: value
    expr: "3 * 3 * 3 * 10 + 10"
"""


@pytest.fixture(autouse=True)
def cache_turned_on(monkeypatch):
    """The test session turns the cache off (tests/conftest.py); these tests are of the cache."""
    monkeypatch.delenv("SYMDERIVE_NO_CACHE", raising=False)


@pytest.fixture
def problem_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(SMALL)
    return path


def solve_counting(problem, monkeypatch):
    calls = []
    original = type(problem).solve_question

    def counting(self, q, timeout=None):
        calls.append(q.id)
        return original(self, q, timeout)
    monkeypatch.setattr(type(problem), "solve_question", counting)
    return calls


def test_a_second_run_reads_the_answers_instead_of_solving(problem_file, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    problem = load_problem(problem_file)
    calls = solve_counting(problem, monkeypatch)
    first = prepare(problem, {"sig", "count"}, cache=answer_cache(problem, folder=folder))
    assert sorted(calls) == ["count", "sig"]
    cache = answer_cache(load_problem(problem_file), folder=folder)
    second = prepare(load_problem(problem_file), {"sig", "count"}, cache=cache)
    assert sorted(calls) == ["count", "sig"] and cache.hits == 2          # nothing solved again
    for qid in ("sig", "count"):
        assert [r.value for r in second[qid].answer.results] == [r.value for r in first[qid].answer.results]
    # and the cached answers grade as the solved ones: σ(1 − σ) right, σ(1 + σ) wrong
    assert check_one(second["sig"], r"\frac{\partial y_i}{\partial x_p} = \delta_{ip} \sigma(x_i)(1 - \sigma(x_i))"
                     ).verdict == "correct"
    assert check_one(second["sig"], r"\frac{\partial y_i}{\partial x_p} = \delta_{ip} \sigma(x_i)(1 + \sigma(x_i))"
                     ).verdict == "incorrect"
    assert check_one(second["count"], "280").verdict == "correct"
    assert check_one(second["count"], "270").verdict == "incorrect"


def test_a_changed_problem_file_or_engine_misses(problem_file, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    problem = load_problem(problem_file)
    prepare(problem, {"count"}, cache=answer_cache(problem, folder=folder))
    problem_file.write_text(SMALL.replace("3 * 3 * 3 * 10 + 10", "3 * 3 * 3 * 10"))
    changed = load_problem(problem_file)
    cache = answer_cache(changed, folder=folder)
    infos = prepare(changed, {"count"}, cache=cache)
    assert cache.hits == 0 and infos["count"].answer.value("value") == 270
    monkeypatch.setattr(AC, "_ENGINE_DIGEST", "another engine")
    other = answer_cache(changed, folder=folder)
    prepare(changed, {"count"}, cache=other)
    assert other.hits == 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign"])
def test_a_damaged_entry_is_never_unpickled(problem_file, tmp_path, monkeypatch, damage):
    folder = tmp_path / "cache"
    problem = load_problem(problem_file)
    prepare(problem, {"count"}, cache=answer_cache(problem, folder=folder))
    [entry] = list(folder.glob("*.answer"))
    blob = entry.read_bytes()
    if damage == "flip":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif damage == "truncate":
        blob = blob[:len(blob) // 2]
    else:                             # a pickle that would run code, with a tag made under another key
        import hashlib
        import hmac
        payload = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
        blob = hmac.new(b"x" * 32, payload, hashlib.sha256).digest() + payload
    entry.write_bytes(blob)
    loads = []
    monkeypatch.setattr(AC.pickle, "loads", lambda data: loads.append(data))
    cache = answer_cache(load_problem(problem_file), folder=folder)
    assert cache.get("count") is None and not loads
    assert not entry.exists() and not (tmp_path / "pwned").exists()


def test_a_folder_others_can_write_is_not_used(problem_file, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    cache = AC.AnswerCache(problem_file, folder)
    assert not cache.enabled and "not a private folder" in cache.problem
    private = tmp_path / "private"
    AC.AnswerCache(problem_file, private)
    (private / "key").chmod(0o644)
    cache = AC.AnswerCache(problem_file, private)
    assert not cache.enabled and "not a private file" in cache.problem


def test_the_cache_stays_within_its_bounds(problem_file, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setattr(AC, "MAX_ENTRIES", 3)
    problem = load_problem(problem_file)
    cache = answer_cache(problem, folder=folder)
    answer = problem.solve_question(problem.questions[1], 60)
    scans = []
    real_evict = AC.AnswerCache._evict
    monkeypatch.setattr(AC.AnswerCache, "_evict", lambda self: scans.append(1) or real_evict(self))
    for k in range(6):
        cache.put(f"q{k}", answer)
        os.utime(cache._path(f"q{k}"), (1000 + k, 1000 + k))
        assert len(list(folder.glob("*.answer"))) == min(k + 1, 3)     # within the bound after every store
    assert len(scans) == 1                                              # the folder was read once
    cache._evict()
    kept = sorted(p.name for p in folder.glob("*.answer"))
    assert len(kept) == 3
    assert sorted(cache._path(f"q{k}").name for k in (3, 4, 5)) == kept       # the newest stay


def test_no_cache_flag_and_environment_turn_it_off(problem_file, tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text("count: '280'\n")
    folder = tmp_path / "cache"
    env = dict(os.environ, SYMDERIVE_CACHE_DIR=str(folder))
    env.pop("SYMDERIVE_NO_CACHE", None)

    def run(*extra, **more):
        return subprocess.run([sys.executable, "-m", "symderive", "check", str(problem_file), str(answers), *extra],
                              capture_output=True, text=True, cwd=tmp_path, env=dict(env, **more), timeout=300)
    # exit 1: the other question is missing; "count" is graded correct every time
    for r in (run("--no-cache"), run(SYMDERIVE_NO_CACHE="1")):
        assert r.returncode == 1 and "1 missing, 1 correct" in r.stdout, r.stdout + r.stderr
        assert not list(folder.glob("*.answer"))
    r = run()
    assert r.returncode == 1 and "1 missing, 1 correct" in r.stdout and len(list(folder.glob("*.answer"))) == 1
    r = run()                                       # read back from the cache
    assert r.returncode == 1 and "1 missing, 1 correct" in r.stdout, r.stdout + r.stderr
    assert answer_cache(load_problem(problem_file), enabled=False) is None


def test_problem_check_and_serve_read_the_cache(problem_file, tmp_path, monkeypatch):
    """problem.check() in the Python API and the serve command's solving use the cache as `check` does."""
    from symderive.web.pool import solve_all
    monkeypatch.setenv("SYMDERIVE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SYMDERIVE_NO_CACHE", raising=False)
    problem = load_problem(problem_file)
    calls = solve_counting(problem, monkeypatch)
    answers = {"count": "280", "sig": r"\frac{\partial y_i}{\partial x_p} = \delta_{ip} \sigma(x_i)(1 - \sigma(x_i))"}
    first = problem.check(answers, isolate=False)
    assert sorted(calls) == ["count", "sig"] and first.ok
    second = load_problem(problem_file).check({"count": "270"}, isolate=False)
    assert sorted(calls) == ["count", "sig"]                                      # read, not solved
    assert second["count"].verdict == "incorrect"                                 # 270: without the bias
    solved, infos = solve_all([load_problem(problem_file)])
    assert sorted(calls) == ["count", "sig"] and set(infos) == {(0, "sig"), (0, "count")}
    assert check_one(infos[(0, "count")], "280").verdict == "correct"
    load_problem(problem_file).check({"count": "280"}, isolate=False, cache=False)  # turned off: solved
    solve_all([load_problem(problem_file)], cache=False)
    assert sorted(calls) == ["count", "count", "count", "sig", "sig"]          # serve solves every question


def test_solve_reads_the_cache_and_writes_the_same_sheets(tmp_path):
    """`solve` shares check's cache: a second run on unchanged files solves nothing and writes the same
    sheets byte for byte and the same answers (serial and in workers); --no-cache solves again."""
    import json
    files = [ROOT / "problems" / name for name in ("hw5-written.yaml", "course-forms.yaml",
                                                   "masks-and-stop-gradients.yaml")]
    env = dict(os.environ, SYMDERIVE_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("SYMDERIVE_NO_CACHE", None)

    def solve(out, *extra):
        done = subprocess.run([sys.executable, "-m", "symderive", "solve", *map(str, files), "--no-pdf", "-o",
                               str(tmp_path / out), *extra], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        sheets = {p.name: p.read_bytes() for p in sorted((tmp_path / out).glob("*.tex"))}
        return done.stdout, sheets

    def answers(stdout):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(stdout)]

    first, sheets = solve("cold", "--json")
    questions = len(answers(first))
    assert len(list((tmp_path / "cache").glob("*.answer"))) == questions > 20
    for out, jobs in (("warm1", "1"), ("warm2", "2")):
        again, again_sheets = solve(out, "--json", "--jobs", jobs)
        assert answers(again) == answers(first) and again_sheets == sheets
    table, _ = solve("table")
    for path in files:                  # the summary line of each file says how many answers were read
        n = sum(r["problem"] == path.stem for r in json.loads(first))
        assert f"({n} of {n} read from the answer cache; " in " ".join(table.split()), path.name
    fresh, fresh_sheets = solve("fresh", "--no-cache")
    assert "read from the answer cache" not in fresh and fresh_sheets == sheets


def test_a_read_answer_keeps_its_values_packed_and_its_dummies_apart(problem_file, tmp_path, monkeypatch):
    """An answer read from the cache rebuilds its SymPy values only when one is read; its Dummy symbols
    never equal one made in this process afterwards, even one made before its values were read (SymPy
    tells Dummies apart by an index that a pickle keeps). Here the Dummy was made in this process, and
    the counter is set back as if this were a fresh process, which would otherwise repeat its index."""
    import sympy as sp
    from symderive.answer import Answer, Result, Status
    folder = tmp_path / "cache"
    cache = answer_cache(load_problem(problem_file), folder=folder)
    before = sp.Dummy._count
    d = sp.Dummy("i", integer=True)
    cache.put("count", Answer("count", "", Status.DERIVED, results=[Result("value", 2 * d, "2 i", "value")]))
    monkeypatch.setattr(sp.Dummy, "_count", before)          # a process whose counter is behind
    assert sp.Dummy("i", integer=True) == d                    # (what the counter alone would give)
    monkeypatch.setattr(sp.Dummy, "_count", before)
    read = answer_cache(load_problem(problem_file), folder=folder).get("count")
    assert read is not None and "results" not in read.__dict__          # packed: nothing rebuilt yet
    made = sp.Dummy("i", integer=True)
    read.notes = ["set before the values were read"]
    assert read.results[0].value == 2 * d and made != d                 # kept apart, and read back whole
    assert read.notes == ["set before the values were read"] and read.status is Status.DERIVED
