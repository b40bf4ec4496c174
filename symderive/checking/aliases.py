"""A question's own notation for grading: ``aliases:`` names a student may write for part of a declared
tensor, as the statement does (``x_n`` for row n of ``X``, ``h_j`` for the state at step j, ``v_1`` for
the first row of ``V``).

```yaml
  - id: q
    aliases:
      x_n: "X[n, :]"        # x_n, x_{3}, x_{n,i} (= X[n, i]); a column vector of X's row n
      v_1: "V[1, :]"        # a fixed row: the name v_1 itself
      u_w: "U[:, w]"        # u_o, column o of U (CS224n's outside vectors); u_{w,i} = U[i, w]
      h_j: "hs[j]"
```

The key is a stem with an optional subscript: single letters there are parameters (the student's
subscript takes their place), digits or a longer name make the whole key one name. The value is a
declared tensor or layer with brackets: a parameter of the key, a number (in the problem's index base)
or ``:`` (a whole axis, after the fixed ones: the result is a vector or a matrix over the
remaining axes; or first, for a column of a matrix, ``U[:, w]``). Nothing is evaluated: both sides
are read by the two patterns below, and anything else
is a ProblemFileError with the key's position.
"""
import re
from dataclasses import dataclass

from ..errors import ProblemFileError
from ..yaml_positions import key_position

MAX_ALIASES = 50
KEY = re.compile(r"^([A-Za-z]+)(?:_(?:([A-Za-z0-9]+)|\{([A-Za-z0-9]+(?:\s*,\s*[A-Za-z0-9]+)*)\}))?$")
VALUE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(?:\[([^\[\]]*)\])?\s*$")


@dataclass(frozen=True)
class Alias:
    """``name`` (the whole key when it has no parameters, else its stem) stands for ``tensor`` at
    ``pattern``: ("param", k) the k-th parameter, ("num", text) a fixed index, ("all", None) a whole axis."""
    name: str
    params: tuple
    tensor: str
    pattern: tuple
    written: str

    def __str__(self):
        return self.written


def read_aliases(question, scope=None):
    """{name: Alias} from the question's ``aliases:``; ProblemFileError (with the key's position) for a
    key or value that is not of the documented form, or a tensor the question does not declare.

    >>> from types import SimpleNamespace as Q
    >>> sorted(read_aliases(Q(id="q", spec={"aliases": {"x_n": "X[n, :]", "v_1": "V[1, :]"}})).items())
    [('v_1', Alias(name='v_1', params=(), tensor='V', pattern=(('num', '1'), ('all', None)), written='v_1')), \
('x', Alias(name='x', params=('n',), tensor='X', pattern=(('param', 0), ('all', None)), written='x_n'))]
    >>> read_aliases(Q(id="q", spec={"aliases": {"x_n": "__import__('os')"}}))
    Traceback (most recent call last):
    ...
    symderive.errors.ProblemFileError: question q: aliases: x_n: the value must be a declared tensor with \
indices, e.g. "X[n, :]"
    """
    raw = question.spec.get("aliases")
    if raw is None:
        return {}

    def fail(message, key=None):
        where = key_position(raw, key) if key is not None else key_position(question.spec, "aliases")
        raise ProblemFileError(f"question {question.id}: aliases: {message}", *where)

    if not isinstance(raw, dict):
        fail('a mapping of names to tensors, e.g. {x_n: "X[n, :]"}')
    if len(raw) > MAX_ALIASES:
        fail(f"more than {MAX_ALIASES} aliases")
    out = {}
    for key, value in raw.items():
        key_text = str(key).strip()
        m = KEY.match(key_text)
        if not m:
            fail(f"{key_text[:40]}: a name is letters with an optional subscript (x_n, v_1, x_{{n,t}})", key)
        stem, sub = m.group(1), m.group(2) or m.group(3)
        subs = [s.strip() for s in sub.split(",")] if sub else []
        parametric = bool(subs) and all(len(s) == 1 and s.isalpha() for s in subs)
        params = tuple(subs) if parametric else ()
        v = VALUE.match(str(value)) if isinstance(value, str) else None
        if not v:
            fail(f'{key_text}: the value must be a declared tensor with indices, e.g. "X[n, :]"', key)
        tensor, inside = v.group(1), v.group(2)
        items = [s.strip() for s in inside.split(",")] if inside is not None and inside.strip() else []
        pattern, seen_all = [], False
        for item in items:
            if item == ":":
                pattern.append(("all", None))
                seen_all = True
            elif item in params:
                pattern.append(("param", params.index(item)))
            elif re.fullmatch(r"-?\d{1,6}", item):
                pattern.append(("num", item))
            else:
                fail(f"{key_text}: index {item[:20]!r} is not a parameter of the name ({', '.join(params) or 'none'}),"
                     " a number or ':'", key)
        if seen_all and pattern[0][0] == "all" and not (len(pattern) == 2 and pattern[1][0] != "all"):
            fail(f"{key_text}: ':' before a fixed index only as a column of a matrix (X[:, j]); other ':' axes "
                 "come after the fixed ones (X[n, :])", key)
        if seen_all and any(a[0] == "all" and b[0] != "all" for a, b in zip(pattern[1:], pattern[2:])):
            fail(f"{key_text}: ':' axes come after the fixed ones (write X[n, :])", key)
        missing = [p for p in params if ("param", params.index(p)) not in pattern]
        if missing:
            fail(f"{key_text}: the parameter {missing[0]} is not used in {value}", key)
        if scope is not None:
            found = _lookup(scope, tensor)
            if found is None:
                fail(f"{key_text}: '{tensor}' is not a tensor the question declares", key)
            if len(pattern) > len(found.shape):
                fail(f"{key_text}: '{tensor}' has {len(found.shape)} axes, {len(pattern)} indices are given", key)
        name = stem if params else (f"{stem}_{sub}" if sub else stem)
        if name in out:
            fail(f"{key_text}: a second alias for {name}", key)
        out[name] = Alias(name, params, tensor, tuple(pattern), key_text)
    return out


def _lookup(scope, name):
    try:
        return scope.lookup(name)
    except Exception:
        return None
