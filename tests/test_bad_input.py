"""Bad input: every mistake in a problem file gives a clear one-line error that names the
file, the question and the position, never a traceback, never executes anything, and
never stops the rest of the run.

Exit status of the CLI: 0 all answered, 1 some question failed, 2 bad usage or an
unreadable problem file. Positions are computed here from the YAML text written by
each test (the offset of the bad token), not copied from the engine's output.
"""
import json
import re
from pathlib import Path

import pytest

from symderive.answer import Status
from symderive.problem import load_problem
from helpers import NO_PDF, run_cli  # noqa: E402


# ---------------------------------------------------------------------------------------
# helpers





def solve(paths, cwd, *extra, timeout=120):
    return run_cli(["solve", *map(str, paths), "-o", "out", *NO_PDF, *extra], cwd, timeout)


def write(directory, name, text):
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def offset_of(text, token, after=None, nth=1):
    """Offset of the nth occurrence of ``token`` in ``text`` (after the text ``after``)."""
    offset = text.index(after) if after else 0
    for _ in range(nth):
        offset = text.index(token, offset) + 1
    return offset - 1


def line_col(text, offset):
    """1-based (line, column) of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def position(text, token, after=None, nth=1):
    """1-based (line, column) of the nth occurrence of ``token`` in ``text`` (after ``after``)."""
    return line_col(text, offset_of(text, token, after, nth))


def error_lines(stderr, qid):
    """The stderr lines about question ``qid``."""
    return [line for line in stderr.splitlines() if f"question {qid}:" in line
            or f"question {qid} " in line]


def the_error(stderr, qid):
    """Exactly one stderr line about ``qid`` (errors are one line each)."""
    lines = error_lines(stderr, qid)
    assert len(lines) == 1, f"expected one error line for {qid}, got {lines!r}\nstderr:\n{stderr}"
    return lines[0]


def reported_position(line, fname):
    """(line, column) printed after ``fname:`` in an error line, or (line, None)."""
    match = re.search(re.escape(fname) + r":(\d+)(?::(\d+))?:", line)
    assert match, f"no {fname}:line:column in {line!r}"
    return int(match.group(1)), (int(match.group(2)) if match.group(2) else None)


def assert_at(line, fname, expected_line, columns):
    """The error names ``fname`` at ``expected_line`` and one of the ``columns``."""
    columns = {columns} if isinstance(columns, int) else set(columns)
    got_line, got_column = reported_position(line, fname)
    assert (got_line, got_column) in {(expected_line, c) for c in columns}, (
        f"position: expected {fname}:{expected_line}:{sorted(columns)}, got "
        f"{fname}:{got_line}:{got_column} in {line!r}")


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


# ---------------------------------------------------------------------------------------
# YAML syntax errors and other unreadable files: exit 2

YAML_SYNTAX = """\
title: "syntax"
questions:
  - id: q1
    ask: value
    expr: "1" extra
"""

YAML_MAPPING_VALUES = """\
title: "syntax": two colons
questions:
  - id: q1
    ask: value
    expr: "1"
