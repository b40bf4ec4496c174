r"""Authored text made safe: plain text with inline maths between ``$...$``.

Problem files are untrusted. Their titles, sources, notes, statements, remarks and text
answers reach the LaTeX sheet, the HTML page and the notebook, so nothing in them may reach
TeX as a command the author chose: ``$\input{/etc/passwd}$`` would typeset a file.

* Outside ``$...$``, every character is text: LaTeX specials are escaped and Unicode symbols
  (→ ⊙ σ ...) become their LaTeX (``$\to$``).
* Inside ``$...$``, the maths is read by a small lexer over a whitelisted LaTeX subset —
  letters, digits, operators, sub/superscripts, braces, Greek, operators and relations,
  ``\frac``, ``\sqrt``, fonts, accents and the matrix and cases environments (all of which
  MathJax 2 and 3 also know) — and re-emitted token by token. A control sequence outside the
  subset (``\input``, ``\write``, ``\def``, ``\catcode``, ``\csname``, any unknown one), a
  ``^^`` escape, ``%``, ``#``, an unknown environment or unbalanced braces is refused.

``checked(value)`` refuses with an ``AuthoredTextError`` carrying the offending character's
line and column (in the file, when ``value`` came from a problem file); the renderers are
lenient instead (``to_latex``, ``segments``): a refused span is shown as escaped text, so
that a sheet never executes it and is still written.

Why not ``checking.latex_tokens.tokenize``: it reads students' LaTeX for its meaning and
normalises on the way (fonts and ``\left`` dropped, ``\text{...}`` and ``\hspace{...}``
contents kept unread); re-emitting requires every character to be read and kept. Its table of
Unicode symbols (``unicode_symbols``) is shared.
"""
import re

from .errors import ProblemFileError
from .unicode_symbols import MATH_UNICODE
from .yaml_positions import inner_position, position

GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
         "kappa", "lambda", "mu", "nu", "xi", "pi", "varpi", "rho", "varrho", "sigma", "varsigma", "tau",
         "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi",
         "Sigma", "Upsilon", "Phi", "Psi", "Omega"}
SYMBOLS = {
    # operators and relations
    "cdot", "times", "odot", "otimes", "oplus", "circ", "ast", "star", "bullet", "pm", "mp", "div", "setminus",
    "le", "leq", "ge", "geq", "ne", "neq", "lt", "gt", "approx", "equiv", "sim", "simeq", "propto", "cong",
    "in", "notin", "subset", "subseteq", "supset", "supseteq", "cup", "cap", "land", "lor", "wedge", "vee", "neg",
    "mid",
    "parallel", "perp", "to", "rightarrow", "leftarrow", "leftrightarrow", "Rightarrow", "Leftarrow",
    "Leftrightarrow", "mapsto", "implies", "iff", "gets", "triangleq", "ll", "gg",
    # big operators and named functions
    "sum", "prod", "int", "lim", "max", "min", "sup", "inf", "arg", "log", "ln", "exp", "sin", "cos", "tan",
    "tanh", "sinh", "cosh", "det", "dim", "ker", "deg",
    # symbols
    "partial", "nabla", "infty", "ell", "top", "intercal", "prime", "forall", "exists", "emptyset",
    "ldots", "cdots", "vdots", "ddots", "dots", "langle", "rangle", "lfloor", "rfloor", "lceil", "rceil",
    "vert", "Vert", "lvert", "rvert", "lVert", "rVert", "backslash",
    # sizing and spacing
    "left", "right", "middle", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "quad", "qquad",
    "displaystyle", "textstyle", "limits", "nolimits", "substack",
    # one or two arguments, read like the rest
    "frac", "dfrac", "tfrac", "sqrt", "binom", "boxed", "text", "mathrm", "mathbf", "mathit", "mathsf",
    "mathtt", "mathbb", "mathcal", "boldsymbol", "operatorname", "textbf", "textit", "hat", "bar",
    "tilde", "vec", "dot", "ddot", "widehat", "widetilde", "overline", "underline", "underbrace", "overbrace",
    "begin", "end",
} | GREEK
ENVIRONMENTS = {"matrix", "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "smallmatrix", "cases",
                "aligned", "gathered", "array"}
#: Control symbols: a backslash and one non-letter.
CONTROL_SYMBOLS = set(",;:! {}|\\&_%#$")

#: Unicode in text that is not maths: typographic punctuation.
TEXT_UNICODE = {"’": "'", "‘": "`", "“": "``", "”": "''", "–": "--", "—": "---", "…": r"\dots{}", "−": "-",
                "\u00a0": "~"}
