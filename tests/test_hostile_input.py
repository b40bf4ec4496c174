"""Hostile and mistaken input (issue 15): every defect found by fuzzing and by new users, one
regression test each. Expected values are worked out here by hand or with the standard library
(math), never copied from the engine's output; positions are computed from the text written."""
import csv
import math
import os
import time
from pathlib import Path

import pytest
import sympy as sp

from symderive.answer import Status
from symderive.checking.answers import AnswersFileError, parse_tex_answers, read_answers_file
from symderive.errors import ProblemFileError
from symderive.problem import load_problem
from helpers import NO_PDF, run_cli  # noqa: E402
from hostile_problems import rnn_text  # noqa: E402
from test_bad_input import position, reported_position, the_error, write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NYU21 = ROOT / "problems" / "nyu-dl-2021-hw3.yaml"
TEXT_QUESTION = "questions:\n  - {id: q, ask: text, answer: hi}\n"


def alias_bomb(levels=10, width=9):
    """title: [&a0 [lol, ...], &a1 [*a0, ...], ...]: ``width ** levels`` strings from 1 KB."""
    first = "&a0 [" + ", ".join(["lol"] * width) + "]"
    rest = [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "title: [" + ", ".join([first] + rest) + "]\n" + TEXT_QUESTION


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


# 1, 2. YAML: alias bombs, text fields that are not strings, deep nesting ----------------------

@pytest.mark.parametrize("command", ["solve", "list", "check"])
def test_alias_bomb_is_refused_at_once_with_exit_2(tmp_path, command):
    text = alias_bomb()
    assert len(text) < 1100
    problem = write(tmp_path, "bomb.yaml", text)
    answers = write(tmp_path, "a.yaml", "q: 'x'\n")
    args = {"solve": ["solve", problem, "-o", "out", *NO_PDF], "list": ["list", problem],
            "check": ["check", problem, answers]}[command]
    start = time.monotonic()
    run = run_cli(args, tmp_path, timeout=60)
    assert time.monotonic() - start < 30
    assert run.returncode == 2, run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "aliases expand to more than" in lines[0], lines
    assert "Traceback" not in run.stderr
    assert reported_position(lines[0], "bomb.yaml")[0] == 1


def test_alias_bomb_in_answers_file_is_unusable(tmp_path):
    text = alias_bomb().replace("title:", "q:").split("questions:")[0]
    with pytest.raises(AnswersFileError, match="aliases expand"):
        read_answers_file(write(tmp_path, "a.yaml", text))


@pytest.mark.parametrize("key, value, kind", [
    ("title", "[a, b]", "a list"), ("source", "{a: 1}", "a mapping"), ("notes", "[&x [1], *x]", "a list"),
    ("title", "2024", "int")])
def test_text_fields_must_be_strings(tmp_path, key, value, kind):
    text = ("" if key == "title" else "title: T\n") + f"{key}: {value}\n" + TEXT_QUESTION
    path = write(tmp_path, "p.yaml", text)
    with pytest.raises(ProblemFileError) as info:
        load_problem(path)
    assert f"'{key}' must be text (a string), not {kind}" in str(info.value)
    assert (info.value.line, info.value.column) == position(text, key)


def test_question_statement_must_be_a_string(tmp_path):
    text = "title: T\nquestions:\n  - {id: q, ask: text, answer: hi, statement: [a]}\n"
    with pytest.raises(ProblemFileError, match="question q: 'statement' must be text|'statement' must be text"):
        load_problem(write(tmp_path, "p.yaml", text))


@pytest.mark.parametrize("opening", ["[", "{a: "])
@pytest.mark.parametrize("command", ["solve", "list", "check"])
def test_deep_nesting_is_one_line_and_exit_2(tmp_path, opening, command):
    text = "title: " + opening * 50_000 + "\n" + TEXT_QUESTION
    problem = write(tmp_path, "deep.yaml", text)
    answers = write(tmp_path, "a.yaml", "q: 'x'\n")
    args = {"solve": ["solve", problem, "-o", "out", *NO_PDF], "list": ["list", problem],
            "check": ["check", problem, answers]}[command]
    run = run_cli(args, tmp_path, timeout=60)
    assert run.returncode == 2
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "nested too deeply" in lines[0], lines
    # The file's mapping is level 1; the first value at level 101 (one past the limit) is the
    # 100th '[', or the key of the 99th mapping (a mapping's key comes before its value).
    column = {"[": len("title: ") + 99 + 1, "{a: ": len("title: ") + 98 * len("{a: ") + 2}[opening]
    assert reported_position(lines[0], "deep.yaml") == (1, column)


def test_deeply_nested_answers_file_exit_2(tmp_path):
    problem = write(tmp_path, "p.yaml", "title: T\n" + TEXT_QUESTION)
    answers = write(tmp_path, "a.yaml", "q: " + "[" * 50_000 + "\n")
    run = run_cli(["check", problem, answers], tmp_path, timeout=60)
    assert run.returncode == 2 and "nested too deeply" in run.stderr and "Traceback" not in run.stderr


# 3. .tex answers: a linear scan, read under the time limit -----------------------------------

def test_unterminated_answer_environments_are_read_in_linear_time(tmp_path):
    text = "\\begin{answer}{a}\n" * 55_000
    assert len(text.encode()) < 1_000_000
    start = time.process_time()
    with pytest.raises(AnswersFileError, match=r"line 1: \\begin\{answer\}\{a\} has no \\end\{answer\}"):
        parse_tex_answers(text)
    assert time.process_time() - start < 10


def test_nested_answer_commands_are_read_in_linear_time():
    text = "\\answer{" * 55_000 + "}" * 55_000 + "{x}"
    start = time.process_time()
    assert len(parse_tex_answers(text)) == 1
    assert time.process_time() - start < 10


def test_answer_environments_still_read():
    text = "\\begin{answer}{a} $x$ \\end{answer}\n% \\begin{answer}{c}\n\\begin{answer}{b}\ny\n\\end{answer}"
    assert parse_tex_answers(text) == {"a": "$x$", "b": "y"}
    with pytest.raises(AnswersFileError, match=r"line 2: \\end\{answer\} without"):
        parse_tex_answers("\\answer{a}{x}\n\\end{answer}")


def test_reading_a_submission_is_bounded_by_the_time_limit(tmp_path, monkeypatch):
    import symderive.checking.answers as answers

    def slow(text, path=None):
        while True:
            pass
    monkeypatch.setattr(answers, "parse_tex_answers", slow)
    path = write(tmp_path, "slow.tex", "\\answer{a}{1}")
    start = time.monotonic()
    with pytest.raises(AnswersFileError, match="not read within the time limit of 1 s"):
        read_answers_file(path, timeout=1)
    assert time.monotonic() - start < 10


def test_folder_with_a_stalling_tex_file_grades_the_others(tmp_path):
    problem = write(tmp_path, "p.yaml", "title: T\nquestions:\n  - {id: v, ask: value, expr: '2'}\n")
    write(tmp_path, "subs/eve.tex", "\\begin{answer}{v}\n" * 55_000)
    write(tmp_path, "subs/ann.yaml", "v: '2'\n")
    run = run_cli(["check", problem, "subs", "--report", "r.csv"], tmp_path, timeout=120)
    assert run.returncode == 2
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert {(r["submission"], r["verdict"]) for r in rows} == {("ann", "correct"), ("eve", "unreadable")}


# 4. rnn_recurrence: bounded in time, exact fixed points exactly, numeric ones labelled -----------

def rnn_problem(tmp_path, update, weight, initial, steps):
    return write(tmp_path, "rnn.yaml", rnn_text(update, weight, initial, steps))


def results(answer):
    return {r.label: r.value for r in answer.results}


def bisect(f, lo, hi):
    """A root of f in [lo, hi] (f changes sign), by bisection in floats."""
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(lo) * f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("steps", [4, 5, 50])
def test_rnn_recurrence_time_does_not_grow_with_steps(tmp_path, steps):
    """tanh(a/2) from 1: a⟨t⟩ → 0, and 0 = tanh(0/2) is the fixed point exactly, d = 1/2."""
    problem = load_problem(rnn_problem(tmp_path, "tanh", 0.5, 1, steps))
    start = time.monotonic()
    answer = problem.solve(timeout=120)[0]
    assert time.monotonic() - start < 30
    assert answer.status is Status.DERIVED, answer.error
    got = results(answer)
    assert got["fixed point"] == 0 and got["derivative at the fixed point"] == sp.Rational(1, 2)
    assert got["verdict"] == "vanishing"
    value = 1.0
    for _ in range(steps):
        value = math.tanh(value / 2)
    assert float(got["trajectory"][-1]) == pytest.approx(value, rel=1e-12, abs=1e-300)


def test_rnn_fixed_point_zero_found_exactly_when_newton_fails(tmp_path):
    """tanh(a) = a has a triple root at 0 (Newton's method stalls); the trajectory approaches it."""
    answer = load_problem(rnn_problem(tmp_path, "tanh", 1, 0.5, 5)).solve()[0]
    assert answer.status is Status.DERIVED, answer.error
    assert results(answer)["fixed point"] == 0 and results(answer)["verdict"] == "neither"


@pytest.mark.parametrize("update, weight, initial, f", [
    ("sigmoid", 1, 0, lambda a: 1 / (1 + math.exp(-a)) - a),
    ("tanh", 2, 0.5, lambda a: math.tanh(2 * a) - a)])
def test_rnn_numeric_fixed_point_is_labelled_numeric(tmp_path, update, weight, initial, f):
    answer = load_problem(rnn_problem(tmp_path, update, weight, initial, 5)).solve()[0]
    assert answer.status is Status.NUMERIC, answer.status
    assert "solved numerically" in answer.detail
    expected = bisect(f, 0.3, 1.0)          # the attracting fixed point, not the unstable 0 of tanh(2a)
    assert float(results(answer)["fixed point"]) == pytest.approx(expected, rel=1e-12)


# 5. given conditions: parsed and applied for every wrt -------------------------------------------

GIVEN = """title: g
index_base: 1
tensors:
  x: [3]
  W: [3, 3]
layers:
  z: linear(x, W)
  a: relu(z)
questions:
  - id: g
    ask: derivative
    of: a
    wrt: x
    given: [GIVEN]
"""


def test_given_is_applied_when_differentiating_by_a_whole_tensor(tmp_path):
    path = write(tmp_path, "g.yaml", GIVEN.replace("GIVEN", '"z[1] > 0", "z[2] > 0", "z[3] < 0"'))
    answer = load_problem(path).solve()[0]
    array = results(answer)["array"]
    # ∂a_i/∂x_p = H(z_i) W_ip: rows 1, 2 are W's rows (z > 0), row 3 is zero (z < 0); 0-based entries
    for i in range(3):
        for p in range(3):
            assert str(array[i, p]) == (f"W[{i}, {p}]" if i < 2 else "0"), (i, p, array[i, p])


@pytest.mark.parametrize("condition, message", [
    ("garbage(((", "syntax error"), ("y[9] > 0", "'y' is not a declared tensor"),
    ("z[9] > 0", "index 9 is outside z's axis")])
def test_bad_given_is_refused_with_its_position(tmp_path, condition, message):
    text = GIVEN.replace("GIVEN", f'"{condition}"')
    run = run_cli(["solve", write(tmp_path, "g.yaml", text), "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 1
    line = the_error(run.stderr, "g")
    assert message in line
    assert reported_position(line, "g.yaml")[0] == position(text, condition)[0]


# 6. every declaration is checked when the file loads ---------------------------------------------

UNUSED = """title: u
tensors:
  x: [3]
layers:
  bad: conv1d(x, nothere)
  good: relu(x)
questions:
  - id: q
    ask: shape
    of: good
"""


def test_a_layer_no_question_uses_is_still_checked(tmp_path):
    path = write(tmp_path, "u.yaml", UNUSED)
    assert [str(e) for e in load_problem(path).declaration_errors] == [
        f"{path}:{position(UNUSED, 'nothere')[0]}:{position(UNUSED, 'nothere')[1]}: layer 'bad': "
        "'nothere' is not a declared tensor or layer"]
    run = run_cli(["solve", path, "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 1
    lines = [l for l in error_lines(run.stderr) if l.startswith("error:")]
    assert len(lines) == 1 and "layer 'bad'" in lines[0]
    assert reported_position(lines[0], "u.yaml") == position(UNUSED, "nothere")
    # list reads the file's structure only (no SymPy), so it does not build layers (issue 17)
    listed = run_cli(["list", path], tmp_path)
    assert listed.returncode == 0 and "layer 'bad'" not in listed.stderr and "  q  [shape]" in listed.stdout


def test_a_broken_layer_a_question_uses_is_reported_once(tmp_path):
    text = UNUSED.replace("of: good", "of: bad")
    run = run_cli(["solve", write(tmp_path, "u.yaml", text), "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 1
    assert len([l for l in error_lines(run.stderr) if "nothere" in l]) == 1, run.stderr


# 7, 9. folders: duplicate stems, CSV formulas, entries that are not files -------------------------

VALUE_PROBLEM = "title: T\nquestions:\n  - {id: v, ask: value, expr: '2'}\n"


def test_two_submissions_with_the_same_stem_are_both_graded(tmp_path):
    problem = write(tmp_path, "p.yaml", VALUE_PROBLEM)
    write(tmp_path, "subs/bob.tex", "\\answer{v}{$2$}")
    write(tmp_path, "subs/bob.yaml", "v: '3'\n")
    run = run_cli(["check", problem, "subs", "--report", "r.csv"], tmp_path)
    assert run.returncode == 1
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert sorted((r["submission"], r["verdict"]) for r in rows) == [("bob.tex", "correct"),
                                                                     ("bob.yaml", "incorrect")]


def test_csv_cells_never_start_a_formula(tmp_path):
    problem = write(tmp_path, "p.yaml", VALUE_PROBLEM)
    write(tmp_path, "subs/=HYPERLINK(1).yaml", "v: '-3'\n")
    write(tmp_path, "subs/@x.yaml", "v: '2'\n")
    run_cli(["check", problem, "subs", "--report", "r.csv"], tmp_path)
    rows = list(csv.reader(open(tmp_path / "r.csv")))[1:]
    assert {r[0] for r in rows} == {"'=HYPERLINK(1)", "'@x"}
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row), rows


def test_folder_entries_that_are_not_files_get_a_row(tmp_path):
    problem = write(tmp_path, "p.yaml", VALUE_PROBLEM)
    subs = tmp_path / "subs"
    write(tmp_path, "subs/ann.yaml", "v: '2'\n")
    (subs / "dir.yaml").mkdir()
    (subs / "dangling.yaml").symlink_to(subs / "nowhere.yaml")
    (subs / "loop.yaml").symlink_to(subs / "loop.yaml")
    os.mkfifo(subs / "fifo.tex")
    run = run_cli(["check", problem, "subs", "--report", "r.csv"], tmp_path, timeout=60)
    assert run.returncode == 2
    rows = {r["submission"]: r for r in csv.DictReader(open(tmp_path / "r.csv"))}
    assert rows["ann"]["verdict"] == "correct"
    expected = {"dir": "is a folder", "dangling": "a symbolic link to a missing file",
                "loop": "a symbolic link loop", "fifo": "is not a regular file"}
    for name, why in expected.items():
        assert rows[name]["verdict"] == "unreadable" and why in rows[name]["evidence"], rows[name]


# 8. sheets are written to a new file and renamed: a planted link is replaced, not followed ------

def test_symlink_in_output_is_replaced_not_followed(tmp_path):
    problem = write(tmp_path, "p.yaml", VALUE_PROBLEM)
    victim = write(tmp_path, "victim.txt", "precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p.tex").symlink_to(victim)
    run = run_cli(["solve", problem, "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 0, run.stderr
    assert victim.read_text() == "precious"
    sheet = tmp_path / "out" / "p.tex"
    assert not sheet.is_symlink() and "\\begin{document}" in sheet.read_text()


# 10. library functions compose inside others ----------------------------------------------------

def test_sigmoid_composes_inside_log(tmp_path):
    text = """title: l
tensors:
  s: []
  y: []
  z: []
layers:
  so: 2*s
  L: log(sigmoid(so))
  E: -(y*log(sigmoid(z)) + (1-y)*log(1-sigmoid(z)))
questions:
  - {id: dL, ask: derivative, of: L, wrt: s}
  - {id: dE, ask: derivative, of: E, wrt: z}
"""
    answers = {a.question_id: a for a in load_problem(write(tmp_path, "l.yaml", text)).solve()}
    assert all(a.ok for a in answers.values()), [a.error for a in answers.values()]
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    names = lambda e: {str(s): s for s in e.free_symbols}  # noqa: E731
    dL, dE = results(answers["dL"])["array"][0], results(answers["dE"])["element"]
    # d/ds log σ(2s) = 2 (1 − σ(2s)); d/dz of the binary cross-entropy = σ(z) − y
    assert float(dL.subs(names(dL)["s"], 0.3).rewrite(sp.exp)) == pytest.approx(2 * (1 - sig(0.6)))
    point = {names(dE)["z"]: 0.7, names(dE)["y"]: 1}
    assert float(dE.subs(point).rewrite(sp.exp)) == pytest.approx(sig(0.7) - 1)


def test_a_layer_call_inside_an_expression_is_refused_clearly(tmp_path):
    text = "title: l\ntensors:\n  x: [3]\n  w: [2]\nlayers:\n  y: 1 + conv1d(x, w)\n" \
           "questions:\n  - {id: q, ask: shape, of: y}\n"
    answer = load_problem(write(tmp_path, "l.yaml", text)).solve()[0]
    assert "conv1d() builds a layer" in answer.error and "internal error" not in answer.error


# 11, 12. clear errors instead of internal ones ------------------------------------------------------

BAD_VALUES = [
    ("timeout", "{id: q, ask: value, expr: '1', timeout: abc}", "timeout must be a positive number"),
    ("factorial", r"{id: q, ask: value, expr: '$100000!$'}", "factorial is not supported"),
    ("binomial", r"{id: q, ask: value, expr: '$\binom{n}{2}$'}", "binomial is not supported"),
    ("exp4", "{id: q, ask: value, expr: 'exp(exp(exp(exp(10))))'}", "more than 1000 digits"),
    ("irrational power", "{id: q, ask: value, expr: '(sqrt(2)*10**59)**1000'}", "more than 1000 digits"),
    ("latex power", "{id: q, ask: value, expr: '$(10^{1000})^{1000}$'}", "more than 1000 digits"),
    ("latex decimal", "{id: q, ask: value, expr: '$1." + "1" * 1500 + "$'}", "longer than 60 digits"),
    ("latex prove", "{id: q, ask: prove, lhs: 'p[1]', rhs: '$\\frac{p_1$'}", "LaTeX"),
]


@pytest.mark.parametrize("name, question, message", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values_give_a_located_clear_error(tmp_path, name, question, message):
    text = f"title: T\nindex_base: 1\nsizes: [n]\ntensors:\n  p: [2]\nquestions:\n  - {question}\n"
    run = run_cli(["solve", write(tmp_path, "b.yaml", text), "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 1, run.stderr
    line = the_error(run.stderr, "q")
    assert message in line and "internal error" not in line, line
    assert reported_position(line, "b.yaml")[0] == 7


def test_latex_decimal_error_points_at_the_number(tmp_path):
    text = "title: T\nquestions:\n  - {id: q, ask: value, expr: '$2 + 1." + "1" * 100 + "$'}\n"
    line = the_error(run_cli(["solve", write(tmp_path, "b.yaml", text), "-o", "out", *NO_PDF],
                             tmp_path).stderr, "q")
    assert reported_position(line, "b.yaml") == position(text, "1.1")


def test_latex_in_a_layer_value(tmp_path):
    text = "title: T\ntensors:\n  y: []\n  z: []\nlayers:\n  w: '$y z$'\n" \
           "questions:\n  - {id: q, ask: derivative, of: w, wrt: z}\n"
    answer = load_problem(write(tmp_path, "l.yaml", text)).solve()[0]
    assert answer.ok, answer.error
    assert str(results(answer)["element"]) == "y"


def test_latex_in_a_prove_rhs(tmp_path):
    text = "title: T\nindex_base: 1\ntensors:\n  p: [3]\nquestions:\n" \
           "  - {id: q, ask: prove, lhs: '2*p[i]', rhs: '$p_{i} + p_{i}$'}\n"
    answer = load_problem(write(tmp_path, "p.yaml", text)).solve()[0]
    assert answer.status is Status.PROVED, answer.error


CHECKER_SHAPES = [r"\exp(\exp(\exp(\exp(10))))", r"(\sqrt{2} \cdot 10^{59})^{1000}", r"(10^{1000})^{1000}",
                  "1." + "1" * 1500, r"100000!", r"\binom{5}{2}"]


@pytest.mark.parametrize("latex", CHECKER_SHAPES)
def test_checker_gives_verdicts_not_errors_for_huge_numbers(latex):
    from test_check_cli import assert_only_verdicts
    for question in ("nyu24-1.3d", "nyu21-1.1c-i"):
        assert_only_verdicts(latex, question)


# 13. new users: mistyped commands, unknown --only, program name, --version -------------------------

def test_mistyped_command_suggests_the_closest(tmp_path):
    run = run_cli(["slove"], tmp_path)
    assert run.returncode == 2
    assert "did you mean 'solve'" in run.stderr and "no such file" not in run.stderr


def test_only_with_an_unknown_id_exit_2_and_no_sheet(tmp_path):
    run = run_cli(["solve", NYU21, "--only", "nope", "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 2 and "--only nope: no such question" in run.stderr
    assert not (tmp_path / "out" / "nyu-dl-2021-hw3.tex").exists()


def test_version_and_program_name(tmp_path):
    import subprocess
    import sys
    from importlib.metadata import version
    run = run_cli(["--version"], tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == f"python -m symderive {version('symderive')}"
    import symderive
    assert symderive.__version__ == version("symderive")
    script = Path(sys.executable).parent / "symderive"
    if script.exists():
        usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
        assert usage.stdout.startswith("usage: symderive ")


def test_trivial_answers_to_a_long_question_are_incorrect_not_timeout():
    """nyu24-1.2.2f's answer writes out three attention layers: writing them out once per
    answer left `1` undecided within the default limit."""
    from symderive.checking.grade import DEFAULT_TIMEOUT, check_one, prepare
    info = prepare(load_problem(ROOT / "problems" / "nyu-dl-2024-hw2.yaml"), {"nyu24-1.2.2f"})["nyu24-1.2.2f"]
    for latex in ("1", "0", "1"):
        verdict = check_one(info, latex, timeout=DEFAULT_TIMEOUT)
        assert verdict.verdict == "incorrect", (latex, verdict.verdict, verdict.evidence)


NETWORK = """title: fb
index_base: 1
questions:
  - id: q
    tensors:
      x: {shape: [3], value: [1, 2, -1]}
      W: {shape: [3, 3], value: [[0.1, 0.2, 0.3], [0.3, -0.2, 0.1], [0, 0.5, -0.5]]}
      P: {shape: [3], value: [0.2, 0.3, 0.5]}
    ask: forward_backward
    network:
      input: x
      layers:
        - c: Linear(W)
        - q: Softmax()
      loss: {E: "LOSS"}
"""


def test_a_sum_in_a_numeric_loss_is_written_out(tmp_path):
    """-Σ P_i ln q_i gave 'Cannot convert symbols to int' (P[i] with i bound by the Sum)."""
    summed = load_problem(write(tmp_path, "s.yaml", NETWORK.replace("LOSS", "-Sum(P[i]*ln(q[i]), (i, 1, 3))")))
    written = load_problem(write(tmp_path, "w.yaml", NETWORK.replace(
        "LOSS", "-P[1]*ln(q[1]) - P[2]*ln(q[2]) - P[3]*ln(q[3])")))
    a, b = summed.solve()[0], written.solve()[0]
    assert a.ok and b.ok, (a.error, b.error)
    assert [sp.simplify(r.value - s.value) == 0 if isinstance(r.value, sp.Expr) else r.value == s.value
            for r, s in zip(a.results, b.results)] == [True] * len(b.results)
    # softmax cross-entropy: ∂E/∂c = q − P (Σ P = 1), with q = softmax(W x) computed here
    c = [sum(w * v for w, v in zip(row, (1, 2, -1))) for row in ((0.1, 0.2, 0.3), (0.3, -0.2, 0.1), (0, 0.5, -0.5))]
    q = [math.exp(v) / sum(math.exp(u) for u in c) for v in c]
    assert [float(g) for g in results(a)["dE/dc"]] == pytest.approx([qi - p for qi, p in zip(q, (0.2, 0.3, 0.5))])


def test_an_engine_bug_in_a_layer_does_not_stop_the_load(tmp_path, monkeypatch):
    import symderive.declarations as declarations

    def bug(*args, **kwargs):
        raise TypeError("boom")
    monkeypatch.setattr(declarations.Declarations, "_layer", bug)
    text = "title: t\ntensors:\n  x: [3]\nlayers:\n  y: relu(x)\n" + TEXT_QUESTION
    problem = load_problem(write(tmp_path, "p.yaml", text))
    assert [str(e) for e in problem.declaration_errors] == [
        f"{tmp_path / 'p.yaml'}:{position(text, 'y:')[0]}:{position(text, 'y:')[1]}: "
        "layer 'y': internal error: TypeError: boom"]
