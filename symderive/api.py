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
from .layers import formula_kinds
from .tensors import Tensor, size_symbol


def tensor(name, *shape):
    """A tensor with the given sizes (numbers, or symbols from ``sizes``)."""
    return Tensor(name, shape)


def sizes(names):
    """Positive-integer size symbols: ``C, H, W = sizes('C H W')``."""
    symbols = tuple(size_symbol(n) for n in names.replace(",", " ").split())
    return symbols[0] if len(symbols) == 1 else symbols


def _library_function(kind):
    def build(*tensors, name="y", **options):
        return kind.formula(name, *tensors, **options)

    build.__name__ = kind.name
    build.__doc__ = (f"{kind.name}({', '.join(kind.inputs)}, *, name='y'"
                     + "".join(f", {k}=..." for k in kind.options) + ") -> Layer")
    return build


#: The layer functions, one per registered kind with an index formula (aliases left out).
LAYER_FUNCTIONS = {name: _library_function(kind) for name, kind in formula_kinds().items() if kind.library}
globals().update(LAYER_FUNCTIONS)
