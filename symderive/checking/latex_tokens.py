"""The tokenizer of students' LaTeX: spacing, ``\\left``/``\\right``, font commands and Unicode
symbols normalised away; the input bounded in length and token count (see ``reader``)."""
import re
from dataclasses import dataclass

from ..unicode_symbols import MATH_UNICODE as UNICODE  # shared with authored_text

MAX_CHARS = 12000
MAX_TOKENS = 6000
MAX_NUMBER_DIGITS = 60


class ReadError(Exception):
    """The LaTeX cannot be read; ``pos`` is the 0-based offset in the answer."""

    def __init__(self, message, pos=None):
        super().__init__(message)
        self.message, self.pos = message, pos


# Tokens -------------------------------------------------------------------------------

@dataclass
class Tok:
    kind: str          # num, letter, cmd, word, op, rel, sep, ( ) [ ] { } ^ _ & \\ begin end eof
    text: str
    pos: int
    space: bool = False    # whitespace (or a spacing command) before it


DROPPED = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
           "displaystyle", "textstyle", "limits", "nolimits", "mathstrut", "middle", "phantom", "nonumber",
           "notag"}
SPACING = {",", ";", ":", "!", " ", "enspace", "thinspace", "medspace", "thickspace", "hfill"}
SEPARATORS = {"quad", "qquad"}
#: Commands whose braced argument is read as a word (a function or label name, a remark).
WORD_COMMANDS = {"text", "textrm", "textit", "textbf", "mbox", "mathrm", "operatorname", "textsf", "texttt",
                 "mathsf", "mathtt"}
#: Font commands that do not change meaning: \mathbf{W} is W.
TRANSPARENT = {"mathbf", "boldsymbol", "bm", "mathit", "vec", "pmb", "mathbfit", "bold", "mathnormal"}
ACCENTS = {"hat", "bar", "tilde", "widehat", "widetilde", "overline", "dot", "ddot", "check", "breve"}
RELATIONS = {"=": "=", "approx": "approx", "in": "in", "le": "<=", "leq": "<=", "leqslant": "<=",
             "ge": ">=", "geq": ">=", "geqslant": ">=", "neq": "!=", "ne": "!=", "equiv": "=",
             "coloneqq": "=", "simeq": "approx", "sim": "approx", "lt": "<", "gt": ">", "eqqcolon": "=",
             "triangleq": "=", "cong": "cong", "mid": "mid"}
TWO_CHAR_RELATIONS = {"<=": "<=", ">=": ">=", ":=": "=", "!=": "!="}
WORD_SEPARATORS = {"and", "also", "where", "with", "so", "hence", "thus", "i.e.", "then"}


