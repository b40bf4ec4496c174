"""Question kinds ("asks"): one module each, found by looking.

A new kind of question is one new module named after it, with a ``solve(ctx) -> Answer``
function, a ``KEYS`` set of the question keys it reads, and its ``--verify`` cross-check
``check(job)`` (torch imported inside; shared helpers in ``symderive/verify/``) or a
``NOTHING_TO_CHECK`` reason, ``USES_VALUES = True`` when it computes with declared tensor values
itself (otherwise ``declared_values`` puts them into its answer or refuses them), and, when reading a student's answer needs more than the
question's scope, ``grading(question, decls)``: nothing else needs to learn its name. Modules without
``solve`` and ``KEYS`` (``context``, ``matrix_view``) are helpers.
"""
import importlib
import pkgutil
from dataclasses import dataclass

from .context import Context


@dataclass(frozen=True)
class Ask:
    solve: object
    keys: frozenset
    check: object = None             # check(job): the --verify cross-check (verify.Job)
    nothing_to_check: str = ""       # why there is nothing to cross-check, when there is no check
    grading: object = None           # grading(question, decls) -> what checking needs to read answers
    uses_values: bool = False        # USES_VALUES: the ask computes with declared tensor values itself


def _discover():
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "solve") and hasattr(module, "KEYS"):
            found[info.name] = Ask(module.solve, frozenset(module.KEYS), getattr(module, "check", None),
                                   getattr(module, "NOTHING_TO_CHECK", ""), getattr(module, "grading", None),
                                   getattr(module, "USES_VALUES", False))
    return found


#: ask name (its module's name) -> how to solve it and the question keys it reads.
ASKS = _discover()

__all__ = ["ASKS", "Ask", "Context"]
