r"""Displays that fit the page: a formula wider than the text is broken across lines.

The sheet's LaTeX is measured, roughly, in points (``width``: a letter about 6 pt, a
sub- or superscript 0.7 of its size, a fraction as wide as its wider part, limits under a
sum); a display wider than the line is broken at its top-level relations and ``+``/``−``
into an ``aligned`` block, a wide bracket ``\left( … \right)`` is broken inside at its own
``+``/``−`` (``\left( … \right.`` then ``\left. … \right)``), and a wide numerator over a short
denominator is written as a factor (``\frac{1}{N} \left( … \right)``). Nothing here depends
on which question made the formula. ``tests/test_sheets_fit.py`` compiles every shipped
sheet and fails on any line that still sticks out.
"""
import re
from functools import lru_cache

#: Sizes of the memo tables below: a sheet measures a few thousand distinct strings.
_MEMO = 1 << 15

#: Width of a display line the formulas are broken to, in points: the sheet's text is about
#: 475 pt wide and lists indent it by about 28 pt; the rest is the estimate's margin of error.
LINE = 340.0
#: Width a matrix may have: it is set on a line of its own, where the whole text width is free
#: (less the indent of a continued line and a box); wider ones are shown by their structure.
MATRIX_LINE = 420.0
#: A boxed answer of more lines than this is set unboxed, so that it can break across pages.
BOXED_LINES = 12
#: A broken step with more lines than this is written out in the question's appendix.
APPENDIX_LINES = 6

_RELATIONS = {"=", r"\leq", r"\geq", r"\in", r"\approx", r"\neq", "<", ">"}
_WIDE = {r"\sum": 14, r"\prod": 14, r"\partial": 6, r"\cdot": 6, r"\odot": 12, r"\times": 12, r"\quad": 11,
         r"\qquad": 22, r"\,": 2, r"\ ": 4, r"\;": 3, r"\!": -2, r"\infty": 11, r"\mid": 9, r"\to": 14,
         r"\lfloor": 5, r"\rfloor": 5, r"\lceil": 5, r"\rceil": 5, r"\nobreak": 0, r"\limits": 0}
_OPS = {"+": 13.0, "-": 13.0, "=": 15.0}
_FUNCTIONS = {"tanh", "sinh", "cosh", "log", "ln", "exp", "sin", "cos", "max", "min", "det", "diag", "lim"}


def _group(s, i):
    """(content, end) of the braced group starting at s[i] == '{'."""
    depth = 0
    for k in range(i, len(s)):
        if s[k] == "\\":
            continue
        if s[k] == "{" and (k == 0 or s[k - 1] != "\\"):
            depth += 1
        elif s[k] == "}" and s[k - 1] != "\\":
            depth -= 1
            if depth == 0:
                return s[i + 1:k], k + 1
    return s[i + 1:], len(s)


def _command(s, i):
    """(name, end) of the command starting at s[i] == '\\'."""
    m = re.compile(r"\\([A-Za-z]+|.)").match(s, i)
    return ("\\" + m.group(1), m.end()) if m else ("\\", i + 1)


def atoms(s):
    r"""Split LaTeX into top-level atoms: a character, a command with its arguments and
    scripts, a braced group, a whole ``\left … \right`` pair or environment.

    >>> atoms(r"a + \frac{1}{2} \left(x - y\right)^{2} \approx -0.25")
    ['a', '+', '\\frac{1}{2}', '\\left(x - y\\right)^{2}', '\\approx', '-', '0.25']
    """
    return list(_atoms(s))


@lru_cache(maxsize=_MEMO)
def _atoms(s):
    """``atoms`` as a tuple, memoized: breaking a line measures the same pieces again and again."""
    out, i = [], 0
    while i < len(s):
        if s[i].isspace():
            i += 1
            continue
        _, end = _scan(s, i)
        out.append(s[i:end].strip())
        i = end
    return tuple(out)