"""


@pytest.mark.parametrize("text, token", [(YAML_SYNTAX, "extra"), (YAML_MAPPING_VALUES, ": two")],
                         ids=["trailing-scalar", "mapping-values"])
def test_yaml_syntax_error_exit_2_with_file_and_position(tmp_path, text, token):
    write(tmp_path, "broken.yaml", text)
    result = solve(["broken.yaml"], tmp_path)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.splitlines() if "broken.yaml" in l]
    assert len(lines) == 1, result.stderr
    assert "yaml" in lines[0].lower()
    assert_at(lines[0], "broken.yaml", *position(text, token))
    assert not (tmp_path / "out" / "broken.tex").exists()


def test_yaml_syntax_error_api(tmp_path):
    from symderive.errors import ProblemFileError
    path = write(tmp_path, "broken.yaml", YAML_SYNTAX)
    with pytest.raises(ProblemFileError) as info:
        load_problem(path)
    line, column = position(YAML_SYNTAX, "extra")
    assert (info.value.line, info.value.column) == (line, column)
    assert f"broken.yaml:{line}:{column}" in str(info.value)
    assert "\n" not in str(info.value)


UNREADABLE = {
    # name: (text, (key, value) whose position is right, or None; question id named, or None)
    "not-a-mapping": ("- a\n- b\n", None, None),
    "unknown-top-level-key": ("title: t\nquestion:\n  - id: q1\n    ask: value\n    expr: '1'\n",
                              ("question", None), None),
    "no-questions-key": ("title: t\nsizes: [N]\n", None, None),
    "empty-questions": ("title: t\nquestions: []\n", ("questions", "[]"), None),
    "bad-index-base": ("title: t\nindex_base: 2\nquestions:\n  - id: q1\n    ask: value\n"
                       "    expr: '1'\n", ("index_base", "2\n"), None),
    "bad-index-base-text": ("title: t\nindex_base: one\nquestions:\n  - id: q1\n    ask: value\n"
                            "    expr: '1'\n", ("index_base", "one"), None),
    "duplicate-id": ("title: t\nquestions:\n  - id: q1\n    ask: value\n    expr: '1'\n"
                     "  - id: q1\n    ask: value\n    expr: '2'\n", ("id: q1", "q1"), "q1"),
    "unknown-ask": ("title: t\nquestions:\n  - id: q1\n    ask: integrate\n    of: y\n",
                    ("ask", "integrate"), "q1"),
    "unknown-ask-list": ("title: t\nquestions:\n  - id: q1\n    ask: [value]\n    expr: '1'\n",
                         ("ask", "[value]"), "q1"),
}


def _expected_position(text, spec, name):
    """Line and acceptable columns (the key, or its value) for an UNREADABLE entry."""
    key, value = spec
    key_offset = offset_of(text, key, nth=2 if name == "duplicate-id" else 1)
    line, key_column = line_col(text, key_offset)
    columns = {key_column}
    if value is not None:
        columns.add(line_col(text, text.index(value, key_offset))[1])
    return line, columns


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_file_exit_2(tmp_path, name):
    text, spec, qid = UNREADABLE[name]
    (tmp_path / "bad.yaml").write_text(text)
    result = solve(["bad.yaml"], tmp_path)
    no_traceback(result)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert "bad.yaml" in lines[0]
    if qid:
        assert qid in lines[0]
    if spec:
        line, columns = _expected_position(text, spec, name)
        assert_at(lines[0], "bad.yaml", line, columns)
    assert not (tmp_path / "out" / "bad.tex").exists()


@pytest.mark.parametrize("name", ["duplicate-id", "unknown-ask", "unknown-ask-list", "bad-index-base"])
def test_unreadable_file_api_raises_problem_file_error(tmp_path, name):
    from symderive.errors import ProblemFileError
    (tmp_path / "bad.yaml").write_text(UNREADABLE[name][0])
    with pytest.raises(ProblemFileError):
        load_problem(tmp_path / "bad.yaml")


# ---------------------------------------------------------------------------------------
# Undeclared names: the question fails (exit 1), the error points at the bad name

UNDECLARED = """\
title: "undeclared names"
index_base: 1
tensors:
  x: [1, 6]
layers:
  y: "conv1d(x, Wz)"
questions:
  - id: in-layer
    ask: shape
    of: y
  - id: in-expr
    ask: value
    expr: "1 + zz"
  - id: in-plain-expr
    ask: value
    expr: 2 * zz
  - id: in-element-layer
    ask: element
    of: z
    tensors:
      W: [2, 3]
    layers:
      "z[i]": "Sum(W[i, j]*q[j], (j, 1, 3))"
  - id: in-shape
    ask: shape
    of: v
    tensors: {u: [N, 4], k: [1, 1, 2]}
    layers: {v: "conv1d(u, k)"}
  - id: in-block-scalar
    ask: value
    expr: >-
      3 + zz
  - id: good
    ask: value
    expr: "log(4)"
