"""Answers files: a YAML mapping (question id: LaTeX) or a .tex file with \\answer{ID}{...} or
\\begin{answer}{ID} ... \\end{answer}. Anything else is an ``AnswersFileError`` (exit status 2)."""
import re
from pathlib import Path

import yaml

MAX_FILE_BYTES = 1_000_000
MAX_ANSWERS = 1000
SUFFIXES = (".yaml", ".yml", ".tex")


class AnswersFileError(Exception):
    def __init__(self, message, file=None, line=None):
        self.file, self.line = file, line
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        super().__init__(where + message)


def read_answers_file(path):
    """{question id: LaTeX} from a .yaml/.yml or .tex file."""
    path = Path(path)
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
        # BaseLoader keeps every scalar as written: 1.3860 stays "1.3860" (its precision matters).
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise AnswersFileError(f"YAML syntax error: {getattr(exc, 'problem', None) or exc}", path,
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
ANSWER_ENV = re.compile(r"\\begin\s*\{answer\}\s*\{([^{}]*)\}(.*?)\\end\s*\{answer\}", re.S)


def parse_tex_answers(text, path=None):
    out, lines = {}, {}

    def add(qid, body, offset):
        qid = qid.strip()
        line = text.count("\n", 0, offset) + 1
        if not qid:
            raise AnswersFileError("an answer without a question id", path, line)
        if qid in out:
            raise AnswersFileError(f"a second answer to {qid} (the first is on line {lines[qid]})", path, line)
        if len(out) >= MAX_ANSWERS:
            raise AnswersFileError(f"more than {MAX_ANSWERS} answers", path, line)
        out[qid], lines[qid] = body.strip(), line

    stripped = _strip_comments(text)
    for m in ANSWER_ENV.finditer(stripped):
        add(m.group(1), m.group(2), m.start())
    for m in ANSWER_COMMAND.finditer(stripped):
        qid, end = _braced(stripped, m.end() - 1, path)
        k = end
        while k < len(stripped) and stripped[k] in " \t\n":
            k += 1
        if k >= len(stripped) or stripped[k] != "{":
            raise AnswersFileError(f"\\answer{{{qid}}} needs the answer in braces after it", path,
                                   stripped.count("\n", 0, m.start()) + 1)
        body, _ = _braced(stripped, k, path)
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
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix in SUFFIXES)
