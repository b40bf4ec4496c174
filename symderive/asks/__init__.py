"""Question kinds ("asks"): one module each, found by looking.

A new kind of question is one new module named after it, with a ``solve(ctx) -> Answer``
function and a ``KEYS`` set of the question keys it reads: nothing else needs to learn its
name (its ``--verify`` cross-check registers itself under ``symderive/verify/``). Modules
without both (``context``, ``matrix_view``) are helpers.
"""
import importlib
import pkgutil
from dataclasses import dataclass

from .context import Context


@dataclass(frozen=True)
class Ask:
    solve: object
    keys: frozenset


def _discover():
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "solve") and hasattr(module, "KEYS"):
            found[info.name] = Ask(module.solve, frozenset(module.KEYS))
    return found


#: ask name (its module's name) -> how to solve it and the question keys it reads.
ASKS = _discover()

__all__ = ["ASKS", "Ask", "Context"]
