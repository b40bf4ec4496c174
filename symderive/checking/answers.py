"""Answers files: a YAML mapping (question id: LaTeX) or a .tex file with \\answer{ID}{...} or
\\begin{answer}{ID} ... \\end{answer}. Anything else is an ``AnswersFileError`` (exit status 2)."""
import bisect
import os
import re
import stat
from pathlib import Path

import yaml

from ..errors import QuestionTimeout
from ..timeouts import time_limit
from ..yaml_positions import BoundedComposer

MAX_FILE_BYTES = 1_000_000


class _Loader(BoundedComposer, yaml.BaseLoader):
    """BaseLoader keeps every scalar as written: 1.3860 stays "1.3860" (its precision matters);
    the bounded composer refuses deep nesting and alias bombs with their position."""
MAX_ANSWERS = 1000
SUFFIXES = (".yaml", ".yml", ".tex")


class AnswersFileError(Exception):
    def __init__(self, message, file=None, line=None):
        self.file, self.line = file, line
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else f"line {line}: " if line else ""
        super().__init__(where + message)


def read_answers_file(path, timeout=None):
    """{question id: LaTeX} from a .yaml/.yml or .tex file, read within ``timeout`` seconds (one
    student's file must not stall the folder: reading is bounded like checking an answer)."""
    path = Path(path)
    _require_regular_file(path)
    try:
        with time_limit(timeout):
            return _read(path)
    except QuestionTimeout:
        raise AnswersFileError(f"not read within the time limit of {timeout:g} s", path) from None


def _require_regular_file(path):
    """Refuse what is not a regular file, saying what it is (a FIFO would block the read forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            what = "a symbolic link loop" if exc.errno == 40 else "a symbolic link to a missing file"
            raise AnswersFileError(f"cannot read: {what}", path) from None
        raise AnswersFileError(f"cannot read: {exc.strerror}", path) from None
    if stat.S_ISDIR(mode):
        raise AnswersFileError("is a folder, not an answers file", path)
    if not stat.S_ISREG(mode):
        raise AnswersFileError("is not a regular file", path)


def _read(path):
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnswersFileError(f"cannot read: {exc.strerror}", path) from None
    if len(raw) > MAX_FILE_BYTES:
        raise AnswersFileError(f"file is larger than {MAX_FILE_BYTES} bytes", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AnswersFileError("file is not UTF-8 text", path) from None
    if path.suffix == ".tex":
        return parse_tex_answers(text, path)
    return parse_yaml_answers(text, path)


def parse_yaml_answers(text, path=None):
    try:
        data = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise AnswersFileError("nested too deeply", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        kind = "" if isinstance(exc, yaml.composer.ComposerError) else "YAML syntax error: "
        raise AnswersFileError(f"{kind}{getattr(exc, 'problem', None) or exc}", path,
                               mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise AnswersFileError("an answers file is a YAML mapping of question ids to LaTeX answers", path)
    if len(data) > MAX_ANSWERS:
        raise AnswersFileError(f"more than {MAX_ANSWERS} answers", path)
    out = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise AnswersFileError(f"question id {key!r} is not text", path)
        if not isinstance(value, str):
            raise AnswersFileError(f"the answer to {key} must be a LaTeX string, not a "
                                   f"{'list' if isinstance(value, list) else 'mapping'}", path)
        out[key.strip()] = value
    return out


ANSWER_COMMAND = re.compile(r"\\answer\s*\{")
ANSWER_ENV_EDGE = re.compile(r"\\begin\s*\{answer\}\s*\{([^{}]*)\}|\\end\s*\{answer\}")


def parse_tex_answers(text, path=None):
    r"""{id: LaTeX} from ``\answer{ID}{...}`` commands and ``answer`` environments, in one pass
    over the text (a regular expression that searched for the end from every opening would take
    time quadratic in the number of openings).

    >>> parse_tex_answers(r"\answer{a}{$x$} \begin{answer}{b} y \end{answer}")
    {'b': 'y', 'a': '$x$'}
    >>> parse_tex_answers("\\begin{answer}{a}\n" * 3)
    Traceback (most recent call last):
    ...
    symderive.checking.answers.AnswersFileError: line 1: \begin{answer}{a} has no \end{answer}
    """
    out, lines = {}, {}
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset):
        return bisect.bisect_right(starts, offset)

    def add(qid, body, offset):
        qid = qid.strip()
        line = line_of(offset)
        if not qid:
            raise AnswersFileError("an answer without a question id", path, line)
        if qid in out:
            raise AnswersFileError(f"a second answer to {qid} (the first is on line {lines[qid]})", path, line)
        if len(out) >= MAX_ANSWERS:
            raise AnswersFileError(f"more than {MAX_ANSWERS} answers", path, line)
        out[qid], lines[qid] = body.strip(), line

    stripped = _strip_comments(text)
    opened = None
    for m in ANSWER_ENV_EDGE.finditer(stripped):
        if m.group(0).startswith("\\begin"):
            if opened is not None:
                break
            opened = m
        elif opened is None:
            raise AnswersFileError("\\end{answer} without a \\begin{answer}{ID} before it", path,
                                   line_of(m.start()))
        else:
            add(opened.group(1), stripped[opened.end():m.start()], opened.start())
            opened = None
    if opened is not None:
        raise AnswersFileError(f"\\begin{{answer}}{{{opened.group(1).strip()}}} has no \\end{{answer}}", path,
                               line_of(opened.start()))
    position = 0
    while (m := ANSWER_COMMAND.search(stripped, position)) is not None:
        qid, end = _braced(stripped, m.end() - 1, path)
        k = end
        while k < len(stripped) and stripped[k] in " \t\n":
            k += 1
        if k >= len(stripped) or stripped[k] != "{":
            raise AnswersFileError(f"\\answer{{{qid}}} needs the answer in braces after it", path,
                                   line_of(m.start()))
        body, position = _braced(stripped, k, path)   # an \answer inside this one is its text
        add(qid, body, m.start())
    if not out:
        raise AnswersFileError("no answers found: write \\answer{ID}{...} or \\begin{answer}{ID} ... "
                               "\\end{answer}", path)
    return out


def _strip_comments(text):
    return re.sub(r"(?<!\\)%[^\n]*", lambda m: " " * len(m.group(0)), text)


def _braced(text, start, path):
    """(content, end) of the group opening at text[start] == '{'."""
    depth, k = 0, start
    while k < len(text):
        ch = text[k]
        if ch == "\\":
            k += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:k], k + 1
        k += 1
    raise AnswersFileError("unbalanced braces in an \\answer", path, text.count("\n", 0, start) + 1)


def submission_files(folder):
    """Every entry of ``folder`` with an answers suffix, files or not: a folder named ``x.yaml``,
    a dangling link or a link loop is a submission that cannot be read, and gets a row saying so."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix in SUFFIXES)
