"""The layer kinds, one module each, and the registry that collects them.

A kind module (``conv.py``, ``softmax.py``, ...) defines its index-formula layer and its
``network:`` stack entry and registers a ``LayerKind`` with everything the engine does with
it (``registry.py``). Every module in this package is imported here, so a new kind is one new
file: nothing else needs to learn its name.
"""
import importlib
import pkgutil

from .base import Layer, entry, expand_layers
from .registry import (KINDS, MODULES, LayerKind, MissingRule, NumericRule, Signature, TorchOp, formula_kind,
                       formula_kinds, module_kind, op_for, register, torch_module)

_INFRASTRUCTURE = {"base", "registry", "stack"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

from .activations import Elementwise  # noqa: E402  (the names modules and tests import from here)
from .conv import Conv, conv1d, conv2d  # noqa: E402
from .linear import Linear  # noqa: E402
from .losses import Loss  # noqa: E402
from .pool import Pool  # noqa: E402
from .softmax import Softmax  # noqa: E402

__all__ = ["Layer", "entry", "expand_layers", "LayerKind", "MissingRule", "NumericRule", "Signature", "TorchOp", "KINDS",
           "MODULES", "formula_kind", "formula_kinds", "module_kind", "op_for", "register", "torch_module",
           "Conv", "Pool", "Elementwise", "Softmax", "Linear", "Loss", "conv1d", "conv2d"]