"""

UNDECLARED_CASES = {
    "in-layer": ("Wz", None),
    "in-expr": ("zz", "in-expr"),
    "in-plain-expr": ("zz", "in-plain-expr"),
    "in-element-layer": ("q[j]", None),
    "in-shape": ("N,", None),
    "in-block-scalar": ("zz", "in-block-scalar"),
}


@pytest.fixture(scope="module")
def undeclared_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("undeclared")
    (directory / "undeclared.yaml").write_text(UNDECLARED)
    return directory, solve(["undeclared.yaml"], directory)


def test_undeclared_exit_1_and_good_question_answered(undeclared_run):
    directory, result = undeclared_run
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert error_lines(result.stderr, "good") == []
    assert (directory / "out" / "undeclared.tex").exists()


@pytest.mark.parametrize("qid", list(UNDECLARED_CASES))
def test_undeclared_name_position(undeclared_run, qid):
    _, result = undeclared_run
    token, after = UNDECLARED_CASES[qid]
    line = the_error(result.stderr, qid)
    name = token.rstrip(",").split("[")[0]
    assert f"'{name}'" in line, line
    assert "undeclared.yaml" in line
    assert_at(line, "undeclared.yaml", *position(UNDECLARED, token, after=f"id: {after}" if after else None))


# ---------------------------------------------------------------------------------------
# Shapes that do not fit: the question fails (exit 1), the error points into the layer

SHAPES = """\
title: "shapes that do not fit"
questions:
  - id: kernel-too-big
    ask: shape
    of: y
    tensors: {x: [1, 3], w: [1, 1, 5]}
    layers: {y: "conv1d(x, w)"}
  - id: kernel-bigger-than-padded
    ask: shape
    of: y
    tensors: {x: [1, 3], w: [1, 1, 6]}
    layers: {y: "conv1d(x, w, padding=1)"}
  - id: kernel-too-big-2d
    ask: shape
    of: y
    tensors: {x: [8, 2], k: [3, 3]}
    layers: {y: "conv2d(x, k)"}
  - id: pool-too-big
    ask: shape
    of: y
    tensors: {x: [1, 3]}
    layers: {y: "max_pool1d(x, kernel_size=4)"}
  - id: negative-stride
    ask: shape
    of: y
    tensors: {x: [1, 5], w: [1, 1, 2]}
    layers: {y: "conv1d(x, w, stride=-1)"}
  - id: negative-stride-2d
    ask: shape
    of: y
    tensors: {x: [6, 6], k: [2, 2]}
    layers: {y: "conv2d(x, k, stride=(1, -2))"}
  - id: negative-pool-stride
    ask: shape
    of: y
    tensors: {x: [1, 6]}
    layers: {y: "avg_pool1d(x, kernel_size=2, stride=-2)"}
  - id: fits
    ask: shape
    of: y
    tensors: {x: [1, 5], w: [1, 1, 2]}
    layers: {y: "conv1d(x, w, stride=2)"}