def _scan(s, i):
    """(end of the body, end of the atom with its scripts) for the atom starting at s[i]."""
    ch = s[i]
    if ch == "{":
        _, i = _group(s, i)
    elif ch == "\\":
        name, i = _command(s, i)
        if name == r"\left":
            i = _matching_right(s, i)
        elif name == r"\begin":
            env, j = _group(s, i)
            end = s.find(r"\end{" + env + "}", j)
            i = len(s) if end < 0 else end + len(r"\end{" + env + "}")
        elif name in (r"\frac", r"\binom", r"\dfrac", r"\tfrac"):
            i = _skip_args(s, i, 2)
        elif name in _ONE_ARGUMENT:
            i = _skip_args(s, i, 1)
    elif ch.isdigit():                            # a number is one atom: 0.1326, not 0 . 1 3 2 6
        i = re.compile(r"\d*(?:\.\d+)?").match(s, i).end()
    else:
        i += 1
    body_end = i
    while i < len(s) and s[i] in "_^'":           # scripts stay with their atom
        i = i + 1 if s[i] == "'" else _script(s, i)[1]
    return body_end, i


_ONE_ARGUMENT = {r"\sqrt", r"\text", r"\mathrm", r"\operatorname", r"\mathbb", r"\boxed", r"\hat", r"\bar",
                 r"\tilde", r"\mathbf", r"\mathit", r"\mathcal", r"\vec", r"\substack", r"\overline",
                 r"\widehat", r"\widetilde", r"\boldsymbol", r"\mathsf", r"\dot"}


def _skip_args(s, i, n):
    for _ in range(n):
        while i < len(s) and s[i] == " ":
            i += 1
        if i < len(s) and s[i] == "{":
            _, i = _group(s, i)
        elif i < len(s):
            i += 1
    return i


def _matching_right(s, i):
    """End of the ``\\right`` delimiter that closes the ``\\left`` whose delimiter starts at s[i]."""
    depth, k = 1, i
    while k < len(s):
        if s.startswith(r"\left", k) and not s[k + 5:k + 6].isalpha():
            depth += 1
            k += 5
        elif s.startswith(r"\right", k) and not s[k + 6:k + 7].isalpha():
            depth -= 1
            k += 6
            if depth == 0:
                while k < len(s) and s[k] == " ":
                    k += 1
                return _command(s, k)[1] if s[k:k + 1] == "\\" else k + 1
        else:
            k += 1
    return len(s)


def width(s, scale=1.0, display=True):
    r"""A rough width of LaTeX math in points at 11 pt; ``display``: limits go under a sum.

    >>> width("x") < width("x + y") < width(r"\frac{x + y + z}{2}") + 30
    True
    """
    return _width(s, scale, display)


@lru_cache(maxsize=_MEMO)
def _width(s, scale, display):
    """``width``, memoized: a pure function of the string, and break_lines measures every nested
    group again at each level and each candidate line (profile: 216,170 calls for 11,901 displays)."""
    return sum(_atom_width(atom, scale, display) for atom in _atoms(s))


def _scripts(atom):
    """(body, [script contents]) of an atom with trailing _ and ^ scripts."""
    body_end, _ = _scan(atom, 0)
    rest, scripts, k = atom[body_end:], [], 0
    while k < len(rest):
        if rest[k] in "_^":
            content, k = _script(rest, k)
            scripts.append(content)
        else:
            k += 1
    return atom[:body_end].strip(), scripts


def _script(s, i):
    """(content, end) of the sub- or superscript whose mark is at s[i]."""
    i += 1
    while i < len(s) and s[i] == " ":
        i += 1
    if i < len(s) and s[i] == "{":
        return _group(s, i)
    if i < len(s) and s[i] == "\\":
        return _command(s, i)
    return s[i:i + 1], i + 1


@lru_cache(maxsize=_MEMO)
def _atom_width(atom, scale, display=True):
    body, scripts = _scripts(atom)
    small = max(scale * 0.7, 0.5)
    script_width = max((width(x, small, False) for x in scripts), default=0.0)
    if body in (r"\sum", r"\prod") and display:       # limits under the sign
        return max(14.0, script_width)
    return _body_width(body, scale, display) + script_width


