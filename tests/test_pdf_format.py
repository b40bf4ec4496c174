"""The precompiled sheet format (symderive/pdf.py): the PDFs are the bytes the plain compile gives, the
format is made again when what it was made from changes, and any trouble with it falls back to the plain
compile, which still names a broken sheet's first error.

Each test has its own cache folder (SYMDERIVE_CACHE_DIR) and forgets the formats this process knew.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from symderive import pdf
from symderive.pdf import PdfError, compile_pdf
from symderive.sheet import PREAMBLE

REPO = Path(__file__).resolve().parents[1]
needs_pdflatex = pytest.mark.skipif(pdf.tex_engine() != "pdflatex", reason="pdflatex is not installed")
pytestmark = needs_pdflatex

BODY = "\\title{T}\n\\date{}\n\\begin{document}\n\\maketitle\nSome text, $\\mathbb{R}^{n}$, \\[ \\sum_i x_i \\]\n"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDERIVE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(pdf.NO_FORMAT_VARIABLE, raising=False)
    pdf._FORMATS.clear()
    yield tmp_path / "cache" / "tex-formats"
    pdf._FORMATS.clear()


@pytest.fixture
def commands(monkeypatch):
    """The pdflatex command lines run, with their return codes."""
    seen, real = [], subprocess.run

    def recording(cmd, *args, **kwargs):
        done = real(cmd, *args, **kwargs)
        seen.append((cmd, done.returncode))
        return done
    monkeypatch.setattr(pdf.subprocess, "run", recording)
    return seen


def sheet(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    tex = folder / "s.tex"
    tex.write_text(text)
    return tex


def plain_pdf(tmp_path, text, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv(pdf.NO_FORMAT_VARIABLE, "1")
        return compile_pdf(sheet(tmp_path / "plain", text)).read_bytes()


def formats(folder):
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def test_shipped_sheets_give_the_same_pdf_bytes_from_the_format(tmp_path, own_cache, commands, monkeypatch):
    """All shipped sheets (output/, as the engine wrote them): compiled from the format, byte for byte the
    plain compile's PDF."""
    texts = sorted((REPO / "output").glob("*.tex"))
    assert len(texts) == len(list((REPO / "problems").glob("*.yaml"))) >= 15
    for tex in texts:
        text = tex.read_text()
        assert text.startswith(PREAMBLE)
        expected = plain_pdf(tmp_path, text, monkeypatch)
        assert compile_pdf(sheet(tmp_path / "fmt", text)).read_bytes() == expected, tex.name
    used = [cmd for cmd, code in commands if "-fmt=sheet" in cmd and code == 0]
    assert len(used) == len(texts), "every sheet was compiled from the format"
    assert len(formats(own_cache)) == 1


def test_the_format_holds_the_sheet_preamble_up_to_its_packages():
    header = pdf.format_header(PREAMBLE + BODY)
    assert header.startswith("\\documentclass[11pt]{article}\n") and "\\usepackage{amsmath,amssymb}\n" in header
    assert PREAMBLE.startswith(header) and "\\setlength" not in header   # the lengths still run from the sheet


def test_built_once_then_found_by_later_runs(tmp_path, own_cache, commands):
    compile_pdf(sheet(tmp_path / "a", PREAMBLE + BODY + "\\end{document}\n"))
    builds = [cmd for cmd, _ in commands if "-ini" in cmd]
    assert len(builds) == 1
    pdf._FORMATS.clear()                                   # a later run
    compile_pdf(sheet(tmp_path / "b", PREAMBLE + BODY + "\\end{document}\n"))
    assert len([cmd for cmd, _ in commands if "-ini" in cmd]) == 1
    (place,) = formats(own_cache)
    assert (place / "sheet.fmt").read_bytes()[:2] != b"\x1f\x8b", "stored uncompressed"
    assert own_cache.stat().st_mode & 0o077 == 0


def test_made_again_when_the_preamble_changes(tmp_path, own_cache, monkeypatch):
    text = PREAMBLE + BODY + "\\end{document}\n"
    compile_pdf(sheet(tmp_path / "a", text))
    other = text.replace("\\usepackage{amsmath,amssymb}\n", "\\usepackage{amsmath,amssymb}\n\\usepackage{bm}\n")
    expected = plain_pdf(tmp_path, other, monkeypatch)
    assert compile_pdf(sheet(tmp_path / "b", other)).read_bytes() == expected
    assert len(formats(own_cache)) == 2


def test_made_again_when_the_tex_version_changes(tmp_path, own_cache, monkeypatch):
    text = PREAMBLE + BODY + "\\end{document}\n"
    compile_pdf(sheet(tmp_path / "a", text))
    binary, version = pdf._tex_identity(10)
    pdf._FORMATS.clear()
    monkeypatch.setattr(pdf, "_tex_identity", lambda timeout: (binary, version.replace("pdfTeX", "pdfTeX 9")))
    compile_pdf(sheet(tmp_path / "b", text))
    assert len(formats(own_cache)) == 2


