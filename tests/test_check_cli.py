"""``python -m symderive check``: exit status, --json, .tex answers, folders with --report,
time limits that hold (a killed worker), and fuzzed LaTeX that only ever yields verdicts."""
import csv
import json
import os
import signal
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symderive import load_problem
from symderive.checking import grade
from symderive.checking.grade import check_one, prepare, run_tasks
from symderive.checking.verdict import VERDICTS
from helpers import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NYU21 = ROOT / "problems" / "nyu-dl-2021-hw3.yaml"
NYU24 = ROOT / "problems" / "nyu-dl-2024-hw2.yaml"

RIGHT = {
    "nyu21-1.1a": r"\mathbb{R}^{4 \times 5}",
    "nyu21-1.1c-iv": r"\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j=1}^{2} g_{p,j} x_{q,2j+r-2}",
}
WRONG_IV = r"\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j=1}^{2} g_{p,j} x_{q,j+r-1}"


def small_problem(tmp_path):
    """nyu21's first questions only, so that no answer is missing."""
    text = NYU21.read_text()
    head, _, rest = text.partition("  - id: nyu21-1.1c-ii")
    iv = "  - id: nyu21-1.1c-iv" + rest.split("  - id: nyu21-1.1c-iv", 1)[1].split("  - id: nyu21-1.1c-matrix")[0]
    path = tmp_path / "small.yaml"
    path.write_text(head + iv)
    assert [q.id for q in load_problem(path).questions] == ["nyu21-1.1a", "nyu21-1.1b", "nyu21-1.1c-i",
                                                            "nyu21-1.1c-iv"]
    return path


