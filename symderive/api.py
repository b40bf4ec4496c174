"""The library API for notebooks and scripts: declare tensors, build layers, differentiate.

Every layer kind registered under ``symderive/layers/`` with an index formula is a function
here (``conv1d``, ``softmax``, ...), built from its registration.

>>> import symderive as sd
>>> x, W = sd.tensor('x', 2, 5), sd.tensor('W', 1, 2, 3)
>>> y = sd.conv1d(x, W, stride=2, name='y')
>>> y.shape
(1, 2)
>>> sd.derivative(y, W).value
KroneckerDelta(i, p)*x[q, 2*j + r]
"""
from .errors import ExpressionError
from .layers import formula_kinds
from .display_names import parse_tex
from .tensors import Tensor, size_symbol

#: The name a layer gets when none is given, as on the course's sheets (y = f(x)).
DEFAULT_NAME = "y"


def tensor(name, *shape, tex=None):
    r"""A tensor with the given sizes (numbers, or symbols from ``sizes``); ``tex`` its display
    name (``tensor('Wx', 3, 2, tex='W_x')``), checked as in a problem file's ``tex:``."""
    return Tensor(name, shape, latex_name=parse_tex(tex) if tex is not None else None)


def sizes(names):
    """Positive-integer size symbols: ``C, H, W = sizes('C H W')``."""
    symbols = tuple(size_symbol(n) for n in names.replace(",", " ").split())
    return symbols[0] if len(symbols) == 1 else symbols


def _library_function(kind):
    def build(*tensors, name=None, tex=None, **options):
        used = _names_in(tensors)
        if name is None and DEFAULT_NAME in used:
            raise ExpressionError(f"{kind.name}(...) needs a name: its inputs already use '{DEFAULT_NAME}' "
                                  f"(e.g. {kind.name}(..., name='a'))")
        name = DEFAULT_NAME if name is None else name
        if name in used:
            raise ExpressionError(f"{kind.name}(..., name='{name}'): '{name}' already names one of its inputs")
        layer = kind.formula(name, *tensors, **options)
        layer.latex_name = parse_tex(tex) if tex is not None else name
        return layer

    build.__name__ = kind.name
    build.__doc__ = (f"{kind.name}({', '.join(kind.inputs)}, *, name='{DEFAULT_NAME}', tex=None"
                     + "".join(f", {k}=..." for k in kind.options) + ") -> Layer\n\n"
                     f"The name must differ from its inputs' (two layers called '{DEFAULT_NAME}' "
                     "would make y[i] = f(y[i]) ambiguous), so a layer built on another needs one.")
    return build


def _names_in(nodes):
    """The names of these tensors and layers and of everything they are built from."""
    found, stack = set(), [n for n in nodes if isinstance(n, Tensor)]
    while stack:
        node = stack.pop()
        if node.name not in found:
            found.add(node.name)
            stack += [n for n in getattr(node, "inputs", ()) if isinstance(n, Tensor)]
    return found


#: The layer functions, one per registered kind with an index formula (aliases left out).
LAYER_FUNCTIONS = {name: _library_function(kind) for name, kind in formula_kinds().items() if kind.library}
globals().update(LAYER_FUNCTIONS)
