"""Compile a sheet to PDF with latexmk or pdflatex, whichever is installed."""
import os
import shutil
import subprocess
from pathlib import Path

INSTALL_HINT = ("no TeX engine found: install one with "
                "'apt-get install texlive-latex-base texlive-latex-recommended latexmk'")


#: Files LaTeX leaves beside the sheet; removed after a successful build (kept on failure).
AUXILIARY = (".aux", ".log", ".fls", ".fdb_latexmk", ".out")


#: pdfTeX writes this fixed date (and a matching ID) instead of the build time, so that
#: regenerating a sheet gives the same PDF bytes.
FIXED_DATE = {"SOURCE_DATE_EPOCH": "1767225600", "FORCE_SOURCE_DATE": "1"}

#: The sheet's text is sanitised (``authored_text``); TeX is hardened as well, in case anything
#: slipped through: no shell escape, and kpathsea's paranoid mode, which refuses to open for
#: reading or writing any file given by an absolute path, with ``..`` or starting with a dot.
PARANOID = {"openin_any": "p", "openout_any": "p", "shell_escape": "f"}


class PdfError(Exception):
    pass


def tex_engine():
    """'pdflatex' (one pass is enough: sheets have no cross-references) or 'latexmk', else None."""
    for name in ("pdflatex", "latexmk"):
        if shutil.which(name):
            return name
    return None


def compile_pdf(tex_path, timeout=120):
    """Compile ``tex_path`` next to itself; returns the PDF path or raises PdfError with the log's first error."""
    tex_path = Path(tex_path)
    engine = tex_engine()
    if engine is None:
        raise PdfError(INSTALL_HINT)
    if engine == "latexmk":
        cmd = ["latexmk", "-pdf", "-pdflatex=pdflatex -no-shell-escape %O %S", "-interaction=nonstopmode",
               "-halt-on-error", "-quiet", tex_path.name]
    else:
        cmd = ["pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", tex_path.name]
    for suffix in (".pdf",) + AUXILIARY:   # TeX would write through a link planted there
        if tex_path.with_suffix(suffix).is_symlink():
            tex_path.with_suffix(suffix).unlink()
    try:
        done = subprocess.run(cmd, cwd=tex_path.parent, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **FIXED_DATE, **PARANOID})
    except subprocess.TimeoutExpired:
        raise PdfError(f"{engine} took longer than {timeout} s on {tex_path}") from None
    pdf = tex_path.with_suffix(".pdf")
    if done.returncode != 0 or not pdf.exists():
        log = tex_path.with_suffix(".log")
        text = log.read_text(errors="replace") if log.exists() else done.stdout
        first = next((line for line in text.splitlines() if line.startswith("!")), "see the log")
        raise PdfError(f"{engine} failed on {tex_path}: {first}")
    for suffix in AUXILIARY:
        tex_path.with_suffix(suffix).unlink(missing_ok=True)
    return pdf