"""

SHAPE_CASES = {
    # question: tokens whose start is an acceptable position (the call, or the bad argument)
    "kernel-too-big": ["conv1d", "w)"],
    "kernel-bigger-than-padded": ["conv1d", "w,", "padding"],
    "kernel-too-big-2d": ["conv2d", "k)"],
    "pool-too-big": ["max_pool1d", "kernel_size", "4)"],
    "negative-stride": ["conv1d", "stride", "-1"],
    "negative-stride-2d": ["conv2d", "stride", "(1, -2)", "-2"],
    "negative-pool-stride": ["avg_pool1d", "stride", "-2"],
}


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shapes")
    (directory / "shapes.yaml").write_text(SHAPES)
    return directory, solve(["shapes.yaml", "--json"], directory)


def test_shape_errors_exit_1_others_answered(shapes_run):
    directory, result = shapes_run
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    records = {r["question"]: r for r in json.loads(result.stdout)}
    assert records["fits"]["status"] == "derived"
    assert records["fits"]["answers"][0]["sympy"] == "(1, 2)"
    for qid in SHAPE_CASES:
        assert records[qid]["status"] == "failed", records[qid]
    assert (directory / "out" / "shapes.tex").exists()


@pytest.mark.parametrize("qid", list(SHAPE_CASES))
def test_shape_error_position(shapes_run, qid):
    _, result = shapes_run
    line = the_error(result.stderr, qid)
    anchor = SHAPES.index(f"id: {qid}\n")
    layer_line = SHAPES.index("layers:", anchor)
    expected_line = SHAPES.count("\n", 0, layer_line) + 1
    columns = set()
    for token in SHAPE_CASES[qid]:
        offset = SHAPES.index(token, layer_line)
        columns.add(offset - (SHAPES.rfind("\n", 0, offset) + 1) + 1)
    assert_at(line, "shapes.yaml", expected_line, columns)


def test_shape_errors_api(tmp_path):
    path = write(tmp_path, "shapes.yaml", SHAPES)
    answers = {a.question_id: a for a in load_problem(path).solve()}
    assert answers["fits"].status is Status.DERIVED
    for qid in SHAPE_CASES:
        assert answers[qid].status is Status.FAILED
        assert "shapes.yaml" in answers[qid].error and qid in answers[qid].error
        assert "\n" not in answers[qid].error


# ---------------------------------------------------------------------------------------
# Expressions outside the whitelist: refused with a one-line error, never executed

def _whitelist_cases(directory):
    marker = lambda name: str(directory / f"MARKER_{name}")  # noqa: E731
    long_expr = ("1+" * 2500)[:-1] + "1"          # 5000 characters
    assert len(long_expr) == 5000
    return {
        # id: (expression, tokens whose start is an acceptable column; None = anywhere in it)
        "import-system": (f"__import__('os').system('touch {marker('import')}')", ["__import__"]),
        "prefixed-import": (f"1 + __import__('os').system('touch {marker('prefixed')}')",
                            ["__import__"]),
        "attribute": ("1 + x.real", ["x.real"]),
        "dunder-chain": ("2 * x.__class__.__bases__", ["x.__class__"]),
        "lambda": ("1 + (lambda: 2)()", ["(lambda", "lambda"]),
        "bare-lambda": ("lambda q: 1", ["lambda"]),
        "comprehension": ("1 + [j for j in (1, 2)]", ["[j for"]),
        "f-string": ("1 + f'{x}'", ["f'"]),
        "string": ("1 + 'abc'", ["'abc'"]),
        "exec": ("exec('print(1)')", ["exec"]),
        "eval": ("1 + eval('2')", ["eval"]),
        "getattr": ("getattr(x, 'real')", ["getattr"]),
        "open": ("open('/etc/passwd')", ["open"]),
        "huge-exponent": ("2**10**10", ["10**10", "2**10**10"]),
        "prefixed-huge-exponent": ("1 + 2**10**10", ["10**10", "2**10**10"]),
        "huge-result": ("(10**1000)**1000", None),
        "long": (long_expr, ["1+"]),
        "nested-parentheses": ("(" * 300 + "1" + ")" * 300, None),
        "nested-operations": ("1 + " + "-(" * 80 + "x" + ")" * 80, None),
    }


def _whitelist_yaml(cases, directory):
    out = ['title: "outside the whitelist"', "tensors:", "  x: []", "questions:"]
    for qid, (expr, _) in cases.items():
        out += [f"  - id: {qid}", "    ask: value", f'    expr: "{expr}"']
    out += ["  - id: inject-layer", "    ask: shape", "    of: y", "    layers:",
            f"      y: \"__import__('os').system('touch {directory / 'MARKER_layer'}')\"",
            "  - id: inject-shape", "    ask: shape", "    of: t", "    tensors:",
            f"      t: [\"__import__('os').system('touch {directory / 'MARKER_shape'}')\"]",
            "  - id: fine", "    ask: value", '    expr: "x**2 + 1/2"']
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def whitelist_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("whitelist")
    cases = _whitelist_cases(directory)
    assert all('"' not in e and "\\" not in e for e, _ in cases.values())
    text = _whitelist_yaml(cases, directory)
    (directory / "whitelist.yaml").write_text(text)
    result = solve(["whitelist.yaml", "--json", "--timeout", "20"], directory, timeout=300)
    return directory, cases, text, result


def test_whitelist_nothing_executed(whitelist_run):
    directory, _, _, result = whitelist_run
    no_traceback(result)
    assert list(directory.glob("MARKER*")) == []


def test_whitelist_exit_1_good_question_answered(whitelist_run):
    directory, cases, _, result = whitelist_run
    assert result.returncode == 1, result.stderr
    records = {r["question"]: r for r in json.loads(result.stdout)}
    assert records["fine"]["status"] == "derived"
    for qid in list(cases) + ["inject-layer", "inject-shape"]:
        assert records[qid]["status"] == "failed", records[qid]
        assert "\n" not in records[qid]["error"]
    assert (directory / "out" / "whitelist.tex").exists()


@pytest.mark.parametrize("qid", list(_whitelist_cases(Path("/nonexistent"))))
def test_whitelist_error(whitelist_run, qid):
    directory, cases, text, result = whitelist_run
    expr, tokens = cases[qid]
    line = the_error(result.stderr, qid)
    assert "internal error" not in line, line
    assert "whitelist.yaml" in line
    expr_line, quote_col = position(text, f'"{expr}"', after=f"id: {qid}\n")
    start = quote_col + 1
    if tokens is None:
        columns = range(quote_col, start + len(expr))
    else:
        columns = {start + expr.index(t) for t in tokens}
        if expr.index(tokens[0]) == 0:
            columns.add(quote_col)     # the start of the expression may be given as the quote
    assert_at(line, "whitelist.yaml", expr_line, columns)


@pytest.mark.parametrize("qid, token", [("inject-layer", "__import__"), ("inject-shape", "__import__")])
def test_injection_in_declarations_refused(whitelist_run, qid, token):
    directory, _, text, result = whitelist_run
    line = the_error(result.stderr, qid)
    expected_line, column = position(text, token, after=f"id: {qid}\n")
    assert_at(line, "whitelist.yaml", expected_line, {column, column - 1})


def test_whitelist_api_never_executes(tmp_path, monkeypatch):
    import os
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    cases = _whitelist_cases(tmp_path)
    cases.pop("huge-result")       # slow and separately covered by the CLI run
    path = tmp_path / "whitelist.yaml"
    path.write_text(_whitelist_yaml(cases, tmp_path))
    answers = {a.question_id: a for a in load_problem(path).solve(timeout=20)}
    assert calls == []
    assert list(tmp_path.glob("MARKER*")) == []
    assert answers["fine"].status is Status.DERIVED
    for qid in list(cases) + ["inject-layer", "inject-shape"]:
        assert answers[qid].status is Status.FAILED, qid
        assert re.search(r"whitelist\.yaml:\d+:\d+: question " + re.escape(qid) + ":", answers[qid].error), \
            answers[qid].error


# ---------------------------------------------------------------------------------------
# One bad question among good ones; one unreadable file among good ones

MIXED = """\
title: "mixed"
index_base: 1
tensors:
  x: [2, 5]
  W: [1, 2, 3]