def _body_width(body, scale, display=True):
    if body.startswith("{"):
        return width(body[1:-1], scale, display)
    if body in _OPS:
        return _OPS[body] * (scale if scale >= 1 else 0.6 * scale)
    if not body.startswith("\\"):
        return sum((8.0 if c.isupper() else 3.0 if c in ",.;|'()[]" else 5.8) for c in body) * scale
    name, end = _command(body, 0)
    rest = body[end:].strip()
    if name == r"\left":
        inner = rest[1:] if not rest.startswith("\\") else rest[_command(rest, 0)[1]:]
        inner = re.sub(r"\\right\s*(\\[A-Za-z]+|\\.|.)\s*$", "", inner)
        return width(inner, scale, display) + 10 * scale
    if name == r"\begin":
        return _environment_width(body, scale)
    if name in (r"\frac", r"\dfrac", r"\tfrac", r"\binom"):
        top, j = _group(rest, 0)
        bottom, _ = _group(rest, rest.index("{", j)) if "{" in rest[j:] else ("", 0)
        inner = scale if display and name != r"\tfrac" else max(scale * 0.7, 0.5)
        return max(width(top, inner, False), width(bottom, inner, False)) + 4 * scale
    if name in (r"\text", r"\mathrm", r"\operatorname"):
        return len(_group(rest, 0)[0]) * 5.5 * scale if rest.startswith("{") else 6 * scale
    if name == r"\substack":
        return max(width(row, scale) for row in _group(rest, 0)[0].split(r"\\"))
    if name in (r"\boxed", r"\sqrt", r"\hat", r"\bar", r"\tilde", r"\mathbf", r"\mathit", r"\mathcal", r"\vec",
                r"\overline", r"\widehat", r"\widetilde", r"\boldsymbol", r"\mathsf", r"\dot", r"\mathbb"):
        extra = {r"\boxed": 8, r"\sqrt": 10}.get(name, 0)
        return (width(_group(rest, 0)[0], scale, display) if rest.startswith("{") else 6 * scale) + extra * scale
    if name in _RELATIONS or name in (r"\leq", r"\geq"):
        return 15 * scale
    if name in _WIDE:
        return _WIDE[name] * scale
    if name[1:] in _FUNCTIONS:
        return (5.5 * len(name) + 2) * scale
    return 7 * scale                                                     # \sigma, \delta ...


def _environment_width(body, scale):
    env, j = _group(body, body.index("{"))
    inner = body[j:body.rfind(r"\end{")]
    rows = [r.split("&") for r in re.split(r"\\\\", inner)]
    cols = max(len(r) for r in rows)
    widths = [max((width(r[c], scale) if c < len(r) else 0.0) for r in rows) for c in range(cols)]
    gap = 12 if env in ("bmatrix", "pmatrix", "matrix", "array") else 10
    return sum(widths) + gap * (cols - 1) * scale + 14 * scale


# ---------------------------------------------------------------------------------------------
def _terms(items):
    """Split atoms at top-level relations and binary + and −: [(operator or '', [atoms])]."""
    out, current, op = [], [], ""
    for k, a in enumerate(items):
        binary = a in ("+", "-") and current
        if a in _RELATIONS or binary:
            out.append((op, current))
            op, current = a, []
        else:
            current.append(a)
    out.append((op, current))
    return [t for t in out if t[1] or t[0]]


def _join(op, items):
    return (f"{op} " if op else "") + " ".join(items)


def break_lines(s, limit=LINE):
    r"""``s`` as a list of lines, each (roughly) at most ``limit`` points wide. Lines after the
    first begin with their operator. A formula that fits is one line.

    >>> break_lines("a + b", 100)
    ['a + b']
    >>> lines = break_lines(" + ".join("x_{%d}" % i for i in range(40)), 200)
    >>> len(lines) > 1 and all(width(line) <= 200 for line in lines) and lines[1].startswith("+")
    True
    """
    if width(s) <= limit:
        return [s.strip()]
    lines, current = [], ""
    for op, items in _terms(atoms(s)):
        piece = _join(op, items)
        if width(piece) > limit:
            if current:
                lines.append(current)
                current = ""
            parts = _break_term(op, items, limit)
            lines += parts[:-1]
            current = parts[-1]
        elif current and width(current + " " + piece) > limit:
            lines.append(current)
            current = piece
        else:
            current = (current + " " + piece).strip()
    if current:
        lines.append(current)
    return lines