def test_made_again_when_a_file_it_was_made_from_changes(tmp_path, own_cache, commands):
    """As after a TeX Live update: one input (here the base format's entry) no longer matches."""
    text = PREAMBLE + BODY + "\\end{document}\n"
    compile_pdf(sheet(tmp_path / "a", text))
    (place,) = formats(own_cache)
    inputs = json.loads((place / "inputs.json").read_text())
    base = next(p for p in inputs if p.endswith("pdflatex.fmt"))
    assert any(p.endswith("amsmath.sty") for p in inputs) and any(p.endswith("article.cls") for p in inputs)
    inputs[base][1] -= 1
    (place / "inputs.json").write_text(json.dumps(inputs))
    pdf._FORMATS.clear()
    compile_pdf(sheet(tmp_path / "b", text))
    assert len([cmd for cmd, _ in commands if "-ini" in cmd]) == 2
    assert formats(own_cache) == [place] and pdf._still_valid(place)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing folder"])
def test_a_damaged_format_falls_back_to_the_plain_compile(tmp_path, own_cache, monkeypatch, damage):
    text = PREAMBLE + BODY + "\\end{document}\n"
    expected = plain_pdf(tmp_path, text, monkeypatch)
    compile_pdf(sheet(tmp_path / "a", text))               # builds it; this process now uses it
    (place,) = formats(own_cache)
    fmt = place / "sheet.fmt"
    if damage == "truncated":
        fmt.write_bytes(fmt.read_bytes()[:100000])
    elif damage == "garbage":
        fmt.write_bytes(b"not a format" * 1000)
    else:
        for f in place.iterdir():
            f.unlink()
        place.rmdir()
    assert compile_pdf(sheet(tmp_path / "b", text)).read_bytes() == expected
    assert formats(own_cache) == [], "the bad format is removed"
    assert list(pdf._FORMATS.values()) == [None], "and not tried again in this run"
    pdf._FORMATS.clear()                                   # the next run makes it again
    assert compile_pdf(sheet(tmp_path / "c", text)).read_bytes() == expected
    assert len(formats(own_cache)) == 1


def test_a_broken_sheet_still_reports_its_first_error(tmp_path, own_cache, commands):
    compile_pdf(sheet(tmp_path / "ok", PREAMBLE + BODY + "\\end{document}\n"))
    tex = sheet(tmp_path / "bad", PREAMBLE + BODY + "\\notacommand\n\\end{document}\n")
    with pytest.raises(PdfError, match=r"pdflatex failed on .*s\.tex: ! Undefined control sequence"):
        compile_pdf(tex)
    assert (tex.with_suffix(".log")).exists(), "the log is kept on failure"
    assert len(formats(own_cache)) == 1, "the sheet is wrong, not the format: it is kept"
    assert [code for cmd, code in commands if "-fmt=sheet" in cmd] == [0, 1]


def test_a_format_that_cannot_be_built_means_the_plain_compile(tmp_path, own_cache, monkeypatch, commands):
    monkeypatch.setattr(pdf, "FORMAT_TAIL", "\\notacommand\\dump\n")
    text = PREAMBLE + BODY + "\\end{document}\n"
    expected = plain_pdf(tmp_path, text, monkeypatch)
    assert compile_pdf(sheet(tmp_path / "a", text)).read_bytes() == expected
    assert formats(own_cache) == [] and not any(own_cache.iterdir())      # no half-built folder left
    assert not any("-fmt=sheet" in cmd for cmd, _ in commands)


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, own_cache, commands):
    own_cache.mkdir(parents=True)
    own_cache.chmod(0o777)
    compile_pdf(sheet(tmp_path / "a", PREAMBLE + BODY + "\\end{document}\n"))
    assert not any("-ini" in cmd or "-fmt=sheet" in cmd for cmd, _ in commands)


def test_turned_off_by_its_variable(tmp_path, own_cache, monkeypatch, commands):
    monkeypatch.setenv(pdf.NO_FORMAT_VARIABLE, "1")
    compile_pdf(sheet(tmp_path / "a", PREAMBLE + BODY + "\\end{document}\n"))
    assert not own_cache.exists() and not any("-fmt=sheet" in cmd for cmd, _ in commands)


