"""Entry-by-entry activations: ``sigmoid``, ``tanh``, ``relu`` (index formulas and ``Sigmoid()``,
``Tanh()``, ``ReLU()`` stack entries) and the stack-only ``Identity()``."""
import sympy as sp

from ..functions import relu, sigmoid
from .base import Layer, entry
from .registry import LayerKind, Signature, TorchOp, register
from .stack import NetActivation


class Elementwise(Layer):
    """y[i…] = f(x[i…]) for f in sigmoid, tanh, relu."""

    FUNCTIONS = {"sigmoid": sigmoid, "tanh": sp.tanh, "relu": relu}

    def __init__(self, name, x, function):
        self.kind, self.function, self.x = function, self.FUNCTIONS[function], x
        super().__init__(name, [x], x.shape)

    def definition(self, idx, avoid=()):
        return self.function(entry(self.x, idx))


def _torch_function(function):
    def compute(layer, get, num):
        import torch
        return getattr(torch, function)(get(layer.x))
    return compute


def stack_entry(module, **torch_options):
    """The ``network:`` side of a parameter-free activation: ``module()`` read into a NetActivation,
    computed by ``torch.nn.<module>(**torch_options)``. Returned as LayerKind fields."""
    def torch_module(layer, num, bias):
        import torch
        return getattr(torch.nn, module)(**torch_options, **layer.options)

    def build(name, call, text, node, **options):
        return NetActivation(name, call, text, node, module, **options)
    options = ", ".join(f"{k}={v}" for k, v in torch_options.items())
    return dict(module=module, signature=Signature(build, (), 0, {}), torch_module=torch_module,
                torch_module_name=f"torch.nn.{module}" + (f"({options})" if options else ""))


for _function, _module in (("sigmoid", "Sigmoid"), ("tanh", "Tanh"), ("relu", "ReLU")):
    register(LayerKind(_function, lambda n, x, f=_function: Elementwise(n, x, f),
                       torch=TorchOp(f"torch.{_function}", _torch_function(_function)), **stack_entry(_module)))
register(LayerKind("identity", **stack_entry("Identity")))
