"""Notebooks (issue 13): docs/notebook.ipynb, executed with nbclient in a fresh kernel. Every
text/latex output must render in MathJax 2 and 3 — checked by reading it through the whitelisted
LaTeX subset of ``authored_text`` (commands both MathJax versions know) — and the answers show as
the sheet does. Expected values are worked out by hand in the comments."""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from symderive.authored_text import AuthoredTextError, math

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"


@pytest.fixture(scope="module")
def outputs():
    """{first line of each code cell: its execute_result's data}, the notebook run from the repository root."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it unexecuted"
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    found = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{cell.source}: {errors[0].ename}: {errors[0].evalue}"
            results = [o for o in cell.outputs if o.output_type == "execute_result"]
            found[cell.source.splitlines()[-1]] = results[0].data if results else {}
    return found


def test_every_latex_output_is_mathjax_safe(outputs):
    latex = [data["text/latex"] for data in outputs.values() if "text/latex" in data]
    assert len(latex) >= 6
    for tex in latex:
        assert tex.startswith("$") and tex.endswith("$") and "$" not in tex[1:-1], tex[:200]
        assert r"\nobreak" not in tex and r"\mathrel" not in tex
        try:
            math(tex[1:-1])
        except AuthoredTextError as exc:
            pytest.fail(f"{exc.message} at {tex[max(0, exc.offset - 40):exc.offset + 40]!r}")


def test_answers_render_as_the_sheet_does(outputs):
    data = outputs["answers"]
    page = data["text/html"]
    assert page.count('<section class="question"') == 3
    # a 10×11 input, 3×3 kernel, stride 2: ⌊(10 − 3)/2⌋ + 1 = 4 rows, ⌊(11 − 3)/2⌋ + 1 = 5 columns
    assert r"\boxed{y \in \mathbb{R}^{4 \times 5}}" in data["text/latex"]
    assert "Output size of a convolution" in page and 'class="boxed"' in page and "<math" in page
    assert page.count("<details><summary><strong>Derivation</strong>") == 3        # folded, open on a click
    assert "Established: Derived symbolically by the engine (exact)." in page


def test_one_answer_and_its_derivation_on_request(outputs):
    answer, steps = outputs["answers[1]"], outputs["answers[1].derivation()"]
    assert "<details>" in answer["text/html"] and "<ol>" in answer["text/html"]
    assert "<details>" not in steps["text/html"] and steps["text/html"].count("<li>") >= 3
    assert re.search(r"\\text\{1\. definition", steps["text/latex"])


def test_authored_answer_and_proof(outputs):
    data = next(d for line, d in outputs.items() if "conceptual-cnn-rnn" in line)
    assert "Answer (authored text, not derived)." in data["text/html"]
    assert "Proved for all sizes." in data["text/html"]
    assert r"\text{Established: Authored text from the problem file" in data["text/latex"]


def test_library_results_without_artefacts(outputs):
    # y[i, j] = Σ_c Σ_k W[i, c, k] x[c, 2j + k], so ∂y[i, j]/∂x[p, q] = W[i, p, q − 2j] for 0 ≤ q − 2j ≤ 2
    shown = outputs["d"]["text/latex"]
    assert r"{W}_{i,p,- 2 j + q} & \text{if } 0 \leq q - 2 j \leq 2" in shown
    value = outputs["d.value"]["text/latex"]
    assert "{W}_{i,p,- 2 j + q}" in value and r"\nobreak" not in value