def test_still_hardened_with_the_format(tmp_path, own_cache, commands):
    """No shell escape and no writing outside the sheet's folder, as in the plain compile."""
    out = tmp_path / "output"
    tex = sheet(out, PREAMBLE + BODY + f"\\immediate\\write18{{touch {tmp_path / 'pwned'}}}\n"
                "\\immediate\\openout5=../escaped.txt \\immediate\\write5{x}\\immediate\\closeout5\n"
                "\\end{document}\n")
    with pytest.raises(PdfError, match="can't write on file"):
        compile_pdf(tex)
    assert any("-fmt=sheet" in cmd for cmd, _ in commands), "the format was tried"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "escaped.txt").exists()


def test_at_most_max_formats_are_kept(tmp_path, own_cache):
    """Formats of older TeX installations go, oldest first, when a new one is built."""
    own_cache.mkdir(parents=True, mode=0o700)
    for n in range(pdf.MAX_FORMATS):
        old = own_cache / f"old{n}"
        old.mkdir()
        (old / "sheet.fmt").write_bytes(b"x")
        os.utime(old, (1000 + n, 1000 + n))
    compile_pdf(sheet(tmp_path / "a", PREAMBLE + BODY + "\\end{document}\n"))
    kept = formats(own_cache)
    assert len(kept) == pdf.MAX_FORMATS and own_cache / "old0" not in kept
    assert any(pdf._still_valid(p) for p in kept)


def test_threads_of_one_run_share_one_build(tmp_path, own_cache, commands, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor
    text = PREAMBLE + BODY + "\\end{document}\n"
    expected = plain_pdf(tmp_path, text, monkeypatch)
    with ThreadPoolExecutor(4) as pool:
        pdfs = list(pool.map(lambda n: compile_pdf(sheet(tmp_path / f"t{n}", text)).read_bytes(), range(4)))
    assert pdfs == [expected] * 4
    assert len([cmd for cmd, _ in commands if "-ini" in cmd]) == 1
    assert len([cmd for cmd, code in commands if "-fmt=sheet" in cmd and code == 0]) == 4


def test_runs_building_at_once_do_not_clash(tmp_path, own_cache):
    """Three processes with an empty cache folder: each writes its PDF, and one whole format is left."""
    text = PREAMBLE + BODY + "\\end{document}\n"
    code = ("import sys; from symderive.pdf import compile_pdf, sheet_format; "
            "assert sheet_format(sys.argv[1]) is not None; compile_pdf(sys.argv[1])")
    texts = [sheet(tmp_path / f"p{n}", text) for n in range(3)]
    runs = [subprocess.Popen([sys.executable, "-c", code, str(t)], cwd=REPO) for t in texts]
    assert [r.wait(timeout=300) for r in runs] == [0, 0, 0]
    assert len({t.with_suffix(".pdf").read_bytes() for t in texts}) == 1
    (place,) = formats(own_cache)
    assert pdf._still_valid(place)
    assert not [p for p in own_cache.iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_a_valid_format_another_run_put_there_is_kept(tmp_path, own_cache):
    """Two runs building at once: the one finishing second keeps the first one's (equal) format instead of
    discarding it as stale, which pulled it from under the first run's pdflatex (a CI run was left with none)."""
    text = PREAMBLE + BODY + "\\end{document}\n"
    tex = sheet(tmp_path / "a", text)
    compile_pdf(tex)
    (place,) = formats(own_cache)
    before = pdf._identity(place)
    header = pdf.format_header(tex.read_text())
    binary, _ = pdf._tex_identity(60)
    assert pdf._build(own_cache, place, header, binary, 60) == place
    assert pdf._identity(place) == before, "the format already there is the one kept"
    assert formats(own_cache) == [place] and not [p for p in own_cache.iterdir() if p.name.startswith(".")]


def test_a_format_replaced_meanwhile_is_not_discarded(tmp_path, own_cache, monkeypatch):
    """When the compile with the format fails because another run replaced the format meanwhile, the plain
    compile gives the PDF and the new format stays: only the build this run used is discarded."""
    text = PREAMBLE + BODY + "\\end{document}\n"
    expected = plain_pdf(tmp_path, text, monkeypatch)
    compile_pdf(sheet(tmp_path / "a", text))
    (place,) = formats(own_cache)
    real = pdf._run

    def replaced_meanwhile(cmd, *args, **kwargs):
        if "-fmt=sheet" in cmd:                   # another run swaps in its own build, then this one fails
            fresh = place / "sheet.fmt.new"
            shutil.copyfile(place / "sheet.fmt", fresh)
            fresh.replace(place / "sheet.fmt")
            return subprocess.CompletedProcess(cmd, 1, "", "")
        return real(cmd, *args, **kwargs)
    monkeypatch.setattr(pdf, "_run", replaced_meanwhile)
    assert compile_pdf(sheet(tmp_path / "b", text)).read_bytes() == expected
    assert formats(own_cache) == [place] and pdf._still_valid(place)