def _break_term(op, items, limit):
    """A term wider than the line: broken between its factors, inside its widest bracket, or
    with a wide fraction written as a product or quotient."""
    if not items:
        return [op]
    widest = max(range(len(items)), key=lambda k: width(items[k]))
    atom = items[widest]
    before = _join(op, items[:widest])
    if widest and width(before + " " + atom) > limit:        # a wide head: its own lines first
        return _continued(_break_term(op, items[:widest], limit), _break_term("", items[widest:], limit))
    after = items[widest + 1:]
    if after and width(" ".join(after)) > limit / 2:        # a wide tail: on lines of its own
        return _continued(_break_term(op, items[:widest + 1], limit), _break_term("", after, limit))
    after = " ".join(after)
    body, scripts = _scripts(atom)
    if body.startswith(r"\frac") and not scripts:
        top, j = _group(body, body.index("{"))
        bottom, _ = _group(body, body.index("{", j))
        if width(top) > limit / 2 or width(bottom) > limit / 2:
            if width(bottom) < limit / 4:          # a wide numerator over N: (1/N) times it
                rewritten = rf"\frac{{1}}{{{bottom}}} \left({top}\right)"
            elif widest == len(items) - 1:            # both wide, nothing after: numerator / denominator
                rewritten = rf"\left({top}\right) \Big/ \left({bottom}\right)"
            else:                                    # a factor follows: a / b c would be ambiguous
                rewritten = rf"\left({top}\right) \left({bottom}\right)^{{-1}}"
            return _break_term(op, items[:widest] + atoms(rewritten) + items[widest + 1:], limit)
    if body.startswith(r"\begin{cases}") and not scripts:
        rebuilt = _broken_cases(body, limit - width(before) - width(after))
        if rebuilt != body:
            return [" ".join(p for p in (before, rebuilt, after) if p)]
    if body.startswith(r"\left"):
        suffix = atom[_scan(atom, 0)[0]:].strip()         # (…)^{2}: the power goes on the closing bracket
        m = re.match(r"\\left\s*(\\[A-Za-z]+|\\.|.)", body)
        close = re.search(r"\\right\s*(\\[A-Za-z]+|\\.|.)\s*$", body)
        if m and close:
            inner = body[m.end():close.start()]
            parts = break_lines(inner, max(limit - width(before) - width(after) - 20, limit / 2))
            if len(parts) > 1:
                left, right = m.group(1), close.group(1)
                lines = [rf"{before} \left{left} {parts[0]} \right.".strip()]
                lines += [rf"\left. {p} \right." for p in parts[1:-1]]
                lines.append(rf"\left. {parts[-1]} \right{right}{suffix} {after}".strip())
                return lines
    if len(items) > 1 and width(_join(op, items)) > limit:
        return _between_factors(op, items, limit)
    return [_join(op, items)]


def _between_factors(op, items, limit):
    r"""A product wider than the line whose head, widest factor and tail each fit but not together
    (``\sum (a)(b)(c)``): as many factors on a line as fit, the next on lines marked as continuing.

    >>> _between_factors("+", ["x", "y", "z"], 28)
    ['+ x y', '\\cdot z']
    """
    groups, current = [], []
    for item in items:
        if current and width(_join(op if not groups else "", current + [item])) > limit:
            groups.append(current)
            current = []
        current.append(item)
    groups.append(current)
    lines = _fitted(op, groups[0], limit)
    for group in groups[1:]:
        lines = _continued(lines, _fitted("", group, limit))
    return lines


def _fitted(op, group, limit):
    """A group of factors as one line, or a single factor too wide for one broken inside."""
    if len(group) == 1 and width(_join(op, group)) > limit:
        return _break_term(op, group, limit)
    return [_join(op, group)]


def _continued(head, lines):
    r"""``head`` then ``lines``, which continue a product: a dot marks the break unless an
    operator already does (a line ending or starting with one).

    >>> _continued(["a"], ["b"]), _continued([r"a \Big /"], ["b"])
    (['a', '\\cdot b'], ['a \\Big /', 'b'])
    """
    marked = head and head[-1].rstrip().endswith(("/", r"\cdot", "+", "-", "="))
    if lines and not marked and not lines[0].startswith((r"\Big", r"\cdot", "/", "+", "-")):
        lines = [r"\cdot " + lines[0]] + lines[1:]
    return head + lines


