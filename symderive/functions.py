"""Activation functions as SymPy functions whose derivatives are the textbook identities.

Defining ``sigmoid`` with ``fdiff = σ(1 − σ)`` means every derivative the engine
takes comes out in the form a course writes it, instead of as exponentials.
``tanh`` is SymPy's own, whose derivative is already ``1 − tanh²``.
"""
import math
from dataclasses import dataclass

import sympy as sp


class sigmoid(sp.Function):
    """The logistic function σ(x) = 1 / (1 + e^(−x)).

    >>> from sympy import Symbol
    >>> x = Symbol('x')
    >>> sigmoid(x).diff(x)
    (1 - sigmoid(x))*sigmoid(x)
    >>> sigmoid(0)
    1/2
    """

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Half

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return 1 / (1 + sp.exp(-arg))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        tex = r"\sigma\left(%s\right)" % printer._print(self.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)


class relu(sp.Function):
    """max(x, 0); its derivative is the step H(x) with H(0) = 0, as in PyTorch.

    >>> from sympy import Rational, Symbol
    >>> relu(Rational(-3, 2)), relu(2)
    (0, 2)
    >>> relu(Symbol('x')).diff(Symbol('x'))
    Heaviside(x, 0)
    """

    @classmethod
    def eval(cls, arg):
        if arg.is_extended_nonnegative:
            return arg
        if arg.is_extended_negative:
            return sp.S.Zero

    def fdiff(self, argindex=1):
        return sp.Heaviside(self.args[0], 0)

    def _eval_rewrite_as_Max(self, arg, **kwargs):
        return sp.Max(arg, 0)

    def _latex(self, printer, exp=None):
        tex = r"\operatorname{ReLU}\left(%s\right)" % printer._print(self.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)


class sigmoid_prime(sp.Function):
    """σ'(z) = σ(z)(1 − σ(z)), the derivative of a sigmoid layer as courses name it (δ₁ = δ₂W₂ᵀ ⊙ σ'(z₁));
    made only by ``course_forms.sigmoid_derivative`` for a matrix form, never read from a file.

    >>> from sympy import Symbol
    >>> z = Symbol('z')
    >>> sigmoid_prime(z).rewrite(sigmoid), sigmoid_prime(0)
    ((1 - sigmoid(z))*sigmoid(z), 1/4)
    """

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.Rational(1, 4)

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s) * (1 - 2 * s)

    def _eval_rewrite_as_sigmoid(self, arg, **kwargs):
        return sigmoid(arg) * (1 - sigmoid(arg))

    def _eval_evalf(self, prec):
        return self.rewrite(sigmoid).rewrite(sp.exp)._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        tex = r"\sigma'\left(%s\right)" % printer._print(self.args[0])
        return tex if exp is None else r"\left(%s\right)^{%s}" % (tex, exp)


class detach(sp.Function):
    """A stop-gradient, PyTorch's ``detach``: its value is its argument, its derivative is 0 (a DQN's
    target network, the target of a semi-gradient TD update, SimSiam's sg(z)). Written sg(·) as papers do.

    >>> from sympy import Symbol
    >>> w = Symbol('w')
    >>> (w * detach(w ** 2)).diff(w), detach(3)
    (detach(w**2), 3)
    """

    @classmethod
    def eval(cls, arg):
        if arg.is_number:
            return arg

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _eval_evalf(self, prec):
        return self.args[0]._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        tex = r"\operatorname{sg}\left(%s\right)" % printer._print(self.args[0])
        return tex if exp is None else r"%s^{%s}" % (tex, exp)


def _identity(a):
    return a


def _sigmoid_prime(a):
    import numpy
    s = 1 / (1 + numpy.exp(-a))
    return s * (1 - s)


