"""The terminal at 80 columns (issue 13): Unicode formulas instead of SymPy's Sum(...) and raw
LaTeX, long answers cut with a pointer to the sheet, a progress bar, one summary line per problem,
--only with unknown ids, and a note when PDFs are skipped. Expected answers are derived by hand
from the layers' definitions (index base 1)."""
import io
import re

import pytest
from rich.console import Console

from symderive import cli
from symderive.problem import load_problem
from symderive.terminal import progress
from test_bad_input import write  # noqa: E402

PROBLEM = r"""title: "Terminal check: $\\sigma$ layers → readable answers, with a title long enough to need cutting"
index_base: 1
sizes: [n]
tensors:
  x: [n]
  u: [n]
  W: [n, n]
  U: [n, n]
  A: [n, n]
  b: [n]
  M: [2, 2]
  v: [2]
layers:
  y: linear(x, W, b)
  "h[i]": tanh(Sum(W[i, j]*x[j], (j, 1, n)) + Sum(U[i, k]*u[k], (k, 1, n)))
  "s[i]": sigmoid(Sum(A[i, j]*h[j], (j, 1, n)) + Sum(A[j, i]*h[j], (j, 1, n)) + b[i])
  "f[i]": tanh(Sum(A[i, j]*s[j], (j, 1, n)) + Sum(U[j, i]*s[j], (j, 1, n)))
  "w[i]": Sum(M[i, j]*v[j], (j, 1, 2))
questions:
  - {id: lin, ask: element, of: y}
  - {id: long, ask: derivative, of: f, wrt: x}
  - {id: chain, ask: chain_rule, of: y, wrt: W}
  - {id: small, ask: derivative, of: w, wrt: v}
  - id: words
    ask: text
    answer: "Because $\\frac{\\partial L}{\\partial x} = W^T \\delta$ and σ′ ≤ 1/4."
"""


#: Long enough that the summary line ("NAME.yaml: 5 questions: ...") must wrap at 80 columns.
NAME = "a-problem-file-whose-name-is-long-enough-to-wrap"


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """The problem solved once through the CLI at COLUMNS=80: (stdout, stderr, exit status)."""
    tmp = tmp_path_factory.mktemp("terminal")
    write(tmp, f"{NAME}.yaml", PROBLEM)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", "80")
        mp.chdir(tmp)
        out, err = io.StringIO(), io.StringIO()
        mp.setattr("sys.stdout", out)
        mp.setattr("sys.stderr", err)
        status = cli.main(["solve", f"{NAME}.yaml", "-o", "out", "--no-pdf", "-j", "1"])
    return out.getvalue(), err.getvalue(), status


def test_every_line_fits_80_columns(solved):
    stdout, stderr, status = solved
    assert status == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) > 10
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]


def test_no_latex_and_no_sympy_function_names(solved):
    stdout = solved[0]
    assert not re.search(r"\\[A-Za-z]+", stdout), re.search(r"\\[A-Za-z]+", stdout)
    for sympy_name in ("Sum(", "KroneckerDelta", "Piecewise", "**", "sigmoid("):
        assert sympy_name not in stdout


def cells(stdout, qid):
    """The answer column of question ``qid``'s rows, joined into one string."""
    rows, inside = [], False
    for line in stdout.splitlines():
        parts = [p.strip() for p in line.split("│")]
        if len(parts) < 4:
            inside = False if line.startswith(("├", "└")) else inside
            continue
        if parts[1]:
            inside = parts[1] == qid
        if inside:
            rows.append(parts[2])
    return " ".join(rows)


def test_answers_read_as_the_formulas_derived_by_hand(solved):
    stdout = solved[0]
    # y = W x + b: y[i] = b[i] + Σ_j W[i, j] x[j]
    assert re.search(r"element: b\[i\] \+ Σ_\{(\w)=1\.\.n\} W\[i, \1\]·x\[\1\]", cells(stdout, "lin"))
    # ∂l/∂W[p, q] = g[p] x[q]; as matrices g xᵀ
    assert "element: g[p]·x[q]" in cells(stdout, "chain")
    assert "matrix form: ∂l/∂W = g xᵀ" in cells(stdout, "chain")
    # w = M v: ∂w/∂v = M, entries in base 1
    assert "[M[1, 1], M[1, 2]; M[2, 1], M[2, 2]]" in cells(stdout, "small")
    assert "Because ∂L/∂x = Wᵀ δ and σ′ ≤ 1/4." in cells(stdout, "words")


def test_long_answer_is_cut_with_a_pointer_to_the_sheet(solved):
    shown = cells(solved[0], "long")
    assert f"… (see out/{NAME}.tex)".replace(" ", "") in shown.replace(" ", "")     # folded at the column
    assert "dimension: (n, n)" in shown          # the next result of the answer is still shown


def test_summary_line_per_problem(solved):
    stdout = " ".join(solved[0].splitlines())
    assert f"{NAME}.yaml: 5 questions: 4 derived, 1 authored text (" in stdout
    assert stdout.splitlines()[0].startswith("Terminal check: σ layers → readable answers")


def test_progress_bar_while_several_questions_are_solved(tmp_path):
    problem = load_problem(write(tmp_path, "p.yaml", PROBLEM))
    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    from symderive.parallel import solve_each
    with progress(terminal, 2) as done:
        answers = next(solve_each([problem], ids={"lin", "small"}, jobs=1, done=done))
    shown = terminal.file.getvalue()
    assert len(answers) == 2 and "solving" in shown and "2/2" in shown
    with progress(terminal, 2) as bar:      # what is printed meanwhile starts on a cleared line
        bar()
        with bar.paused():
            Console(file=terminal.file, width=80).print("TABLE")
    before = terminal.file.getvalue().split("TABLE")[0]
    assert before.endswith("\x1b[2K") and "solving" in before.rsplit("\x1b[2K", 2)[0]
    piped = Console(file=io.StringIO(), force_terminal=False, width=80)
    with progress(piped, 2) as done:
        done()
    assert piped.file.getvalue() == ""            # no bar in a pipe or a log file


def run_main(args, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)
    status = cli.main(args)
    out, err = capsys.readouterr()
    return status, out, err


def test_only_with_unknown_ids_names_them_all(tmp_path, monkeypatch, capsys):
    write(tmp_path, "p.yaml", PROBLEM)
    status, out, err = run_main(["solve", "p.yaml", "--only", "lin", "--only", "nope", "--only", "nada",
                                 "--no-pdf"], tmp_path, monkeypatch, capsys)
    assert status == 2
    assert "error: --only nope, nada: no such question (questions: chain, lin, long, small, words)" in err
    assert not (tmp_path / "output").exists()


def test_says_when_pdfs_are_skipped_for_want_of_tex(tmp_path, monkeypatch, capsys):
    write(tmp_path, "p.yaml", PROBLEM)
    monkeypatch.setattr(cli, "tex_engine", lambda: None)
    status, out, err = run_main(["solve", "p.yaml", "--only", "lin", "-j", "1"], tmp_path, monkeypatch, capsys)
    assert status == 0, err
    assert "note: PDFs skipped, only .tex sheets written: no TeX engine found" in err
    assert (tmp_path / "output" / "p.tex").exists() and not (tmp_path / "output" / "p.pdf").exists()