#: More maths symbols than the students' reader needs.
EXTRA_MATH_UNICODE = {
    "→": r"\to", "←": r"\leftarrow", "↔": r"\leftrightarrow", "⇒": r"\Rightarrow", "⇐": r"\Leftarrow",
    "⇔": r"\Leftrightarrow", "↦": r"\mapsto", "≠": r"\neq", "≡": r"\equiv", "∝": r"\propto", "∀": r"\forall",
    "∃": r"\exists", "∅": r"\emptyset", "∉": r"\notin", "⊂": r"\subset", "⊆": r"\subseteq", "∪": r"\cup",
    "∩": r"\cap", "±": r"\pm", "÷": r"\div", "⊗": r"\otimes", "⊕": r"\oplus", "‖": r"\|", "Σ": r"\Sigma",
    "Δ": r"\Delta", "Π": r"\Pi", "Φ": r"\Phi", "Ω": r"\Omega", "Γ": r"\Gamma", "Λ": r"\Lambda", "Θ": r"\Theta",
    "ε": r"\varepsilon", "ϵ": r"\epsilon", "ζ": r"\zeta", "ι": r"\iota", "κ": r"\kappa", "ν": r"\nu", "ξ": r"\xi",
    "ρ": r"\rho", "υ": r"\upsilon", "φ": r"\phi", "ϕ": r"\phi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega",
    "∫": r"\int", "∏": r"\prod", "√": r"\surd", "∣": r"\mid", "⋯": r"\cdots", "⋮": r"\vdots", "⊥": r"\perp",
    "²": "^2", "³": "^3", "⁻": "^-", "ⁿ": "^n", "ᵢ": "_i", "ⱼ": "_j", "ₖ": "_k", "ₙ": "_n", "ₜ": "_t",
    **{chr(0x2080 + d): f"_{d}" for d in range(10)}, "¹": "^1", "⁰": "^0", "ᵀ": "^T",
}
SYMBOL_UNICODE = {**EXTRA_MATH_UNICODE, **MATH_UNICODE}
#: Characters TeX reads as commands or comments, or that end the maths early.
REFUSED_IN_MATH = {"%": "'%' (a TeX comment)", "#": "'#' (a macro parameter)"}


class AuthoredTextError(ProblemFileError):
    """Authored text that cannot be printed safely; ``offset`` is where in the text."""

    def __init__(self, message, offset=0):
        super().__init__(message)
        self.offset = offset


def segments(text):
    r"""The text as [("text", str) | ("math", safe LaTeX)]; a refused maths span becomes text.

    >>> segments(r"a $x_{1} \to y$ b")
    [('text', 'a '), ('math', 'x_{1} \\to y'), ('text', ' b')]
    >>> segments(r"$\input{/etc/passwd}$")
    [('text', '$\\input{/etc/passwd}$')]
    >>> segments(r"costs \$5, $x$")
    [('text', 'costs $5, '), ('math', 'x')]
    """
    out = []
    for kind, start, part in _parts(str(text)):
        if kind == "math":
            try:
                out.append(("math", math(part)))
            except AuthoredTextError:
                out.append(("text", f"${part}$"))
        else:
            out.append(("text", part.replace("\\$", "$")))      # \$ is a dollar sign
    return out


def _parts(text):
    """(kind, offset, body) for each text part and each ``$...$`` (body without the dollars)."""
    out, start = [], 0
    for lo, hi in _math_spans(text):
        if lo > start:
            out.append(("text", start, text[start:lo]))
        out.append(("math", lo + 1, text[lo + 1:hi]))
        start = hi + 1
    if start < len(text):
        out.append(("text", start, text[start:]))
    return out


def _math_spans(text):
    r"""(start, end) offsets of each ``$...$`` (an unclosed ``$`` is text; ``\$`` is a dollar)."""
    spans, i, opened = [], 0, None
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] == "$" and opened is None:
            i += 2
            continue
        if text[i] == "$":
            if opened is None:
                opened = i
            else:
                spans.append((opened, i))
                opened = None
        i += 1
    return spans


