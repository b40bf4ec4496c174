"""symderive: symbolic derivations for the mathematics of deep learning.

Problem files:  ``load_problem(path).solve()``, ``problem.sheet()``.
Library:        ``tensor``, ``sizes``, the layer functions (``conv1d``, ``softmax``, ...,
                one per layer kind registered under ``symderive/layers/``),
                ``derivative``, ``chain_rule``.
Errors:         ``SymderiveError`` (every error the engine raises), ``ExpressionError``.
Every result renders as LaTeX in Jupyter. Everything else is in its module
(``symderive.answer.Status``, ``symderive.shapes.conv_output_size``, ...).
"""
import sys
import types

from .errors import ExpressionError, SymderiveError
from .problem import load_problem

#: Names imported from .api and .derivative when first used: they import SymPy (a third of a
#: second), which ``python -m symderive list`` does not need.
_LIBRARY = {"sizes": "api", "tensor": "api", "LAYER_FUNCTIONS": "api", "chain_rule": "derivative"}


class _Package(types.ModuleType):
    """``symderive.derivative`` is the function, though a submodule has the same name: importing
    the submodule would otherwise replace the package's attribute with the module."""

    @property
    def derivative(self):
        from .derivative import derivative
        return derivative

    @derivative.setter
    def derivative(self, submodule):
        pass                         # the import system recording the submodule: it stays in sys.modules


sys.modules[__name__].__class__ = _Package


def _layer_functions():
    from .api import LAYER_FUNCTIONS
    globals().update(LAYER_FUNCTIONS)
    return LAYER_FUNCTIONS


def __getattr__(name):
    """The library (``tensor``, ``derivative``, the layer functions ...), imported on first use;
    ``symderive.__version__``: the installed distribution's version, read only when asked for."""
    if name in _LIBRARY:
        import importlib
        value = getattr(importlib.import_module(f".{_LIBRARY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name == "__all__":
        return [*_PUBLIC, *_layer_functions()]
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("symderive")
        except PackageNotFoundError:
            return "unknown"
    if not name.startswith("_") and not _is_submodule(name) and name in _layer_functions():
        return globals()[name]
    raise AttributeError(f"module 'symderive' has no attribute {name!r}")


def _is_submodule(name):
    """``from . import x`` asks the package for ``x`` before importing the submodule ``x``."""
    import os
    here = os.path.dirname(__file__)
    return os.path.exists(os.path.join(here, f"{name}.py")) or os.path.isdir(os.path.join(here, name))


def __dir__():
    return sorted({*globals(), *_LIBRARY, "derivative", *_layer_functions()})


_PUBLIC = ["load_problem", "tensor", "sizes", "derivative", "chain_rule", "SymderiveError", "ExpressionError"]
