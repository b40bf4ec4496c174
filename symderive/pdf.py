"""Compile a sheet to PDF with latexmk or pdflatex, whichever is installed.

With pdflatex, the sheets' class and packages come from a precompiled format (``sheet_format``): most of
pdflatex's time on a sheet was loading its compressed base format and the preamble's packages, not
typesetting. The PDF is byte-identical either way (tested); any trouble with the format falls back to the
plain compile.
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
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

#: Set to 1 to compile every sheet from pdflatex's own format (for comparisons; the PDFs are the same).
NO_FORMAT_VARIABLE = "SYMDERIVE_NO_TEX_FORMAT"
#: Formats kept at most (one per TeX installation and preamble, about 18 MB each); older ones are removed.
MAX_FORMATS = 4
#: Changes to how the format is made (the TeX code below) change every key.
FORMAT_RECIPE = "1"
#: Loaded after the preamble's packages, before ``\dump``: the sheet's own ``\documentclass`` line is read
#: again on every compile and must then do nothing (its ``\usepackage`` lines are no-ops by LaTeX's rules,
#: a package already loaded with the same options is skipped; the rest of the preamble runs as written).
FORMAT_TAIL = "\\makeatletter\\renewcommand\\documentclass[2][]{}\\makeatother\n\\dump\n"
_HEADER_LINE = re.compile(r"\\(documentclass|usepackage)(\[[^\]\n]*\])?\{[^}\n]*\}\n")
_FORMATS = {}                 # header digest -> key folder, or None after a failure (in this process)
_FORMATS_LOCK = threading.RLock()      # held while building; _discard takes it too


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
    fmt = sheet_format(tex_path, timeout) if engine == "pdflatex" else None
    used = _identity(fmt) if fmt is not None else None
    if fmt is not None:
        # only our folder is searched for formats, and a missing one is not made by mktexfmt
        done = _run(cmd[:1] + ["-fmt=sheet"] + cmd[1:], tex_path, timeout, engine,
                    {"TEXFORMATS": str(fmt), "MKTEXFMT": "0"})
        if done.returncode == 0 and tex_path.with_suffix(".pdf").exists():
            return _tidy(tex_path)
    done = _run(cmd, tex_path, timeout, engine)   # the plain compile says what is wrong with the sheet
    pdf = tex_path.with_suffix(".pdf")
    if done.returncode != 0 or not pdf.exists():
        log = tex_path.with_suffix(".log")
        text = log.read_text(errors="replace") if log.exists() else done.stdout
        first = next((line for line in text.splitlines() if line.startswith("!")), "see the log")
        raise PdfError(f"{engine} failed on {tex_path}: {first}")
    if fmt is not None and _identity(fmt) == used:    # the sheet is fine, so the format is not: made again
        _discard(fmt)                                  # by the next run (unless another run replaced it)
    return _tidy(tex_path)


def _identity(place):
    """Which build of the format at ``place`` this is (its file's inode and time), None when there is none."""
    try:
        info = (Path(place) / "sheet.fmt").stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _run(cmd, tex_path, timeout, engine, extra_env=None):
    try:
        return subprocess.run(cmd, cwd=tex_path.parent, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **FIXED_DATE, **PARANOID, **(extra_env or {})})
    except subprocess.TimeoutExpired:
        raise PdfError(f"{engine} took longer than {timeout} s on {tex_path}") from None


def _tidy(tex_path):
    for suffix in AUXILIARY:
        tex_path.with_suffix(suffix).unlink(missing_ok=True)
    return tex_path.with_suffix(".pdf")


def format_header(text):
    r"""The leading ``\documentclass`` and ``\usepackage`` lines of a LaTeX text: what the format preloads.

    >>> format_header("\\documentclass[11pt]{article}\n\\usepackage{amsmath}\n\\title{x}\n")
    '\\documentclass[11pt]{article}\n\\usepackage{amsmath}\n'
    >>> format_header("\\title{x}\n")
    ''
    """
    end = 0
    while (m := _HEADER_LINE.match(text, end)):
        end = m.end()
    return text[:end] if text.startswith("\\documentclass") else ""


def format_folder():
    """``$SYMDERIVE_CACHE_DIR/tex-formats``, else ``$XDG_CACHE_HOME/symderive/tex-formats`` (~/.cache/...)."""
    if os.environ.get("SYMDERIVE_CACHE_DIR"):
        return Path(os.environ["SYMDERIVE_CACHE_DIR"]) / "tex-formats"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "symderive" / "tex-formats"


