"""Activation functions as SymPy functions whose derivatives are the textbook identities.

Defining ``sigmoid`` with ``fdiff = σ(1 − σ)`` means every derivative the engine
takes comes out in the form a course writes it, instead of as exponentials.
``tanh`` is SymPy's own, whose derivative is already ``1 − tanh²``.
"""
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


#: Functions a problem file may call by name, besides the layer library.
KNOWN_FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "floor": sp.floor,
    "ceiling": sp.ceiling,
    "Abs": sp.Abs,
    "Max": sp.Max,
    "Min": sp.Min,
}

#: Constants a problem file may name.
KNOWN_CONSTANTS = {"pi": sp.pi, "E": sp.E, "oo": sp.oo}
