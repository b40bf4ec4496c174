"""symderive: symbolic derivations for the mathematics of deep learning.

Problem files:  ``load_problem(path).solve()``, ``problem.sheet()``.
Library:        ``tensor``, ``sizes``, the layer functions (``conv1d``, ``softmax``, ...,
                one per layer kind registered under ``symderive/layers/``),
                ``derivative``, ``chain_rule``.
Errors:         ``SymderiveError`` (every error the engine raises), ``ExpressionError``.
Every result renders as LaTeX in Jupyter. Everything else is in its module
(``symderive.answer.Status``, ``symderive.shapes.conv_output_size``, ...).
"""
from . import sympy_fixes
sympy_fixes.install()           # before any formula is built  # noqa: E402

from .api import LAYER_FUNCTIONS, sizes, tensor  # noqa: E402
from .derivative import chain_rule, derivative  # noqa: E402
from .errors import ExpressionError, SymderiveError  # noqa: E402
from .problem import load_problem  # noqa: E402

globals().update(LAYER_FUNCTIONS)


def __getattr__(name):
    """``symderive.__version__``: the installed distribution's version, read only when asked for."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("symderive")
        except PackageNotFoundError:
            return "unknown"
    raise AttributeError(f"module 'symderive' has no attribute {name!r}")

__all__ = [
    "load_problem", "tensor", "sizes", "derivative", "chain_rule", *LAYER_FUNCTIONS,
    "SymderiveError", "ExpressionError",
]
