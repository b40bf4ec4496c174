"""Authored text is untrusted (issue 13): titles, sources, notes, statements, remarks and text
answers go through one sanitizer (symderive/authored_text.py) into the LaTeX sheet and the HTML
page, and pdflatex runs hardened. Hostile payloads are refused with their file position (worked
out here from the text written), never copied into the .tex; TeX reads and writes nothing outside
the output folder even when handed a raw command."""
import re
from pathlib import Path

import pytest

from symderive.answer import Answer, Result, Status
from symderive.authored_text import AuthoredTextError, checked, segments, to_latex, to_plain
from symderive.errors import ProblemFileError
from symderive.html_sheet import render_html, text_html
from symderive.pdf import PdfError, compile_pdf, tex_engine
from symderive.problem import Problem, load_problem
from symderive.sheet import PREAMBLE, render_sheet
from helpers import NO_PDF, run_cli  # noqa: E402
from test_bad_input import position, write  # noqa: E402

#: Commands that read or write files, run programs or redefine TeX. None may reach the .tex.
DANGEROUS = re.compile(r"\\(input|include|openout|openin|write|immediate|def|edef|gdef|catcode|csname|"
                       r"endcsname|read|special|directlua|let|newcommand|renewcommand|usepackage)"
                       r"(?![A-Za-z])|\^\^")

#: (payload, the text at which the refusal must point)
PAYLOADS = [
    (r"$\input{/etc/passwd}$", r"\input"),
    (r"see $x + \include{secret}$", r"\include"),
    (r"$\immediate\write18{touch pwned}$", r"\immediate"),
    (r"$\openout1=../escaped.tex$", r"\openout"),
    (r"$\def\x{1}$", r"\def"),
    (r"$\catcode`\A=0$", r"\catcode"),
    (r"$\csname input\endcsname{/etc/passwd}$", r"\csname"),
    (r"$^^5cinput{/etc/passwd}$", "^^"),
    (r"$\unknowncommand$", r"\unknowncommand"),
    (r"$x % comment$", "%"),
    (r"$}\input{/etc/passwd}{$", "}"),
    (r"$\begin{document}$", "{document}"),
    (r"$\end{itemize}$", "{itemize}"),
]

def body(tex):
    """The sheet after its fixed preamble (which loads packages): where authored text goes, title included."""
    assert tex.startswith(PREAMBLE)
    return tex[len(PREAMBLE):]


TEXT_FIELDS = ["title", "source", "notes", "statement", "note"]


def problem_text(field, payload):
    """A problem file with ``payload`` (a YAML single-quoted scalar) under ``field``."""
    quoted = "'" + payload.replace("'", "''") + "'"
    top = f"title: {quoted}\n" if field == "title" else "title: T\n"
    if field in ("source", "notes"):
        top += f"{field}: {quoted}\n"
    question = "  - id: q\n    ask: text\n    answer: hi\n"
    if field in ("statement", "note"):
        question += f"    {field}: {quoted}\n"
    return top + "questions:\n" + question


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("payload, culprit", PAYLOADS)
def test_hostile_text_field_is_refused_at_its_position(tmp_path, field, payload, culprit):
    text = problem_text(field, payload)
    with pytest.raises(ProblemFileError) as info:
        load_problem(write(tmp_path, "p.yaml", text))
    exc = info.value
    assert isinstance(exc, AuthoredTextError) and f"'{field}'" in str(exc), str(exc)
    assert (exc.line, exc.column) == position(text, culprit)
    assert str(exc).startswith(f"{tmp_path / 'p.yaml'}:{exc.line}:{exc.column}: ")