def math(body, offset=0):
    r"""Maths in the whitelisted subset, re-emitted; raises AuthoredTextError at the first refusal.

    >>> math(r"\sigma(w^T x_n) \odot h")
    '\\sigma(w^T x_n) \\odot h'
    >>> math("q ⊙ σ(z) → ∞")
    'q \\odot  \\sigma (z) \\to  \\infty '
    >>> try:
    ...     math(r"x + \csname input\endcsname", offset=1)
    ... except AuthoredTextError as exc:
    ...     print(exc.message[:30], exc.offset)
    \csname is not allowed in math 5
    """
    out, i, n, depth, envs = [], 0, len(body), 0, []
    while i < n:
        c = body[i]
        if c == "\\":
            m = re.compile(r"[A-Za-z]+").match(body, i + 1)
            if m is None:
                if i + 1 >= n or body[i + 1] not in CONTROL_SYMBOLS:
                    raise AuthoredTextError(f"'\\{body[i + 1:i + 2]}' is not allowed in maths", offset + i)
                if body[i + 1] == "\\" and not envs:
                    raise AuthoredTextError("'\\\\' (a new row) outside a matrix or cases", offset + i)
                out.append(body[i:i + 2])
                i += 2
                continue
            name = m.group(0)
            if name not in SYMBOLS:
                raise AuthoredTextError(
                    f"\\{name} is not allowed in maths (the LaTeX allowed is listed in docs/problem-format.md)",
                    offset + i)
            out.append("\\" + name)
            i = m.end()
            if name in ("begin", "end"):
                env = re.compile(r"\{([A-Za-z]+\*?)\}").match(body, i)
                if env is None or env.group(1) not in ENVIRONMENTS:
                    raise AuthoredTextError(f"\\{name} needs one of the environments {', '.join(sorted(ENVIRONMENTS))}",
                                            offset + i)
                if name == "begin":
                    envs.append(env.group(1))
                elif not envs or envs.pop() != env.group(1):
                    raise AuthoredTextError(f"\\end{{{env.group(1)}}} does not close the last \\begin", offset + i)
                out.append(env.group(0))
                i = env.end()
            elif i < n and body[i].isalpha():
                out.append(" ")
            continue
        if c == "^" and i + 1 < n and body[i + 1] == "^":
            raise AuthoredTextError("'^^' (TeX's character code escape) is not allowed in maths", offset + i)
        if c == "&" and not envs:
            raise AuthoredTextError("'&' (a new column) outside a matrix or cases", offset + i)
        if c in "%#":
            raise AuthoredTextError(f"{REFUSED_IN_MATH[c]} is not allowed in maths", offset + i)
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                raise AuthoredTextError("'}' closes no '{'", offset + i)
        if c.isascii() and (c.isalnum() or c in " \t\n+-*/=<>()[]|,.;:'!?\"^_{}&~"):
            out.append(c)
        elif c in SYMBOL_UNICODE:
            out.append(SYMBOL_UNICODE[c] + " ")
        else:
            raise AuthoredTextError(f"the character {c!r} (U+{ord(c):04X}) is not allowed in maths", offset + i)
        i += 1
    if depth:
        raise AuthoredTextError("a '{' is never closed", offset + n)
    if envs:
        raise AuthoredTextError(f"\\begin{{{envs[-1]}}} is never ended", offset + n)
    return "".join(out)


TEXT_SPECIALS = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "$": r"\$",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def text_latex(s, strict=False):
    r"""Plain text for LaTeX: specials escaped, Unicode symbols as maths.

    >>> text_latex(r"50% of \input{x} → y")
    '50\\% of \\textbackslash{}input\\{x\\} $\\to$ y'
    """
    out = []
    for offset, c in enumerate(s):
        if c in TEXT_SPECIALS:
            out.append(TEXT_SPECIALS[c])
        elif c.isascii():
            out.append(c if c.isprintable() or c in "\n\t" else " ")
        elif c in TEXT_UNICODE:
            out.append(TEXT_UNICODE[c])
        elif c in SYMBOL_UNICODE:
            out.append(f"${SYMBOL_UNICODE[c]}$")
        elif _latin_letter(c):
            out.append(c)
        elif strict:
            raise AuthoredTextError(f"the character {c!r} (U+{ord(c):04X}) cannot be typeset; write it in LaTeX "
                                    "between $...$ or leave it out", offset)
        else:
            out.append("?")
    return "".join(out)


def _latin_letter(c):
    """Accented Latin letters, which pdfTeX's UTF-8 input and T1 fonts set (é, ü, ł, ...).

    >>> _latin_letter("é"), _latin_letter("→"), _latin_letter("ж")
    (True, False, False)
    """
    return c.isalpha() and 0xC0 <= ord(c) < 0x180


def to_latex(s):
    r"""Authored text (or any text with ``$...$`` maths) as safe LaTeX for a sheet.

    >>> to_latex(r"Find $\frac{\partial L}{\partial x}$ for x_1 & $\write18{rm}$")
    'Find $\\frac{\\partial L}{\\partial x}$ for x\\_1 \\& \\$\\textbackslash{}write18\\{rm\\}\\$'
    """
    return "".join(f"${part}$" if kind == "math" else text_latex(part) for kind, part in segments(s))


def checked(value, where=""):
    """``value`` (a text field of a problem file) unchanged, or an AuthoredTextError at the file position
    of the first refused character, prefixed with ``where`` (``"question q: "``)."""
    for kind, start, part in _parts(str(value)):
        try:
            math(part) if kind == "math" else text_latex(part, strict=True)
        except AuthoredTextError as exc:
            exc.message = f"{where}{exc.message}"
            exc.args = (exc.message,)
            exc.offset += start
            exc.line, exc.column = _file_position(value, exc.offset)
            raise exc from None
    return value


