"""The optional ``tolerance:`` of a question: how close a numeric answer must be.

``tolerance: 0.001`` (absolute), ``tolerance: "1%"`` (relative), or a mapping
``{absolute: 0.001, relative: 0.01}`` (both must hold). Without it, a number must agree
with the exact value to the precision the student wrote (one unit in the last digit)
and to 1% relative.
"""
from dataclasses import dataclass

import sympy as sp

from ..errors import ProblemFileError
from ..yaml_positions import key_position

DEFAULT_RELATIVE = sp.Rational(1, 100)


@dataclass(frozen=True)
class Tolerance:
    absolute: object = None
    relative: object = None

    def describe(self):
        parts = []
        if self.absolute is not None:
            parts.append(f"±{float(self.absolute):g}")
        if self.relative is not None:
            parts.append(f"{float(self.relative) * 100:g}%")
        return " and ".join(parts)


def _number(value, question, what):
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str) and value.strip().endswith("%"):
            return sp.Rational(value.strip()[:-1].strip()) / 100
        number = sp.Rational(str(value))
    except (TypeError, ValueError):
        raise ProblemFileError(f"question {question.id}: tolerance {what} must be a number "
                               f"(or a percentage such as \"1%\"), got {value!r}",
                               *key_position(question.spec, "tolerance")) from None
    if number < 0:
        raise ProblemFileError(f"question {question.id}: tolerance must not be negative",
                               *key_position(question.spec, "tolerance"))
    return number


def read_tolerance(question):
    """The question's Tolerance, or None for the default rule; ProblemFileError when malformed."""
    spec = question.spec.get("tolerance")
    if spec is None:
        return None
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in ("absolute", "relative")]
        if unknown or not spec:
            raise ProblemFileError(f"question {question.id}: tolerance has the keys absolute and relative",
                                   *key_position(question.spec, "tolerance"))
        return Tolerance(_number(spec["absolute"], question, "absolute") if "absolute" in spec else None,
                         _number(spec["relative"], question, "relative") if "relative" in spec else None)
    if isinstance(spec, str) and spec.strip().endswith("%"):
        return Tolerance(relative=_number(spec, question, "relative"))
    return Tolerance(absolute=_number(spec, question, "absolute"))