def yaml_answers(path, answers):
    lines = [f"{k}: '{v}'" for k, v in answers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


ALL_RIGHT = {
    **RIGHT,
    "nyu21-1.1b": r"F \times (\lfloor \frac{H + 2P - D(K-1) - 1}{S} \rfloor + 1) \times "
                  r"(\lfloor \frac{W + 2P - D(K-1) - 1}{S} \rfloor + 1)",
    "nyu21-1.1c-i": r"f_{i,j} = \sum_{c=1}^{2}\sum_{k=1}^{3} W_{i,c,k} x_{c,2j+k-2}",
}


def test_exit_0_when_every_answer_is_correct(tmp_path):
    problem = small_problem(tmp_path)
    answers = yaml_answers(tmp_path / "alice.yaml", ALL_RIGHT)
    run = run_cli(["check", problem, answers], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 correct" in run.stdout


def test_exit_1_and_json_when_one_is_wrong(tmp_path):
    problem = small_problem(tmp_path)
    answers = yaml_answers(tmp_path / "bob.yaml", {**ALL_RIGHT, "nyu21-1.1c-iv": WRONG_IV})
    run = run_cli(["check", problem, answers, "--json"], tmp_path)
    assert run.returncode == 1, run.stderr
    record = json.loads(run.stdout)
    by_id = {v["question"]: v for v in record["verdicts"]}
    assert by_id["nyu21-1.1a"]["verdict"] == "correct" and by_id["nyu21-1.1a"]["decided_by"] == "shape"
    assert by_id["nyu21-1.1c-iv"]["verdict"] == "incorrect"
    assert by_id["nyu21-1.1c-iv"]["decided_by"].startswith("numeric at ")
    assert "differs at" in by_id["nyu21-1.1c-iv"]["evidence"]
    assert record["counts"] == {"correct": 3, "incorrect": 1}


def test_missing_and_unparseable_are_not_correct(tmp_path):
    problem = small_problem(tmp_path)
    answers = yaml_answers(tmp_path / "carol.yaml", {"nyu21-1.1a": r"\mathbb{R}^{4 \times"})
    run = run_cli(["check", problem, answers, "--json"], tmp_path)
    assert run.returncode == 1
    by_id = {v["question"]: v for v in json.loads(run.stdout)["verdicts"]}
    assert by_id["nyu21-1.1a"]["verdict"] == "unparseable"
    assert "column" in by_id["nyu21-1.1a"]["evidence"] and by_id["nyu21-1.1a"]["position"] is not None
    assert by_id["nyu21-1.1b"]["verdict"] == "missing"


@pytest.mark.parametrize("content, message", [
    ("- a\n- b\n", "mapping"),
    ("nyu21-1.1a: [1, 2]\n", "LaTeX string"),
    ("a: [unclosed\n", "YAML syntax error"),
])
def test_exit_2_for_unusable_answers_files(tmp_path, content, message):
    problem = small_problem(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    run = run_cli(["check", problem, path], tmp_path)
    assert run.returncode == 2
    assert message in run.stderr, run.stderr


def test_an_unknown_question_id_is_a_verdict_not_a_rejected_file(tmp_path):
    """Issue 14: an id naming no question is a warning and an ``unknown name`` verdict for that answer;
    the other answers are graded, in one file, in a folder, and in the Gradescope results."""
    problem = small_problem(tmp_path)
    path = tmp_path / "typo.yaml"
    path.write_text("nyu21-1.1a: '\\mathbb{R}^{4 \\times 5}'\nnot-a-question: '1'\n")
    run = run_cli(["check", problem, path, "--json"], tmp_path)
    assert run.returncode == 1, run.stderr
    assert "warning:" in run.stderr and "no question “not-a-question”" in run.stderr
    by_id = {v["question"]: v for v in json.loads(run.stdout)["verdicts"]}
    assert by_id["nyu21-1.1a"]["verdict"] == "correct"
    assert by_id["not-a-question"]["verdict"] == "unknown name"
    assert by_id["not-a-question"]["decided_by"] == "question id"
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "typo.yaml").write_text(path.read_text())
    yaml_answers(folder / "ok.yaml", {"nyu21-1.1a": r"\mathbb{R}^{4 \times 5}"})
    gradescope = tmp_path / "gs"
    run = run_cli(["check", problem, folder, "--report", tmp_path / "r.csv", "--gradescope", gradescope],
                  tmp_path)
    assert run.returncode == 1, run.stderr               # graded, not unusable (that would be 2)
    rows = (tmp_path / "r.csv").read_text()
    assert "typo,not-a-question,unknown name,question id" in rows and "unreadable" not in rows
    tests = json.loads((gradescope / "typo.json").read_text())["tests"]
    unknown = [t for t in tests if t["name"] == "not-a-question"]
    assert unknown and unknown[0]["max_score"] == 0 and unknown[0]["status"] == "failed"


def test_exit_2_for_unreadable_inputs(tmp_path):
    problem = small_problem(tmp_path)
    run = run_cli(["check", problem, tmp_path / "nowhere.yaml"], tmp_path)
    assert run.returncode == 2 and "no such file" in run.stderr
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert run_cli(["check", problem, binary], tmp_path).returncode == 2
    empty_tex = tmp_path / "empty.tex"
    empty_tex.write_text("no answers here")
    run = run_cli(["check", problem, empty_tex], tmp_path)
    assert run.returncode == 2 and "no answers found" in run.stderr
    bad_problem = tmp_path / "bad-problem.yaml"
    bad_problem.write_text("title: x\nquestions: 3\n")
    answers = yaml_answers(tmp_path / "a.yaml", RIGHT)
    assert run_cli(["check", bad_problem, answers], tmp_path).returncode == 2


def test_tex_answers_with_commands_and_environments(tmp_path):
    problem = small_problem(tmp_path)
    tex = tmp_path / "dana.tex"
    tex.write_text(r"""\documentclass{article}
\newcommand{\answer}[2]{\paragraph{#1} #2}
\newenvironment{answer}[1]{\paragraph{#1}}{}
\begin{document}
\answer{nyu21-1.1a}{$y \in \mathbb{R}^{4 \times 5}$}  % the shape
\answer{nyu21-1.1b}{\[ F \times \left(\left\lfloor \frac{H + 2P - D(K-1) - 1}{S} \right\rfloor + 1\right)
  \times \left(\left\lfloor \frac{W + 2P - D(K-1) - 1}{S} \right\rfloor + 1\right) \]}
\begin{answer}{nyu21-1.1c-i}
  \begin{align*}
    f_{i,j} &= \sum_{c=1}^{2} \sum_{k=1}^{3} W_{i,c,k}\, x_{c, 2j+k-2} \\
            &= \sum_{k=1}^{3} \left(W_{i,1,k} x_{1,2j+k-2} + W_{i,2,k} x_{2,2j+k-2}\right)
  \end{align*}
\end{answer}
\begin{answer}{nyu21-1.1c-iv}
  $\frac{\partial l}{\partial W_{p,q,r}} = \sum_{j=1}^{2} g_{p,j} x_{q, 2j + r - 1}$
\end{answer}
\end{document}
""")
    run = run_cli(["check", problem, tex, "--json"], tmp_path)
    assert run.returncode == 1, run.stderr
    by_id = {v["question"]: v["verdict"] for v in json.loads(run.stdout)["verdicts"]}
    assert by_id == {"nyu21-1.1a": "correct", "nyu21-1.1b": "correct", "nyu21-1.1c-i": "correct",
                     "nyu21-1.1c-iv": "incorrect"}


def test_folder_of_submissions_with_report(tmp_path):
    problem = small_problem(tmp_path)
    folder = tmp_path / "submissions"
    folder.mkdir()
    yaml_answers(folder / "alice.yaml", ALL_RIGHT)
    yaml_answers(folder / "bob.yaml", {"nyu21-1.1a": r"\mathbb{R}^{5 \times 5}", "nyu21-1.1c-iv": WRONG_IV,
                                       "nyu21-1.1c-i": r"f_{i,j} = \sum_{c"})
    (folder / "carol.tex").write_text(r"\answer{nyu21-1.1a}{$4 \times 5$}")
    (folder / "notes.txt").write_text("not a submission")
    report = tmp_path / "out" / "report.csv"
    run = run_cli(["check", problem, folder, "--report", report], tmp_path)
    assert run.returncode == 1, run.stderr
    rows = list(csv.DictReader(report.open()))
    assert list(rows[0]) == ["submission", "question", "verdict", "decided_by", "evidence", "flags"]
    got = {(r["submission"], r["question"]): r["verdict"] for r in rows}
    assert len(rows) == 12
    assert {k: v for k, v in got.items() if k[0] == "alice"} == {
        ("alice", q): "correct" for q in ALL_RIGHT}
    assert got[("bob", "nyu21-1.1a")] == "incorrect"
    assert got[("bob", "nyu21-1.1b")] == "missing"
    assert got[("bob", "nyu21-1.1c-i")] == "unparseable"
    assert got[("bob", "nyu21-1.1c-iv")] == "incorrect"
    assert got[("carol", "nyu21-1.1a")] == "correct" and got[("carol", "nyu21-1.1b")] == "missing"
    bob = {r["question"]: r for r in rows if r["submission"] == "bob"}
    assert bob["nyu21-1.1a"]["decided_by"] == "shape" and "axis 1" in bob["nyu21-1.1a"]["evidence"]
    assert "alice" in run.stdout and "bob" in run.stdout


def test_folder_with_an_unusable_submission_exits_2_after_grading_the_rest(tmp_path):
    problem = small_problem(tmp_path)
    folder = tmp_path / "submissions"
    folder.mkdir()
    yaml_answers(folder / "alice.yaml", ALL_RIGHT)
    (folder / "broken.yaml").write_text("- not\n- a mapping\n")
    report = tmp_path / "report.csv"
    run = run_cli(["check", problem, folder, "--report", report, "--json"], tmp_path)
    assert run.returncode == 2
    rows = list(csv.DictReader(report.open()))
    assert [r["verdict"] for r in rows if r["submission"] == "alice"] == ["correct"] * 4
    assert [r["verdict"] for r in rows if r["submission"] == "broken"] == ["unreadable"]
    record = json.loads(run.stdout)
    assert record["unusable"][0]["submission"] == "broken"


def test_timeout_is_a_verdict_not_a_hang(tmp_path):
    problem = small_problem(tmp_path)
    slow = r"f_{i,j} = \sum_{a=1}^{9999} \sum_{b=1}^{9999} \frac{W_{i,1,1} x_{1,j}}{99980001} + 0 \cdot " \
           r"\sum_{c=1}^{9999} \sum_{d=1}^{9999} x_{1,1}"
    answers = yaml_answers(tmp_path / "slow.yaml", {**ALL_RIGHT, "nyu21-1.1c-i": slow})
    start = time.monotonic()
    run = run_cli(["check", problem, answers, "--json", "--timeout", "1"], tmp_path)
    assert time.monotonic() - start < 60
    assert run.returncode == 1, run.stderr
    by_id = {v["question"]: v for v in json.loads(run.stdout)["verdicts"]}
    assert by_id["nyu21-1.1c-i"]["verdict"] == "timeout"
    assert by_id["nyu21-1.1a"]["verdict"] == "correct"


def test_a_worker_that_ignores_its_soft_limit_is_killed(monkeypatch):
    """Work SIGALRM cannot interrupt (here: the alarm ignored, then a long C sleep) is stopped by the
    parent, and a worker that dies does not take the other answers with it."""
    problem = load_problem(NYU21)
    infos = prepare(problem, {"nyu21-1.1a"})
    real = grade.check_one

    def stubborn(info, latex, timeout, seed=None):
        if latex == "hang":
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            time.sleep(60)
        if latex == "crash":
            os._exit(3)
        return real(info, latex, timeout)

    monkeypatch.setattr(grade, "check_one", stubborn)
    tasks = [(1, "nyu21-1.1a", "hang"), (2, "nyu21-1.1a", "crash"), (3, "nyu21-1.1a", r"4 \times 5"),
             (4, "nyu21-1.1a", r"5 \times 4")]
    start = time.monotonic()
    results = run_tasks(infos, tasks, timeout=0.5, workers=2)
    assert time.monotonic() - start < 20
    assert results[1].verdict == "timeout"
    assert results[2].verdict == "error" and "died" in results[2].evidence
    assert results[3].verdict == "correct" and results[4].verdict == "incorrect"


def test_tolerance_key_is_validated(tmp_path):
    problem = tmp_path / "tol.yaml"
    problem.write_text('title: t\nquestions:\n  - id: v\n    ask: value\n    expr: "1/3"\n    tolerance: lots\n')
    answers = yaml_answers(tmp_path / "a.yaml", {"v": "0.33"})
    run = run_cli(["check", problem, answers], tmp_path)
    assert run.returncode == 2 and "tolerance" in run.stderr


# Fuzzing: random and adversarial LaTeX only ever yields verdicts, quickly -------------------

TOKENS = [r"\frac", r"\sum", r"\sum_{j=1}^{n}", r"\partial", "{", "}", "(", ")", "[", "]", "^", "_", "&", r"\\",
          "x", "W", "f", "g", "i", "j", "t", "T", "1", "2", "0.5", "+", "-", "=", ",", r"\odot", r"\cdot",
          r"\times", r"\sigma", r"\tanh", r"\operatorname{softmax}", r"\mathbb{R}", r"\begin{bmatrix}",
          r"\end{bmatrix}", r"\begin{cases}", r"\end{cases}", r"\left(", r"\right)", r"\lfloor", r"\rfloor",
          "^T", r"^{\top}", r"\langle", r"\rangle", "<", ">", "|", r"\|", "'", r"\text{if}", r"\delta_{ij}",
          r"\mathbb{1}", r"\sqrt", r"\log", "e", "$", r"\in", r"\approx", "%", "10^{", "99^{99}", r"\infty",
          r"\nabla", r"\quad", ";", r"\hat{y}", "σ", "⊙", "∑", "\u2028", "\x00"]
ADVERSARIAL = [
    "{" * 60 + "x" + "}" * 60, "(" * 500, r"x^{" * 45 + "2" + "}" * 45, r"10^{10^{10^{10}}}", "9" * 59,
    r"\sum_{i=1}^{10^{9}} x_{1,1}", r"\frac{1}{0}", r"0^{-1}", r"\sqrt[1000]{2}", r"2^{1000} \cdot 2^{1000}",
    r"\begin{bmatrix}" + "&".join(["1"] * 100) + r"\end{bmatrix}", r"\left(\right)", "\\", "$$", "",
    r"\sum_{j} x_{1,j}", r"x_{" + ",".join("1" * 30) + "}", r"\frac{\partial l}{\partial W} = W^{-1}",
    r"e^{e^{e^{e^{e^{10}}}}}", r"\tanh(10^{300})", r"\log(0)", r"\lfloor 10^{999} \rfloor",
]
FUZZ_INFOS = {}


def fuzz_infos():
    if not FUZZ_INFOS:
        FUZZ_INFOS.update(prepare(load_problem(NYU21), {"nyu21-1.1a", "nyu21-1.1c-i", "nyu21-1.1c-iv"}))
        FUZZ_INFOS.update(prepare(load_problem(NYU24), {"nyu24-1.3d"}))
    return FUZZ_INFOS


def assert_only_verdicts(latex, question):
    start = time.monotonic()
    v = check_one(fuzz_infos()[question], latex, timeout=3)
    assert v.verdict in VERDICTS and v.verdict != "error", (latex, v.verdict, v.evidence)
    assert time.monotonic() - start < 6, (latex, time.monotonic() - start)


QUESTIONS = st.sampled_from(["nyu21-1.1a", "nyu21-1.1c-i", "nyu21-1.1c-iv", "nyu24-1.3d"])


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join), QUESTIONS)
def test_fuzz_token_soup(latex, question):
    assert_only_verdicts(latex, question)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=120), QUESTIONS)
def test_fuzz_random_text(latex, question):
    assert_only_verdicts(latex, question)


@pytest.mark.parametrize("latex", ADVERSARIAL)
def test_adversarial_latex(latex):
    for question in ("nyu21-1.1c-i", "nyu24-1.3d"):
        assert_only_verdicts(latex, question)