def sheet_format(tex_path, timeout=120):
    """The folder holding ``sheet.fmt`` for this sheet's header, built on first use; None to compile plainly.

    The format is pdflatex's own with the header's class and packages loaded, stored uncompressed (pdfTeX
    writes formats gzip-compressed, and inflating its 18 MB took about a third of a sheet's time; zlib
    reads an uncompressed file as it is). It is kept in a private cache folder under a key made of the
    header, the pdflatex version and binary, and ``FORMAT_RECIPE``; it is used only while every file the
    build read (TeX's configuration, pdflatex's format, the class and packages, from the build's
    ``-recorder`` list) has the size and time it had then, so a TeX update makes it again. Built in a
    temporary folder renamed into place, so concurrent runs never see half a format; threads of one run
    wait for the one build. Any failure gives None (the plain compile): it never changes what is written.
    """
    if os.environ.get(NO_FORMAT_VARIABLE):
        return None
    try:
        with open(tex_path, encoding="utf-8", errors="replace") as f:
            header = format_header(f.read(4096))
    except OSError:
        return None
    if not header:
        return None
    digest = hashlib.sha256(header.encode()).hexdigest()
    with _FORMATS_LOCK:
        if digest not in _FORMATS:
            try:
                _FORMATS[digest] = _find_or_build(header, timeout)
            except Exception:     # noqa: BLE001 - whatever went wrong, the plain compile gives the same PDF
                _FORMATS[digest] = None
        return _FORMATS[digest]


def _find_or_build(header, timeout):
    folder = format_folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None                     # TeX would load code others can write
    binary, version = _tex_identity(timeout)
    key = hashlib.sha256("\0".join([FORMAT_RECIPE, header, version, binary]).encode()).hexdigest()[:32]
    place = folder / key
    if _still_valid(place):
        return place
    return _build(folder, place, header, binary, timeout)


def _tex_identity(timeout):
    """(pdflatex's real path, its ``--version`` text): part of the format's key."""
    version = subprocess.run(["pdflatex", "--version"], capture_output=True, text=True, timeout=timeout).stdout
    return os.path.realpath(shutil.which("pdflatex")), version


def _still_valid(place):
    """The format at ``place`` exists and every file its build read is unchanged."""
    try:
        inputs = json.loads((place / "inputs.json").read_text())
        return (place / "sheet.fmt").is_file() and all(
            [(s := os.stat(p)).st_size, s.st_mtime_ns] == mark for p, mark in inputs.items())
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def _build(folder, place, header, binary, timeout):
    for old in folder.glob(".build-*"):     # left by a run that was killed while building
        try:
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass                        # another run removed it first
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
    try:
        (work / "preamble.tex").write_text(header + FORMAT_TAIL, encoding="utf-8")
        done = subprocess.run(["pdflatex", "-ini", "-recorder", "-jobname=sheet", "-interaction=nonstopmode",
                               "-halt-on-error", "&pdflatex", "preamble.tex"], cwd=work, capture_output=True,
                              timeout=timeout, env={**os.environ, **FIXED_DATE, **PARANOID})
        if done.returncode != 0:
            return None
        packed = (work / "sheet.fmt").read_bytes()
        (work / "sheet.fmt").write_bytes(gzip.decompress(packed) if packed[:2] == b"\x1f\x8b" else packed)
        read = [line[6:] for line in (work / "sheet.fls").read_text().splitlines() if line.startswith("INPUT /")]
        inputs = {p: [(s := os.stat(p)).st_size, s.st_mtime_ns] for p in sorted({binary, *read})}
        (work / "inputs.json").write_text(json.dumps(inputs, indent=0))
        for name in ("preamble.tex", "sheet.log", "sheet.fls"):
            (work / name).unlink()
        if place.exists() and not _still_valid(place):    # stale: TeX or the packages changed since
            _discard(place)
        # (a valid one there was just put by another run building at once: it is kept, and this one dropped;
        # discarding it would pull the format from under that run's pdflatex)
        try:
            work.rename(place)
        except OSError:                 # another run put its (equal) format there first
            pass
        _keep_newest(folder)
        return place if _still_valid(place) else None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _discard(place):
    """Remove a format folder: renamed aside first, so that no run sees it half deleted."""
    with _FORMATS_LOCK:           # this run compiles plainly from now on
        for digest, known in list(_FORMATS.items()):
            if known == place:
                _FORMATS[digest] = None
    aside = place.with_name(f".build-discard-{os.getpid()}-{threading.get_ident()}")
    try:
        place.rename(aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _keep_newest(folder):
    """At most MAX_FORMATS formats, the newest built (older TeX installations' ones go)."""
    try:
        formats = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime)
    except OSError:
        return
    for old in formats[:-MAX_FORMATS]:
        _discard(old)
