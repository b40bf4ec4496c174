"""The command line: solving the shipped problems, --json, list, --only, the default
problems/ folder, a missing path, and per-question time limits."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import NO_PDF, run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

REPO = Path(__file__).resolve().parents[1]
PROBLEMS = REPO / "problems"
PROBLEM_FILES = sorted(p for p in PROBLEMS.iterdir() if p.suffix in (".yaml", ".yml"))
STATUSES = {"derived", "proved", "verified at sizes", "numerically checked", "failed", "authored text"}
RECORD_FIELDS = {"problem", "question", "status", "detail", "answers", "error", "seconds", "names"}






def question_ids(path):
    """Question ids read straight from the YAML (independently of the engine)."""
    return [str(q["id"]) for q in yaml.safe_load(Path(path).read_text())["questions"]]


@pytest.fixture(scope="module")
def all_ids():
    """{problem name: [question ids]} of the shipped problems."""
    return {p.stem: question_ids(p) for p in PROBLEM_FILES}


def test_shipped_problems_exist(all_ids):
    assert PROBLEM_FILES, f"no problem files in {PROBLEMS}"
    assert all(all_ids.values())


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """One solve of the shipped problems/ folder with --json into a temporary folder."""
    out = tmp_path_factory.mktemp("solved") / "sheets"
    result = run_cli(["solve", PROBLEMS, "-o", out, "--json", *NO_PDF], cwd=out.parent)
    return out, result


def test_solve_shipped_folder_exit_0_and_a_sheet_per_problem(solved, all_ids):
    out, result = solved
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    written = sorted(p.stem for p in out.glob("*.tex"))
    assert written == sorted(all_ids)
    for tex in out.glob("*.tex"):
        text = tex.read_text()
        assert text.startswith(r"\documentclass") and r"\end{document}" in text


def test_solve_table_output(tmp_path, all_ids):
    """The default (table) output names every question and where the sheet went."""
    result = run_cli([PROBLEM_FILES[0], "-o", tmp_path / "sheets", *NO_PDF], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for qid in all_ids[PROBLEM_FILES[0].stem]:
        assert qid in result.stdout
    assert f"{PROBLEM_FILES[0].stem}.tex" in result.stdout
    assert (tmp_path / "sheets" / f"{PROBLEM_FILES[0].stem}.tex").exists()


def test_json_records(solved, all_ids):
    _, result = solved
    records = json.loads(result.stdout)
    assert isinstance(records, list)
    assert [(r["problem"], r["question"]) for r in records] == \
        [(stem, qid) for stem, ids in all_ids.items() for qid in ids]
    for r in records:
        assert set(r) == RECORD_FIELDS, r.keys()
        assert r["status"] in STATUSES
        assert r["status"] != "failed", r          # the shipped problems all solve
        assert r["error"] == ""
        assert isinstance(r["detail"], str)
        assert isinstance(r["seconds"], (int, float)) and r["seconds"] >= 0
        assert isinstance(r["answers"], list) and r["answers"]
        for a in r["answers"]:
            assert set(a) == {"label", "latex", "sympy"}
            assert all(isinstance(v, str) for v in a.values())
            assert a["latex"].strip()


def test_json_known_answer(solved):
    """A spot check of content: NYU 2021 1.1a, a 10×11 input, 3×3 kernel, stride 2 → 4×5."""
    _, result = solved
    records = {(r["problem"], r["question"]): r for r in json.loads(result.stdout)}
    key = ("nyu-dl-2021-hw3", "nyu21-1.1a")
    if key not in records:
        pytest.skip("nyu-dl-2021-hw3.yaml is not shipped")
    shape = next(a for a in records[key]["answers"] if a["label"] == "shape")
    assert shape["sympy"] == "(4, 5)"


def test_list_shows_question_ids(tmp_path, all_ids):
    result = run_cli(["list", PROBLEMS], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for path in PROBLEM_FILES:
        assert path.name in result.stdout
        for qid in all_ids[path.stem]:
            assert qid in result.stdout
    assert not list(tmp_path.iterdir()), "list must not write anything"


def test_only(tmp_path, all_ids):
    path = PROBLEM_FILES[0]
    ids = all_ids[path.stem]
    chosen = [ids[-1], ids[0]] if len(ids) > 1 else ids
    args = [path, "-o", tmp_path / "sheets", "--json", *NO_PDF]
    for qid in chosen:
        args += ["--only", qid]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert sorted(r["question"] for r in records) == sorted(chosen)
    sheet = (tmp_path / "sheets" / f"{path.stem}.tex").read_text()
    for qid in chosen:
        assert qid in sheet
    for qid in set(ids) - set(chosen):
        assert f"{{{qid}}}" not in sheet


def test_no_arguments_solves_problems_in_cwd(tmp_path, all_ids):
    shutil.copytree(PROBLEMS, tmp_path / "problems")
    result = run_cli([], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = sorted(p.stem for p in (tmp_path / "output").glob("*.tex"))
    assert written == sorted(all_ids)
    for ids in all_ids.values():
        for qid in ids:
            assert qid in result.stdout


@pytest.mark.parametrize("command", [["solve"], ["list"], []])
def test_missing_path_exit_2(tmp_path, command):
    result = run_cli([*command, "no-such-file.yaml"], cwd=tmp_path)
    assert result.returncode == 2
    assert "no-such-file.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "output").exists() or not list((tmp_path / "output").glob("*.tex"))


def test_bad_usage_exit_2(tmp_path):
    result = run_cli(["solve", PROBLEMS, "--timeout", "soon"], cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


SLOW = """\
title: "a slow question among fast ones"
index_base: 1
questions:
  - id: fast-shape
    ask: shape
    of: y
    tensors: {x: [10, 11], k: [3, 3]}
    layers: {y: "conv2d(x, k, stride=2)"}
  - id: slow-sum
    ask: value
    expr: "Sum(sqrt(j), (j, 1, 20000))"
  - id: fast-value
    ask: value
    expr: "log(4)"
  - id: fast-derivative
    ask: derivative
    of: f
    wrt: W
    tensors: {x: [2, 5], W: [1, 2, 3]}
    layers: {f: "conv1d(x, W, stride=2)"}
