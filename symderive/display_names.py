r"""How declared names are written: ``Wx`` is $W_{x}$, never the product $W x$.

One home for display names. A tensor, size or layer may declare its LaTeX name in the
problem file (``tex: W_x``); every other identifier gets a default from its spelling
(``default_tex``). The names a question declares are put in force while it is solved
(``declared``), so that every printer that goes through ``display_tex`` (the sheet's
printer in ``latex.py``, hence the sheet, the terminal table, notebooks and ``--json``)
writes the same names. ``reading_names`` gives the checker the reverse map: the notation
a student copies from the question, back to the declared identifier.

Declared names are untrusted text: ``parse_tex`` accepts only letters, digits, Greek
letters, sub- and superscripts, primes and a few accents and fonts, and refuses anything
else with its position.
"""
import contextlib
import contextvars
import re

import sympy as sp
from sympy.printing.conventions import split_super_sub

from .errors import ExpressionError

#: The declared names in force: {identifier: LaTeX}; set by ``declared`` while a question is solved.
_DECLARED = contextvars.ContextVar("symderive_declared_names", default=None)

GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi "
         "varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi "
         "Sigma Upsilon Phi Psi Omega").split()
#: Commands a declared name may use, besides Greek letters: accents and fonts take one braced argument.
ACCENTS = ("hat", "bar", "tilde", "vec", "dot", "ddot", "check", "breve", "widehat", "widetilde", "overline",
           "underline", "mathrm", "mathbf", "mathit", "mathsf", "mathcal", "mathbb", "boldsymbol", "text")
SYMBOLS = ("prime", "ell", "star", "ast", "top", "dagger", "infty")
COMMANDS = frozenset(GREEK) | frozenset(ACCENTS) | frozenset(SYMBOLS)
PLAIN = re.compile(r"[A-Za-z0-9 _^{}()+\-',.*|\[\]]")
MAX_LENGTH = 100