def tokenize(text):
    """The answer as tokens, normalised; raises ReadError at the first unreadable character."""
    if len(text) > MAX_CHARS:
        raise ReadError(f"the answer is {len(text)} characters long; the limit is {MAX_CHARS}", MAX_CHARS)
    out, i, n, space = [], 0, len(text), False

    def emit(kind, value, pos):
        nonlocal space
        out.append(Tok(kind, value, pos, space))
        space = False
        if len(out) > MAX_TOKENS:
            raise ReadError(f"the answer has more than {MAX_TOKENS} tokens", pos)

    while i < n:
        c = text[i]
        if c in " \t\r\n~":
            space = True
            i += 1
            continue
        if c == "%":                               # a LaTeX comment runs to the end of the line
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in UNICODE:
            sub = tokenize(UNICODE[c])
            for t in sub[:-1]:
                emit(t.kind, t.text, i)
            i += 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            m = re.compile(r"\d*(?:\.\d+)?|\d+\.?").match(text, i)
            number = m.group(0)
            # 513{,}466 and 513\,466: thousands separators inside one number
            sep = re.compile(r"(?:\{,\}|\\,)(\d{3})(?!\d)").match(text, i + len(number))
            while sep and "." not in number:
                number += sep.group(1)
                i += len(sep.group(0)) - 3
                sep = re.compile(r"(?:\{,\}|\\,)(\d{3})(?!\d)").match(text, i + len(number))
            if number.endswith("."):
                number = number[:-1]
            digits = len(number.replace(".", ""))
            if digits > MAX_NUMBER_DIGITS:
                raise ReadError(f"a number longer than {MAX_NUMBER_DIGITS} digits", i)
            emit("num", number, i)
            i += len(number)
            continue
        if c.isascii() and c.isalpha():
            emit("letter", c, i)
            i += 1
            continue
        if c == "\\":
            if i + 1 >= n:
                raise ReadError("a lone backslash at the end", i)
            m = re.compile(r"[A-Za-z]+").match(text, i + 1)
            if not m:
                name = text[i + 1]
                j = i + 2
                if name == "\\":
                    emit("\\\\", "\\\\", i)
                elif name in SPACING:
                    space = True
                elif name in "{}":
                    emit("cmd", "l{" if name == "{" else "r}", i)
                elif name == "|":
                    emit("cmd", "|", i)
                elif name in "%&$#_":
                    emit("op", name, i)
                else:
                    raise ReadError(f"unknown command \\{name}", i)
                i = j
                continue
            name, j = m.group(0), m.end()
            if name in DROPPED:
                i = j
                if name in ("left", "right", "middle") and j < n and text[j] == ".":
                    i = j + 1
                continue
            if name in SPACING or name in ("hspace", "vspace"):
                space = True
                i = _skip_group(text, j) if name in ("hspace", "vspace") else j
                continue
            if name in SEPARATORS:
                emit("sep", name, i)
                i = j
                continue
            if name in WORD_COMMANDS or name in ("mathcal", "mathscr", "mathbb", "mathfrak"):
                content, k = _group(text, j)
                if content is None:        # \mathrm d, \mathbb R: one character
                    k = j
                    while k < n and text[k] == " ":
                        k += 1
                    if k >= n:
                        raise ReadError(f"\\{name} needs an argument", i)
                    content, k = text[k], k + 1
                if name == "mathbb":
                    emit("cmd", "mathbb:" + content.strip(), i)
                elif name in ("mathcal", "mathscr", "mathfrak"):
                    emit("word", content.strip(), i)
                else:
                    emit("word", " ".join(content.split()), i)
                i = k
                continue
            if name in TRANSPARENT or name in ("mathbbm", "mathds"):
                content, k = _group(text, j)
                if content is not None and content.strip() == "1":     # \mathbf{1}\{z > 0\}: the indicator
                    emit("cmd", "mathbb:1", i)
                    i = k
                    continue
                if name in TRANSPARENT:
                    i = j
                    continue
                raise ReadError(f"\\{name} is read only as the indicator \\{name}{{1}}", i)
            if name in ACCENTS:
                content, k = _group(text, j)
                if content is None:            # \tilde w, \hat y: one letter
                    k = j
                    while k < n and text[k] == " ":
                        k += 1
                    if k >= n or not text[k].isalpha():
                        raise ReadError(f"\\{name} needs a braced argument or a letter", i)
                    content, k = text[k], k + 1
                emit("letter", f"{name}:{content.strip()}", i)
                i = k
                continue
            if name == "begin" or name == "end":
                content, k = _group(text, j)
                if content is None:
                    raise ReadError(f"\\{name} needs an environment name in braces", i)
                emit(name, content.strip(), i)
                i = k
                continue
            if name in RELATIONS:
                emit("rel", RELATIONS[name], i)
                i = j
                continue
            emit("cmd", name, i)
            i = j
            continue
        if c in "{}[]()^_&":
            emit(c, c, i)
            i += 1
            continue
        pair = text[i:i + 2]
        if pair in TWO_CHAR_RELATIONS:
            emit("rel", TWO_CHAR_RELATIONS[pair], i)
            i += 2
            continue
        if c in "=<>":
            emit("rel", c, i)
            i += 1
            continue
        if c in "+-*/,;'|!:.":
            emit("op", c, i)
            i += 1
            continue
        raise ReadError(f"unexpected character {c!r}", i)
    out.append(Tok("eof", "", n, space))
    return out


def _group(text, j):
    """(content, end) of the brace group starting at j (after spaces), or (None, j)."""
    k = j
    while k < len(text) and text[k] == " ":
        k += 1
    if k >= len(text) or text[k] != "{":
        return None, j
    depth, m = 0, k
    while m < len(text):
        if text[m] == "\\":
            m += 2
            continue
        if text[m] == "{":
            depth += 1
        elif text[m] == "}":
            depth -= 1
            if depth == 0:
                return text[k + 1:m], m + 1
        m += 1
    raise ReadError("unbalanced braces", k)


def _skip_group(text, j):
    content, k = _group(text, j)
    return k