"""


def test_timeout_fails_only_the_slow_question(tmp_path):
    (tmp_path / "slow.yaml").write_text(SLOW)
    start = time.perf_counter()
    result = run_cli(["slow.yaml", "-o", "sheets", "--json", "--timeout", "2", *NO_PDF], cwd=tmp_path,
                     timeout=120)
    elapsed = time.perf_counter() - start
    assert result.returncode == 1, result.stderr
    records = {r["question"]: r for r in json.loads(result.stdout)}
    assert records["slow-sum"]["status"] == "failed"
    assert "time" in records["slow-sum"]["error"].lower()
    assert records["slow-sum"]["seconds"] < 10
    for qid in ("fast-shape", "fast-value", "fast-derivative"):
        assert records[qid]["status"] == "derived", records[qid]
    lines = [l for l in result.stderr.splitlines() if "question slow-sum" in l]
    assert len(lines) == 1 and "slow.yaml" in lines[0] and "time" in lines[0].lower()
    assert not [l for l in result.stderr.splitlines() if "question fast-" in l]
    assert (tmp_path / "sheets" / "slow.tex").exists()
    assert elapsed < 60


def test_tiny_timeout_on_a_derivative(tmp_path):
    candidates = [(p, [q["id"] for q in yaml.safe_load(p.read_text())["questions"]
                       if q.get("ask") in ("derivative", "chain_rule")]) for p in PROBLEM_FILES]
    candidates = [(p, ids) for p, ids in candidates if ids]
    if not candidates:
        pytest.skip("no shipped problem has a derivative question")
    path, derivative_ids = candidates[0]
    qid = derivative_ids[-1]
    result = run_cli([path, "-o", "sheets", "--json", "--only", qid, "--timeout", "0.001", *NO_PDF],
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["status"] == "failed"
    assert "time" in record["error"].lower()
    assert qid in record["error"] and path.name in record["error"]
    assert (tmp_path / "sheets" / f"{path.stem}.tex").exists()


def test_timeout_api(tmp_path):
    from symderive.answer import Status
    from symderive.problem import load_problem
    (tmp_path / "slow.yaml").write_text(SLOW)
    answers = {a.question_id: a for a in load_problem(tmp_path / "slow.yaml").solve(timeout=2)}
    assert answers["slow-sum"].status is Status.FAILED
    assert "time" in answers["slow-sum"].error.lower()
    assert answers["slow-sum"].seconds < 10
    for qid in ("fast-shape", "fast-value", "fast-derivative"):
        assert answers[qid].status is Status.DERIVED


def test_sheets_are_the_same_bytes_whatever_the_hash_seed(tmp_path):
    """Regenerating must reproduce every .tex byte for byte (issue 5), also across processes
    whose string hashing differs: no answer may depend on the order of a set."""
    import os
    import subprocess
    import sys
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-m", "symderive", "solve", str(PROBLEMS), "-o", str(out),
                               "--no-pdf"], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        outputs.append({p.name: p.read_bytes() for p in sorted(out.glob("*.tex"))})
    assert outputs[0].keys() == outputs[1].keys() and outputs[0]
    different = [name for name in outputs[0] if outputs[0][name] != outputs[1][name]]
    assert not different, f"sheets differ between hash seeds: {different}"



def _imported_modules(args, cwd):
    """Every module ``python -X importtime ARGS`` imports (read from its stderr report)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def _not_for_listing(modules):
    return sorted(m for m in modules if m.split(".")[0] in ("numpy", "sympy", "mpmath", "multiprocessing", "torch")
                  or m in ("importlib.metadata", "symderive.declarations", "symderive.derivative",
                           "symderive.layers", "symderive.answer", "symderive.terminal")
                  or m == "rich.progress"
                  or (m.startswith("symderive.checking.") and m != "symderive.checking.command"))


def test_list_imports_nothing_it_does_not_use():
    """``list`` only reads problem files' structure: no SymPy (a third of a second), no NumPy, no
    engine, no grading modules, no progress bars or worker processes."""
    modules = _imported_modules(["-m", "symderive", "list", ROOT / "problems"], ROOT)
    assert "symderive.problem" in modules and "yaml" in modules      # the report is read correctly
    assert not _not_for_listing(modules), f"list imports {_not_for_listing(modules)}"


def test_grading_imports_are_seen_by_the_list_test():
    """The filter above can fail: the grading module pulls in exactly what it rejects."""
    modules = _imported_modules(["-c", "import symderive.checking.grade"], ROOT)
    assert {"numpy", "sympy", "multiprocessing", "symderive.checking.compare"} <= set(_not_for_listing(modules))


def test_solving_imports_what_list_leaves_out(tmp_path):
    """The other side of the list test: the lazily imported engine is still there when solving."""
    solving = _imported_modules(["-m", "symderive", "solve", ROOT / "problems" / "hw5-written.yaml", "--only",
                                 "hw5-p2c", "--no-pdf", "--jobs", "1", "-o", tmp_path], tmp_path)
    assert {"sympy", "symderive.declarations", "symderive.answer"} <= set(_not_for_listing(solving))
    assert (tmp_path / "hw5-written.tex").exists()