@dataclass(frozen=True)
class Function:
    """One function of one argument, with every form of it the engine uses, so that a new
    function is one entry here. ``math``, ``numpy`` and ``torch`` (a name in ``torch``, which
    is imported only where a cross-check runs) compute it; ``latex`` writes it in matrix forms;
    ``derivative`` is f′(a) as a course writes it (``checking`` reads students' f′)."""
    name: str
    sympy: object
    math: object
    numpy: object
    torch: str
    latex: str = None
    derivative: object = None
    in_files: bool = True        # a problem file may call it by ``name``


def _numpy(name):
    """numpy.<name>, looked up when first called: the light commands (list) never load NumPy."""
    def call(*args):
        import numpy
        return getattr(numpy, name)(*args)
    call.__name__ = name
    return call


def _vectorized(function):
    """A math function of one float applied entry by entry with NumPy (NumPy has no ``erf``)."""
    def call(a):
        import numpy
        return numpy.vectorize(function, otypes=[float])(a)
    call.__name__ = function.__name__
    return call


def _sign(a):
    return float((a > 0) - (a < 0))


FUNCTIONS = (
    Function("exp", sp.exp, math.exp, _numpy("exp"), "exp", r"\exp", sp.exp),
    Function("log", sp.log, math.log, _numpy("log"), "log", r"\log", lambda a: 1 / a),
    Function("tanh", sp.tanh, math.tanh, _numpy("tanh"), "tanh", r"\tanh", lambda a: 1 - sp.tanh(a) ** 2),
    Function("sigmoid", sigmoid, lambda a: 1 / (1 + math.exp(-a)), lambda a: 1 / (1 + _numpy("exp")(-a)), "sigmoid",
             r"\sigma", lambda a: sigmoid(a) * (1 - sigmoid(a))),
    Function("relu", relu, lambda a: max(a, 0.0), lambda a: _numpy("maximum")(a, 0.0), "relu", r"\operatorname{ReLU}",
             lambda a: sp.Heaviside(a, 0)),
    # GELU's Φ(x) = (1 + erf(x/√2))/2; sign is |x|′ (Huber's loss beyond delta, norm(v, 1)), 0 at 0 as torch.sign
    Function("erf", sp.erf, math.erf, _vectorized(math.erf), "erf", r"\operatorname{erf}",
             lambda a: 2 * sp.exp(-a ** 2) / sp.sqrt(sp.pi)),
    Function("sign", sp.sign, _sign, _numpy("sign"), "sign", r"\operatorname{sign}", lambda a: sp.S.Zero),
    Function("sigmoid_prime", sigmoid_prime, lambda a: _sigmoid_prime(a), _sigmoid_prime, None, r"\sigma'",
             lambda a: sigmoid_prime(a) * (1 - 2 * sigmoid(a)), in_files=False),
    # a stop-gradient: identity forwards, derivative 0 (torch.detach)
    Function("detach", detach, _identity, _identity, "detach", r"\operatorname{sg}", lambda a: sp.S.Zero),
    Function("floor", sp.floor, math.floor, _numpy("floor"), "floor"),
    Function("ceiling", sp.ceiling, math.ceil, _numpy("ceil"), "ceil"),
    Function("Abs", sp.Abs, abs, _numpy("abs"), "abs"),
    Function("sin", sp.sin, math.sin, _numpy("sin"), "sin", in_files=False),
    Function("cos", sp.cos, math.cos, _numpy("cos"), "cos", in_files=False),
)


def forms(form):
    """{SymPy function: its ``form`` ('math', 'numpy', 'latex', ...)} for the functions that have it.

    >>> float(forms('numpy')[sigmoid](0.0)), forms('torch')[relu]
    (0.5, 'relu')
    """
    return {f.sympy: getattr(f, form) for f in FUNCTIONS if getattr(f, form) is not None}


#: Functions a problem file may call by name, besides the layer library.
KNOWN_FUNCTIONS = {**{f.name: f.sympy for f in FUNCTIONS if f.in_files},
                   "ln": sp.log, "sqrt": sp.sqrt, "Max": sp.Max, "Min": sp.Min}

#: Constants a problem file may name.
KNOWN_CONSTANTS = {"pi": sp.pi, "E": sp.E, "oo": sp.oo}