@pytest.mark.parametrize("payload, culprit", PAYLOADS)
def test_hostile_text_answer_fails_its_question_only(tmp_path, payload, culprit):
    quoted = "'" + payload.replace("'", "''") + "'"
    text = f"title: T\nquestions:\n  - id: bad\n    ask: text\n    answer: {quoted}\n" \
           "  - id: good\n    ask: value\n    expr: 1 + 1\n"
    path = write(tmp_path, "p.yaml", text)
    run = run_cli(["solve", path, "-o", "out", *NO_PDF], tmp_path)
    assert run.returncode == 1, run.stderr
    line, column = position(text, culprit)
    assert f"p.yaml:{line}:{column}: question bad: 'answer': " in run.stderr, run.stderr
    tex = (tmp_path / "out" / "p.tex").read_text()
    assert not DANGEROUS.search(body(tex)), DANGEROUS.search(body(tex))
    assert r"\boxed{2}" in tex                    # the other question is still answered


def test_position_in_a_folded_block_scalar(tmp_path):
    text = "title: T\nquestions:\n  - id: q\n    ask: text\n    answer: hi\n    note: >-\n" \
           "      first line,\n      then $x \\write18{ls}$ here\n"
    with pytest.raises(AuthoredTextError) as info:
        load_problem(write(tmp_path, "p.yaml", text))
    assert (info.value.line, info.value.column) == position(text, r"\write")


def hostile_problem(tmp_path, payload):
    """A Problem built in Python (the API, not a file), so nothing checked it on loading."""
    return Problem(tmp_path / "p.yaml", f"Title {payload}", payload, 0, [], notes=payload)


def hostile_answers(payload):
    return [Answer(payload, payload, Status.AUTHORED, results=[Result("", payload, payload, "text")],
                   notes=[payload]),
            Answer("f", payload, Status.FAILED, error=f"p.yaml:1:1: {payload}")]


@pytest.mark.parametrize("payload", [p for p, _ in PAYLOADS] + [r"\input{/etc/passwd}", "a$b$c$\\input x"])
def test_sheet_never_copies_a_hostile_command(tmp_path, payload):
    """Text that bypassed the loader (the library API) is shown as escaped text on the sheet."""
    tex = render_sheet(hostile_problem(tmp_path, payload), hostile_answers(payload))
    assert not DANGEROUS.search(body(tex)), DANGEROUS.search(body(tex))
    assert tex.count(r"\end{document}") == 1 and tex.count(r"\begin{document}") == 1


@pytest.mark.parametrize("payload", [p for p, _ in PAYLOADS] + ["<script>alert(1)</script> $x<y$"])
def test_html_page_uses_the_same_sanitizer(tmp_path, payload):
    page = render_html(hostile_problem(tmp_path, payload), hostile_answers(payload))
    assert "<script>" not in page
    # refused maths is shown as text, never handed to the MathML converter as LaTeX
    assert text_html(payload).count("<math") == sum(kind == "math" for kind, _ in segments(payload))


def test_allowed_maths_is_kept():
    text = (r"Show $\frac{\partial L}{\partial W} = \delta\, x^\top$ and "
            r"$A = \begin{bmatrix} 1 & 0 \\ 0 & 1 \end{bmatrix}$, $\|w\|_2 \le \sqrt{2}$, $\sigma(z) \odot h$.")
    assert checked(text) == text
    assert to_latex(text) == text
    assert [kind for kind, _ in segments(text)].count("math") == 4


def test_unicode_is_typeset_not_replaced_by_a_question_mark():
    assert to_latex("h⟨t−1⟩ → σ(z) ⊙ g, ≠ 0") == r"h$\langle$t-1$\rangle$ $\to$ $\sigma$(z) $\odot$ g, $\neq$ 0"
    assert to_latex("$a → b$") == r"$a \to  b$"
    assert to_latex("café") == "café"
    with pytest.raises(AuthoredTextError, match="U\\+1F600") as info:
        checked("ok 😀")
    assert info.value.offset == 3


def test_terminal_form_has_no_latex():
    assert to_plain(r"$\tanh^2(w^\top x_n) \to 0$ and $\frac{1}{4}$") == "tanh^2(wᵀ x_n) → 0 and 1/4"