def parse_tex(text):
    r"""The declared LaTeX name ``text``, checked against the whitelist; raises ExpressionError
    with the 1-based column of the first character that is not allowed.

    >>> parse_tex(r"\hat{y}"), parse_tex("h_{t-1}"), parse_tex("W^{(1)}")
    ('\\hat{y}', 'h_{t-1}', 'W^{(1)}')
    >>> parse_tex(r"W\input{x}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symderive.errors.ExpressionError: line 1, column 2: '\input' is not allowed in a display name ...
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("a display name (tex:) is LaTeX text such as W_x or \\hat{y}", line=1, column=1)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"a display name is at most {MAX_LENGTH} characters", line=1, column=MAX_LENGTH + 1)
    depth, k = 0, 0
    while k < len(text):
        ch = text[k]
        if ch == "\\":
            word = re.match(r"\\([A-Za-z]+|.)", text[k:]).group(1) if k + 1 < len(text) else ""
            if word not in COMMANDS and word not in (",", " "):
                raise ExpressionError(f"'\\{word}' is not allowed in a display name (allowed: letters, digits, "
                                      r"Greek letters, _ ^ { }, \hat \bar \tilde \mathrm ...)", line=1, column=k + 1)
            k += 1 + len(word)
            continue
        if not PLAIN.match(ch):
            raise ExpressionError(f"{ch!r} is not allowed in a display name", line=1, column=k + 1)
        if ch in "_^" and (k + 1 == len(text) or text[k + 1] in "_^}"):
            raise ExpressionError(f"'{ch}' needs a subscript or superscript after it", line=1, column=k + 1)
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            raise ExpressionError("'}' without a matching '{'", line=1, column=k + 1)
        k += 1
    if depth:
        raise ExpressionError("a '{' is not closed", line=1, column=len(text))
    return text.strip()


def default_tex(identifier):
    r"""The LaTeX name of an identifier without a declared one: one letter stays as it is,
    Greek names and digits follow SymPy, a capital followed by letters is subscripted and
    any other word is upright, so that no name reads as a product of letters.

    >>> [default_tex(n) for n in ("x", "Wx", "W1", "h_prev", "loss", "alpha", "KH")]
    ['x', 'W_{x}', 'W_{1}', 'h_{\\mathrm{prev}}', '\\mathrm{loss}', '\\alpha', 'K_{H}']
    >>> [default_tex(n) for n in ("x_in", "Q0", "tau_1")]
    ['x_{\\mathrm{in}}', 'Q_{0}', '\\tau_{1}']

    A double underscore puts the whole name after it up, as that name's own default: backprop's
    ``delta__n_h`` (∂L/∂n_h) is δ^{n_h}, not SymPy's δ^n_h.

    >>> [default_tex(n) for n in ("delta__z1", "delta__n_h")]
    ['\\delta^{z_{1}}', '\\delta^{n_{h}}']
    """
    if "__" in identifier.strip("_"):
        head, rest = identifier.split("__", 1)
        if head and rest:
            return default_tex(head) + "^{" + default_tex(rest) + "}"
    head, supers, subs = split_super_sub(identifier)
    shown = sp.latex(sp.Symbol(head)) if head else ""
    if len(head.rstrip("'")) > 1 and shown == head:   # not a Greek letter, a primed letter or SymPy's yhat
        if head[0].isupper() and head[1:].isalpha():
            shown, subs = head[0], [head[1:]] + list(subs)
        else:
            shown = rf"\mathrm{{{head}}}"
    if subs:
        shown += "_{" + ",".join(_script(s) for s in subs) + "}"
    if supers:
        shown += "^{" + ",".join(_script(s) for s in supers) + "}"
    return shown


def _script(word):
    """A sub- or superscript: one character or a number as written, a Greek name as the letter,
    any other word upright."""
    if len(word) == 1 or word.isdigit():
        return word
    shown = sp.latex(sp.Symbol(word))
    return shown if shown != word else rf"\mathrm{{{word}}}"


def display_tex(identifier):
    """The LaTeX of a declared identifier: its declared ``tex:`` while a question that declares
    it is being solved, else ``default_tex``."""
    names = _DECLARED.get()
    if names and identifier in names:
        return names[identifier]
    return _default(identifier)


_DEFAULTS = {}


def _default(identifier):
    if identifier not in _DEFAULTS:
        _DEFAULTS[identifier] = default_tex(identifier)
    return _DEFAULTS[identifier]


def in_force():
    """The declared names in force as a hashable tuple (part of the cache key of printed LaTeX)."""
    names = _DECLARED.get()
    return tuple(sorted(names.items())) if names else ()


@contextlib.contextmanager
def declared(names):
    """Print with the declared names ``{identifier: LaTeX}`` while the block runs."""
    token = _DECLARED.set(dict(names or {}))
    try:
        yield
    finally:
        _DECLARED.reset(token)


def names_of(decls):
    """{identifier: LaTeX} of every size, tensor and layer ``decls`` can see (declared or default)."""
    return {name: decls.display_names().get(name) or default_tex(name) for name in decls.visible_names()}


def reading_names(problem, question=None):
    r"""{display LaTeX: declared identifier} for the names a question can see: the notation a
    student copies from the sheet (``W_{x}``, ``h_{t-1}``) mapped back to the engine's
    identifier (``Wx``, ``hp``). For the checker (``checking/``), which reads a student's
    LaTeX in the question's notation. Each LaTeX name appears once; spacing is normalised
    (``W_x`` and ``W_{x}`` are both keys).
    """
    return reading_of(problem.declarations(question))


def reading_of(decls):
    """``reading_names`` for a scope of declarations (``declarations.Declarations``)."""
    out = {}
    for identifier, tex in names_of(decls).items():
        for form in spellings(tex):
            out.setdefault(form, identifier)
    return out


def to_declared(latex, reading):
    r"""A student's LaTeX with the question's display names written as the declared identifiers
    that the checker reads, and a function from a position in the new text back to the answer
    as written. Only display names with more than letters are replaced (``W_x``, ``h[t-1]``,
    ``\hat{y}``): a plain word is the checker's to resolve (``x`` for a sequence ``xs``). Only
    identifiers made of letters are written (the checker splits a run of letters into declared
    names, longest first). A name is replaced where it stands alone: not after a letter or a
    backslash, not before a letter.

    >>> text, back = to_declared(r"{W_x}_{i,j} + h[t-1]_{i} \exp(x)", {"W_x": "Wx", "h[t-1]": "hp", "x": "xs"})
    >>> text, back(text.index("_{i}")), back(text.index("exp"))
    ('{Wx}_{i,j} + hp_{i} \\exp(x)', 20, 26)
    >>> to_declared(r"\nabla_\theta J", {"\\theta": "theta"})[0]
    '\\nabla_{theta} J'
    """
    forms = sorted((f for f, name in reading.items() if f != name and name.isalpha() and not f.isalpha()),
                   key=len, reverse=True)
    if not forms:
        return latex, lambda pos: pos
    pattern = re.compile("|".join(rf"(?<![A-Za-z\\])(?:{re.escape(f)})" + (r"(?![A-Za-z])" if f[-1].isalpha() else "")
                                  for f in forms))
    pieces, shifts, last = [], [], 0          # shifts: (position in the new text, original - new)
    for m in pattern.finditer(latex):
        name = reading[m.group(0)]
        if m.start() and latex[m.start() - 1] in "_^" and len(name) > 1:
            name = "{" + name + "}"             # \nabla_\theta: a script of one name, not of its first letter
        pieces += [latex[last:m.start()], name]
        last = m.end()
        new_end = sum(map(len, pieces))
        shifts.append((new_end, m.end() - new_end))
    text = "".join(pieces) + latex[last:]

    def back(pos):
        return pos + next((d for at, d in reversed(shifts) if at <= pos), 0)
    return text, back


def spellings(tex):
    r"""The ways a student may write a display name: as declared, without spaces, and with
    one-character scripts braced or not.

    >>> sorted(spellings("W_{x}"))
    ['W_x', 'W_{x}']
    """
    compact = re.sub(r"\s+", "", tex)
    forms = {tex, compact, re.sub(r"([_^])\{(\w)\}", r"\1\2", compact)}
    forms.add(re.sub(r"([_^])(\w)(?![\w{])", r"\1{\2}", compact))
    return forms
