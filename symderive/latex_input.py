"""Read LaTeX expressions (``$...$`` in a problem file) through latex2sympy2_extended, safely.

latex2sympy2_extended (the maintained successor of latex2sympy2, which accepts
ANTLR runtimes 4.9.3 to 4.13) parses with an ANTLR grammar (no ``eval``) into an unevaluated
SymPy tree, but it reads ``p_i`` as one symbol and knows nothing of the
problem's declarations. So its tree is rebuilt node by node through a
whitelist: declared sizes and tensors (``x_{1,2}`` becomes x[1, 2] in the
file's index base), numbers, arithmetic with bounded exponents, known
functions, and sums; anything else is refused.
"""
import re

import sympy as sp

from .errors import ExpressionError
from .expressions import MAX_DIGITS, MAX_LENGTH, check_call, check_power, parse
from .functions import relu, sigmoid

SUBSCRIPTED = re.compile(r"([A-Za-z][A-Za-z0-9]*)_\{?(.+?)\}?\Z")
LATEX_FUNCTIONS = {r"\sigma": sigmoid, "sigma": sigmoid, r"\operatorname{ReLU}": relu,
                   r"\mathrm{ReLU}": relu, r"\operatorname{relu}": relu, "ReLU": relu}
NUMBER = re.compile(r"\d+(?:\.\d+)?")
SYMPY_FUNCTIONS = (sp.exp, sp.log, sp.tanh, sp.floor, sp.ceiling, sp.Abs, sp.Max, sp.Min,
                   sigmoid, relu)


def is_latex(text):
    text = str(text).strip()
    return len(text) >= 2 and text.startswith("$") and text.endswith("$")


def parse_latex(text, scope):
    """``$...$`` to a SymPy expression over the scope's declarations.

    >>> from symderive.expressions import Scope
    >>> from symderive.tensors import Tensor
    >>> parse_latex(r"$-\\ln \\frac{1}{4}$", Scope())
    log(4)
    >>> parse_latex(r"$2 z_{3}$", Scope(tensors={'z': Tensor('z', (4,))}, base=1))
    2*z[2]
    """
    body = str(text).strip()[1:-1].strip()
    if len(body) > MAX_LENGTH:
        raise ExpressionError(f"LaTeX expression is longer than {MAX_LENGTH} characters")
    if not body:
        raise ExpressionError("empty LaTeX expression")
    stripped = str(text).strip()
    start = stripped.index(body)       # where the body starts in the value as written
    for number in NUMBER.finditer(body):   # before the parser turns it into a Float
        if sum(c.isdigit() for c in number.group(0)) > MAX_DIGITS:
            offset = start + number.start()
            raise ExpressionError(f"number longer than {MAX_DIGITS} digits", line=stripped.count("\n", 0, offset) + 1,
                                  column=offset - (stripped.rfind("\n", 0, offset) + 1) + 1)
    from .latex_matrices import to_matrix_syntax, uses_matrices
    if uses_matrices(body):                 # tr, det, ^{-1}, ^T, norms: the matrix syntax reads these
        try:
            return parse(to_matrix_syntax(body, scope), scope)
        except ExpressionError as exc:      # its column is in the rewritten text: point at the value instead
            raise ExpressionError(exc.message) from None
    try:
        raw = _latex2sympy(body)
    except RecursionError:
        raise ExpressionError("LaTeX expression is nested too deeply") from None
    except Exception as exc:  # the parser raises many kinds of errors for bad input
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"cannot read the LaTeX: {first}") from None
    return _rebuild(raw, scope, {})


def _latex2sympy(body):
    """latex2sympy2_extended's unevaluated tree, read as written: no lowercasing of N to n,
    no mixed fractions (``2 \\frac{1}{2}`` is a product), no rewriting of the input first."""
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    config = ConversionConfig(interpret_as_mixed_fractions=False, interpret_simple_eq_as_assignment=False,
                              interpret_contains_as_eq=False, lowercase_symbols=False)
    return latex2sympy(body, normalization_config=None, conversion_config=config)


def _rebuild(e, scope, bound):
    if isinstance(e, sp.Integer):
        if len(str(abs(e))) > MAX_DIGITS:
            raise ExpressionError(f"number longer than {MAX_DIGITS} digits")
        return e
    if isinstance(e, (sp.Rational, sp.Float)):
        return sp.Rational(str(e)) if isinstance(e, sp.Float) else e
    if e in (sp.pi, sp.E):
        return e
    if isinstance(e, sp.Symbol):
        return _symbol(e.name, scope, bound)
    if isinstance(e, sp.Pow):
        base, exponent = (_rebuild(a, scope, bound) for a in e.args)
        check_power(base, exponent)
        return base ** exponent
    if isinstance(e, (sp.Add, sp.Mul)):
        return e.func(*[_rebuild(a, scope, bound) for a in e.args])
    if isinstance(e, sp.log):
        args = [_rebuild(a, scope, bound) for a in e.args]
        return sp.log(*args) if len(args) == 1 or args[1] != sp.E else sp.log(args[0])
    if isinstance(e, SYMPY_FUNCTIONS):
        args = [_rebuild(a, scope, bound) for a in e.args]
        check_call(e.func.__name__, args)
        return e.func(*args)
    if isinstance(e, sp.core.function.AppliedUndef):
        name = type(e).__name__
        if name in LATEX_FUNCTIONS:
            return LATEX_FUNCTIONS[name](*[_rebuild(a, scope, bound) for a in e.args])
        raise ExpressionError(f"unknown function {name}")
    if isinstance(e, sp.Sum):
        inner = dict(bound)
        limits = []
        for var, lo, hi in e.limits:
            lo, hi = _rebuild(lo, scope, bound), _rebuild(hi, scope, bound)
            idx = sp.Idx(sp.Symbol(var.name, integer=True), (lo - scope.base, hi - scope.base))
            inner[var.name] = idx
            limits.append((idx, lo - scope.base, hi - scope.base))
        return sp.Sum(_rebuild(e.function, scope, inner), *limits)
    raise ExpressionError(f"{type(e).__name__} is not supported in a LaTeX expression")


def _symbol(name, scope, bound):
    if name in bound:
        return bound[name] + scope.base
    if name in scope.indices:
        return scope.indices[name] + scope.base
    if name in scope.sizes:
        return scope.sizes[name]
    if name in ("e",):
        return sp.E
    tensor = scope.tensor(name) if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) else None
    if tensor is not None and not tensor.shape:
        return tensor.base
    match = SUBSCRIPTED.match(name)
    if match and scope.tensor(match.group(1)) is not None:
        tensor = scope.tensor(match.group(1))
        parts = [p.strip() for p in match.group(2).split(",")]
        if len(parts) != tensor.rank:
            raise ExpressionError(f"'{match.group(1)}' has {tensor.rank} axes but {name} gives {len(parts)}")
        inner = scope.child(**{k: v for k, v in bound.items()})
        idx = tuple(parse(p, inner) - scope.base for p in parts)
        return tensor.base[idx]
    raise ExpressionError(f"'{name}' is not declared")
