"""Entry-by-entry activations: ``sigmoid``, ``tanh``, ``relu`` (index formulas and ``Sigmoid()``,
``Tanh()``, ``ReLU()`` stack entries) and the stack-only ``Identity()``."""
import sympy as sp

from ..functions import relu, sigmoid
from ..latex import matrix, tex_name
from .base import Layer, entry
from .registry import LayerKind, NumericRule, Signature, TorchOp, register
from .stack import NetActivation


class Elementwise(Layer):
    """y[i…] = f(x[i…]) for f in sigmoid, tanh, relu."""

    FUNCTIONS = {"sigmoid": sigmoid, "tanh": sp.tanh, "relu": relu}

    def __init__(self, name, x, function):
        self.kind, self.function, self.x = function, self.FUNCTIONS[function], x
        super().__init__(name, [x], x.shape)

    def definition(self, idx, avoid=()):
        return self.function(entry(self.x, idx))


class EntryFunction(Layer):
    """y[i…] = f(x[i…]) for an activation with options (ELU's alpha, softplus's beta): a subclass
    gives ``kind``, ``OPTIONS`` (name -> PyTorch's default) and ``function(x)`` for one entry,
    written with functions the engine already differentiates and evaluates (ReLU, exp, erf, ...)."""

    OPTIONS = {}

    def __init__(self, name, x, **options):
        unknown = set(options) - set(self.OPTIONS)
        if unknown:
            raise TypeError(f"{self.kind}() has no argument '{sorted(unknown)[0]}'")
        self.x = x
        self.options = {k: options.get(k, default) for k, default in self.OPTIONS.items()}
        for k, v in self.options.items():
            setattr(self, k, v if isinstance(v, str) else sp.sympify(v))
        super().__init__(name, [x], x.shape)

    def function(self, x):
        raise NotImplementedError

    def definition(self, idx, avoid=()):
        return self.function(entry(self.x, idx))

    def describe(self):
        given = ", ".join(f"{k} {getattr(self, k)}" for k in self.OPTIONS)
        return f"{self.kind}, {given}" if given else self.kind


def _torch_function(function):
    def compute(layer, get, num):
        import torch
        return getattr(torch, function)(get(layer.x))
    return compute


def stack_entry(module, arguments=(), numeric=None, choices=None, **torch_options):
    """The ``network:`` side of a parameter-free activation, as LayerKind fields: ``module(...)``
    (with real-number ``arguments`` such as a slope, and string ``choices`` such as GELU's
    ``approximate``) read into a NetActivation and computed by
    ``torch.nn.<module>(**torch_options, **arguments)``."""
    choices = dict(choices or {})

    def torch_module(layer, num, bias):
        import torch
        given = {k: v if isinstance(v, str) else float(v) for k, v in layer.options.items()}
        return getattr(torch.nn, module)(**torch_options, **given)

    def build(name, call, text, node, **options):
        return NetActivation(name, call, text, node, module, **options)
    options = ", ".join(f"{k}={v}" for k, v in torch_options.items())
    numbers = tuple(a for a in arguments if a not in choices)
    return dict(module=module, signature=Signature(build, tuple(arguments), 0, {}, numbers=numbers, choices=choices),
                torch_module=torch_module, numeric=numeric, activation=True,
                torch_module_name=f"torch.nn.{module}" + (f"({options})" if options else ""))


# ---------------------------------------------------------------------------------------------
# Exact numeric passes (numeric_network): each derivative in the form a course writes it


def _relu_forward(net, layer, name_in, x):
    in_tex = tex_name(name_in)
    signs = [net.sign(net.full(v), f"{name_in}[{i + 1}]") for i, v in enumerate(x)]
    value = sp.Matrix([v if s > 0 else 0 for v, s in zip(x, signs)])
    latex = rf"\operatorname{{ReLU}}({in_tex})"
    return value, latex, f"{layer.name}: ReLU entry by entry (negative entries become 0)"


def _relu_backward(net, layer, step):
    name_in, grad = step.name_in, step.grad
    mask = sp.Matrix([1 if net.sign(net.full(v), f"{name_in}[{i + 1}]") > 0 else 0
                      for i, v in enumerate(step.x_in)])
    below = sp.matrix_multiply_elementwise(mask, grad)
    step.record(rf"{step.target} = H({tex_name(name_in)}) \odot {step.d_out} = {matrix(mask)} \odot "
                rf"{matrix(grad)} = {net.shown(below)}",
                f"ReLU's derivative is the step H: 1 where {name_in} > 0, else 0 (the mask)")
    return below


def _smooth(function, latex_name, derivative, shown):
    """The rule of an activation whose derivative is written with its output: tanh' = 1 − y²."""
    def forward(net, layer, name_in, x):
        kind = layer.kind
        value = x.applyfunc(lambda v: net.tidy(function(v)) if kind == "Identity" else net.abbreviate(function(v)))
        latex = rf"{latex_name}({tex_name(name_in)})"
        return value, latex, f"{layer.name}: {kind.lower()} entry by entry"

    def backward(net, layer, step):
        factor = step.y.applyfunc(derivative)
        below = sp.matrix_multiply_elementwise(factor, step.grad).applyfunc(net.tidy)
        step.record(rf"{step.target} = {shown(tex_name(layer.name))} \odot {step.d_out} = {net.shown(below)}",
                    f"{layer.kind.lower()}'s derivative, written with its output")
        return below
    return NumericRule(forward, backward)


NUMERIC = {
    "relu": NumericRule(_relu_forward, _relu_backward),
    "tanh": _smooth(sp.tanh, r"\tanh", lambda v: 1 - v ** 2, lambda y: rf"\left(1 - {y}^{{2}}\right)"),
    "sigmoid": _smooth(sigmoid, r"\sigma", lambda v: v * (1 - v), lambda y: rf"{y}\left(1 - {y}\right)"),
    "identity": _smooth(lambda v: v, r"\operatorname{id}", lambda v: sp.Integer(1), lambda y: "1"),
}


for _function, _module in (("sigmoid", "Sigmoid"), ("tanh", "Tanh"), ("relu", "ReLU")):
    register(LayerKind(_function, lambda n, x, f=_function: Elementwise(n, x, f),
                       torch=TorchOp(f"torch.{_function}", _torch_function(_function)),
                       **stack_entry(_module, numeric=NUMERIC[_function])))
register(LayerKind("identity", **stack_entry("Identity", numeric=NUMERIC["identity"])))