def _file_position(value, offset):
    """(line, column) in the file of ``offset`` in a located string (or in the string itself)."""
    text = str(value)
    lead = len(text) - len(text.lstrip())
    before = text[lead:max(offset, lead)]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    if position(value)[0] is None:
        return line, column
    return inner_position(value, line, column)


# Plain text for the terminal -------------------------------------------------------------

#: LaTeX commands shown as a Unicode character in the terminal.
PLAIN_SYMBOLS = {cmd.lstrip("\\"): ch for ch, cmd in SYMBOL_UNICODE.items()
                 if re.fullmatch(r"\\[A-Za-z]+", cmd) and len(ch) == 1}
PLAIN_SYMBOLS.update({"le": "≤", "ge": "≥", "to": "→", "cdot": "·", "top": "ᵀ", "infty": "∞", "sigma": "σ",
                      "ldots": "…", "dots": "…"})


#: A braced argument holding at most one level of braces (``{\partial h^{enc}}``), captured without them.
_BRACED = r"\{((?:[^{}]|\{[^{}]*\})*)\}"


def to_plain(s):
    r"""Authored text for a terminal: maths spans without dollars, commands as Unicode.

    >>> to_plain(r"Then $h_t = \tanh(W h_{t-1}) \odot \sigma(z)$, see $\frac{a}{b}$ and ${V_{0}} x$.")
    'Then h_t = tanh(W h_{t-1}) ⊙ σ(z), see a/b and V_0 x.'
    >>> to_plain(r"$g \odot \mathbf{1}\{z > 0\}$")
    'g ⊙ 𝟙[z > 0]'
    >>> to_plain(r"$\frac{\partial L}{\partial h^{enc}}$ and $\frac{a_{i} + 1}{b}$")
    '∂L/∂h^{enc} and (a_i + 1)/b'
    """
    out = []
    for kind, part in segments(s):
        if kind == "text":
            out.append(part)
            continue
        part = re.sub(r"\^(?:\{\\top\}|\\top|\{T\}|T\b)", "ᵀ", part)
        part = re.sub(rf"\\[dt]?frac{_BRACED}{_BRACED}", lambda m: "/".join(
            p if re.fullmatch(r"(\\partial\s*)?\w+(?:[_^](?:\w|\{\w+\}))*", p) else f"({p})"
            for p in m.groups()), part)
        part = re.sub(r"\\math(?:bf|bb)\{1\}\s*\\\{", "𝟙[", part)          # the mask 1{z > 0} → 𝟙[z > 0]
        part = re.sub(r"(𝟙\[[^{}]*?)\\\}", r"\1]", part)
        part = re.sub(r"\\(?:text|mathrm|mathbf|operatorname|boldsymbol|mathit)\{([^{}]*)\}", r"\1", part)
        part = re.sub(r"\\(tanh|log|ln|exp|max|min|sin|cos)\b", r"\1", part)
        part = re.sub(r"\\([A-Za-z]+)", lambda m: PLAIN_SYMBOLS.get(m.group(1), m.group(0)), part)
        part = re.sub(r"\\[,;:! ]", " ", part)
        part = re.sub(r"([_^])\{(\w)\}", r"\1\2", part)
        while re.search(r"(?<![_^])\{([^{}]*)\}", part):
            part = re.sub(r"(?<![_^])\{([^{}]*)\}", r"\1", part)
        out.append(part.replace("∂ ", "∂"))
    return "".join(out)


# One maths expression for MathJax (notebooks) ---------------------------------------------

#: Characters of text that MathJax's ``\text{...}`` would misread, written as maths instead.
MATHJAX_SPECIALS = {"\\": r"\backslash ", "{": r"\{", "}": r"\}", "$": r"\$", "%": r"\%", "&": r"\&",
                    "#": r"\#", "_": r"\_", "^": r"\hat{}", "~": r"\sim "}


def to_mathjax(s):
    r"""Text with ``$...$`` maths as one maths expression (for ``_repr_latex_``): the text in
    ``\text{...}``, the maths (read through the same whitelist) in braces.

    >>> to_mathjax(r"Find $\frac{a}{b}$ for x_1 {ok}")
    '\\text{Find }{\\frac{a}{b}}\\text{ for x}\\_\\text{1 }\\{\\text{ok}\\}'
    """
    out = []
    for kind, part in segments(s):
        if kind == "math":
            out.append("{" + part + "}")
            continue
        for piece in re.split(r"([\\{}$%&#_^~])", part):
            if piece in MATHJAX_SPECIALS:
                out.append(MATHJAX_SPECIALS[piece])
            elif piece:
                out.append(r"\text{" + piece + "}")
    return "".join(out)