def _broken_cases(body, limit):
    r"""A ``cases`` block whose wide values are broken over lines inside their rows."""
    inner = body[len(r"\begin{cases}"):body.rfind(r"\end{cases}")]
    rows = []
    for row in _split_top(inner, r"\\"):
        value, _, cond = row.partition("&")
        room = max(limit - width(cond) - 20, limit / 2)
        lines = break_lines(value, room)
        if len(lines) > 1:
            value = r"\begin{aligned}[t] & " + r" \\ &\quad ".join(lines) + r" \end{aligned}"
        rows.append(f"{value} & {cond.strip()}" if cond else value)
    return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"


def _split_top(s, sep):
    """``s`` split at ``sep`` where it is outside braces and environments."""
    parts, depth, start, k = [], 0, 0, 0
    while k < len(s):
        if s.startswith(r"\begin", k):
            depth += 1
        elif s.startswith(r"\end", k):
            depth -= 1
        elif s[k] == "{" and s[k - 1:k] != "\\":
            depth += 1
        elif s[k] == "}" and s[k - 1:k] != "\\":
            depth -= 1
        elif depth == 0 and s.startswith(sep, k):
            parts.append(s[start:k])
            start = k = k + len(sep)
            continue
        k += 1
    return parts + [s[start:]]


def display(latex, boxed=False, limit=LINE):
    r"""A display of ``latex`` that fits the line: ``\[ … \]`` when it does, otherwise its lines
    broken at top-level relations and ``+``/``−``, in an ``align*`` that may break across pages, or
    boxed as a whole in an ``aligned`` block when ``boxed`` and at most ``BOXED_LINES`` long.
    Returns (LaTeX, number of lines).

    >>> display("x = y")
    ('\\[ x = y \\]', 1)
    """
    room = limit - (10 if boxed else 0)
    lines = break_lines(latex, room)
    if len(lines) == 1:
        inner = rf"\boxed{{{latex}}}" if boxed else latex
        return rf"\[ {inner} \]", 1
    items = [item.strip() for item in _split_top(latex, r",\quad")]
    if len(items) > 1:                      # a list (τ₁ = …, τ₂ = …): each item begins a line
        rows = []
        for k, item in enumerate(items):
            rows += _aligned_rows(break_lines(item, room))
            rows[-1] += " ," if k < len(items) - 1 else ""
    else:
        rows = _aligned_rows(lines)
    if boxed and len(rows) <= BOXED_LINES:
        return r"\[ \boxed{\begin{aligned} " + r" \\ ".join(rows) + r" \end{aligned}} \]", len(rows)
    # align* may break across pages (the sheet allows display breaks); a box could not
    return r"\begin{align*} " + r" \\ ".join(rows) + r" \end{align*}", len(rows)


def _aligned_rows(lines):
    r"""Rows of an ``aligned`` block: the first aligned at its first top-level relation, the
    others indented after it.

    >>> _aligned_rows(["a = b", "+ c"])
    ['a & = b', '&\\quad + c']
    """
    first = lines[0]
    rel = next((r for r in (" = ", r" \leq ", r" \in ", r" \approx ") if r in first and _top_level(first, r)), None)
    if rel:
        k = _top_level(first, rel)
        return [f"{first[:k]} &{first[k:]}"] + [rf"&\quad {line}" for line in lines[1:]]
    return [f"& {first}"] + [rf"&\quad {line}" for line in lines[1:]]


def _top_level(s, needle):
    """Position of ``needle`` in ``s`` outside braces, \\left…\\right and environments, or 0.

    >>> _top_level(r"\\begin{gathered}A = b\\end{gathered}", " = "), _top_level("a = b", " = ")
    (0, 1)
    """
    depth, k = 0, 0
    while k < len(s):
        if (s.startswith(r"\left", k) and not s[k + 5:k + 6].isalpha()) or s.startswith(r"\begin{", k):
            depth += 1
        elif (s.startswith(r"\right", k) and not s[k + 6:k + 7].isalpha()) or s.startswith(r"\end{", k):
            depth -= 1
        elif s[k] == "{" and (k == 0 or s[k - 1] != "\\"):
            depth += 1
        elif s[k] == "}" and s[k - 1] != "\\":
            depth -= 1
        elif depth == 0 and s.startswith(needle, k) and k > 0:
            return k
        k += 1
    return 0