def test_shipped_problems_typeset_their_remarks():
    """The shipped remarks and statements write their maths between dollars: no ASCII maths
    (tanh^2, W_x, h[t-1], <=, ->) is left in their text, where it would print as ``\\textasciicircum{}``."""
    root = Path(__file__).resolve().parent.parent / "problems"
    ascii_maths = re.compile(r"\^|_|\[t-1\]|<=|->|!=")
    for path in sorted(root.glob("*.yaml")):
        for question in load_problem(path).questions:
            note = question.spec.get("note") or ""
            for kind, part in segments(note):
                assert kind == "math" or not ascii_maths.search(part), (path.name, question.id, part)


# TeX itself, hardened ----------------------------------------------------------------------

needs_tex = pytest.mark.skipif(tex_engine() is None, reason="no TeX engine installed")


@needs_tex
def test_pdflatex_reads_nothing_outside_the_output_folder(tmp_path):
    """Even a raw \\input of an absolute path (which the sheet never writes) is refused by TeX."""
    secret = tmp_path / "secret.tex"
    secret.write_text("SECRETMARKER\n")
    out = tmp_path / "output"
    out.mkdir()
    tex = out / "raw.tex"
    tex.write_text(rf"\documentclass{{article}}\begin{{document}}\input{{{secret}}}\end{{document}}" "\n")
    with pytest.raises(PdfError, match="LaTeX Error: File"):
        compile_pdf(tex)
    assert "SECRETMARKER" not in (out / "raw.log").read_text(errors="replace")
    assert not (out / "raw.pdf").exists()


@needs_tex
def test_pdflatex_writes_nothing_outside_the_output_folder_and_runs_no_shell(tmp_path):
    out = tmp_path / "output"
    out.mkdir()
    tex = out / "raw.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\n"
                   f"\\immediate\\write18{{touch {tmp_path / 'pwned'}}}\n"
                   "\\immediate\\openout5=../escaped.txt \\immediate\\write5{x}\\immediate\\closeout5\n"
                   "x\\end{document}\n")
    with pytest.raises(PdfError, match="can't write on file"):
        compile_pdf(tex)
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "escaped.txt").exists()


@needs_tex
def test_hostile_looking_but_allowed_text_compiles_and_stays_in_output(tmp_path):
    """A whole run with backslashes, specials and maths in every text field: the PDF is built and
    every file the run wrote is inside output/."""
    text = ("title: 'Backslash \\input{/etc/passwd} & 100% #1 ~ ^ _ {x}'\n"
            "source: 'From $\\frac{1}{2}$ of a course → café'\n"
            "notes: 'Escaped \\write18{ls}; maths $\\sigma(z) \\odot h_{t-1}$.'\n"
            "questions:\n  - id: q\n    ask: text\n    statement: 'Why $x^\\top y$?'\n"
            "    answer: 'Because $\\|x\\|_2 \\le 1$ \\def\\x.'\n")
    write(tmp_path, "p.yaml", text)
    before = set(tmp_path.rglob("*"))
    run = run_cli(["solve", "p.yaml", "-o", "output", "--pdf"], tmp_path)
    assert run.returncode == 0, run.stderr
    written = set(tmp_path.rglob("*")) - before
    assert written and all(p.is_relative_to(tmp_path / "output") for p in written), written
    tex = (tmp_path / "output" / "p.tex").read_text()
    assert not DANGEROUS.search(body(tex))
    assert (tmp_path / "output" / "p.pdf").exists()
    assert r"\textbackslash{}input\{/etc/passwd\}" in body(tex)      # shown, not executed


@pytest.mark.parametrize("maths, culprit", [("a & b", "&"), (r"a \\ b", "\\\\"), (r"\frac{a}{b", None),
                                            (r"\begin{bmatrix} 1 \end{cases}", r"{cases}")])
def test_maths_that_would_not_compile_is_refused(maths, culprit):
    """Not a security hole, but a sheet that no longer compiles: refused where it is written."""
    with pytest.raises(AuthoredTextError) as info:
        checked(f"see ${maths}$")
    expected = len("see $") + (maths.index(culprit) if culprit else len(maths))
    assert info.value.offset == expected