layers:
  f: conv1d(x, W, stride=2)
questions:
  - id: good-shape
    ask: shape
    of: f
  - id: bad-expr
    ask: value
    expr: "log(nope)"
  - id: good-derivative
    ask: derivative
    of: f
    wrt: W
  - id: good-text
    ask: text
    answer: "Because."
"""

GOOD = """\
title: "good"
questions:
  - id: g1
    ask: value
    expr: "1/2 + 1/3"
"""


def test_mixed_file_cli(tmp_path):
    (tmp_path / "mixed.yaml").write_text(MIXED)
    result = solve(["mixed.yaml", "--json"], tmp_path)
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    records = {r["question"]: r for r in json.loads(result.stdout)}
    assert records["bad-expr"]["status"] == "failed"
    assert records["good-shape"]["status"] == "derived"
    assert records["good-derivative"]["status"] == "derived"
    assert records["good-text"]["status"] == "authored text"
    line = the_error(result.stderr, "bad-expr")
    assert_at(line, "mixed.yaml", *position(MIXED, "nope"))
    for qid in ("good-shape", "good-derivative", "good-text"):
        assert error_lines(result.stderr, qid) == []
    sheet = (tmp_path / "out" / "mixed.tex").read_text()
    for qid in ("good-shape", "bad-expr", "good-derivative", "good-text"):
        assert qid in sheet
    assert r"\boxed" in sheet


def test_mixed_file_api(tmp_path):
    path = write(tmp_path, "mixed.yaml", MIXED)
    problem = load_problem(path)
    answers = {a.question_id: a for a in problem.solve()}
    assert answers["bad-expr"].status is Status.FAILED
    line, column = position(MIXED, "nope")
    assert f"mixed.yaml:{line}:{column}: question bad-expr:" in answers["bad-expr"].error
    for qid in ("good-shape", "good-derivative", "good-text"):
        assert answers[qid].status is not Status.FAILED, answers[qid].error
        assert answers[qid].error == ""
    sheet = problem.sheet(list(answers.values()))
    assert "good-derivative" in sheet and r"\end{document}" in sheet


def test_folder_with_one_unreadable_file(tmp_path):
    write(tmp_path, "probs/a_broken.yaml", YAML_SYNTAX)
    write(tmp_path, "probs/b_good.yaml", GOOD)
    write(tmp_path, "probs/c_duplicate.yaml", UNREADABLE["duplicate-id"][0])
    result = solve(["probs"], tmp_path)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert (tmp_path / "out" / "b_good.tex").exists()
    assert not (tmp_path / "out" / "a_broken.tex").exists()
    assert_at(next(l for l in result.stderr.splitlines() if "a_broken.yaml" in l),
              "a_broken.yaml", *position(YAML_SYNTAX, "extra"))
    assert any("c_duplicate.yaml" in l and "q1" in l for l in result.stderr.splitlines())
    assert "g1" in result.stdout


def test_several_files_unreadable_one_does_not_stop_the_others(tmp_path):
    write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "mixed.yaml", MIXED)
    write(tmp_path, "broken.yaml", YAML_SYNTAX)
    result = solve(["broken.yaml", "good.yaml", "mixed.yaml", "--json"], tmp_path)
    no_traceback(result)
    assert result.returncode == 2, result.stderr     # 2 wins over the failed question's 1
    assert (tmp_path / "out" / "good.tex").exists()
    assert (tmp_path / "out" / "mixed.tex").exists()
    records = json.loads(result.stdout)
    assert {r["problem"] for r in records} == {"good", "mixed"}
    assert any("broken.yaml" in l for l in result.stderr.splitlines())
    assert error_lines(result.stderr, "bad-expr")


def test_list_with_unreadable_file(tmp_path):
    write(tmp_path, "probs/a_broken.yaml", YAML_SYNTAX)
    write(tmp_path, "probs/b_good.yaml", GOOD)
    result = run_cli(["list", "probs"], tmp_path)
    no_traceback(result)
    assert result.returncode == 2
    assert "g1" in result.stdout
    assert "a_broken.yaml" in result.stderr


def test_bad_option_value_is_located(tmp_path):
    """An option with a wrong value fails that question with the option's position (exit 1)."""
    text = ("title: t\ntensors: {x: [5], w: [3]}\nlayers: {y: \"conv1d(x, w)\"}\nquestions:\n"
            "  - id: q\n    ask: conv_matrix\n    of: y\n    matrix: B\n"
            "  - id: ok\n    ask: shape\n    of: y\n")
    (tmp_path / "bad.yaml").write_text(text)
    done = run_cli(["solve", "bad.yaml", "-o", "out", *NO_PDF], tmp_path)
    assert done.returncode == 1
    assert "bad.yaml:8:13: question q: 'matrix' is A" in done.stderr
    assert "question ok" not in done.stderr
