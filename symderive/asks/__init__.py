"""Question kinds ("asks"): one module each, found by looking.

A new kind of question is one new module named after it, with a ``solve(ctx) -> Answer``
function, a ``KEYS`` set of the question keys it reads, and its ``--verify`` cross-check
``check(job)`` (torch imported inside; shared helpers in ``symderive/verify/``) or a
``NOTHING_TO_CHECK`` reason, ``USES_VALUES = True`` when it computes with declared tensor values
itself (otherwise ``declared_values`` puts them into its answer or refuses them), and, when reading
a student's answer needs more than the
question's scope, ``grading(question, decls)``: nothing else needs to learn its name. Modules without
``solve`` and ``KEYS`` (``context``, ``matrix_view``) are helpers.
"""
import ast
import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path


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


_DECLARED_KEYS = re.compile(r"^KEYS = (\{[^}\n]*\})$", re.MULTILINE)
_SOLVE = re.compile(r"^def solve\(", re.MULTILINE)
_declared = None


def question_keys():
    """ask name -> the question keys it reads, for checking a problem file's structure.

    Read from each ask module's source (its ``KEYS = {...}`` line) without importing it:
    importing the asks imports SymPy, a third of a second that ``list`` does not need. Once
    ``ASKS`` is loaded (to solve), its keys are the answer, so an ask registered at run time counts.
    ``tests/test_registry.py`` checks that both agree.
    """
    global _declared
    if "ASKS" in globals():
        return {name: ask.keys for name, ask in globals()["ASKS"].items()}
    if _declared is None:
        _declared = {}
        for info in pkgutil.iter_modules(__path__):
            if info.ispkg:
                continue
            source = Path(__path__[0], f"{info.name}.py").read_text(encoding="utf-8")
            keys = _DECLARED_KEYS.search(source)
            if keys and _SOLVE.search(source):
                _declared[info.name] = frozenset(ast.literal_eval(keys.group(1)))
    return _declared


def __getattr__(name):
    """``ASKS`` (ask name (its module's name) -> how to solve it and the question keys it reads)
    and ``Context`` are loaded when first asked for: they import SymPy and every ask."""
    if name == "ASKS":
        globals()["ASKS"] = _discover()
        return globals()["ASKS"]
    if name == "Context":
        from .context import Context
        return Context
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ASKS", "Ask", "Context", "question_keys"]
