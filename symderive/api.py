"""The library API for notebooks and scripts: declare tensors, build layers, differentiate.

>>> import symderive as sd
>>> x, W = sd.tensor('x', 2, 5), sd.tensor('W', 1, 2, 3)
>>> y = sd.conv1d(x, W, stride=2, name='y')
>>> y.shape
(1, 2)
>>> sd.derivative(y, W).value
KroneckerDelta(i, p)*x[q, 2*j + r]
"""
from .layers import LAYERS
from .tensors import Tensor, size_symbol


def tensor(name, *shape):
    """A tensor with the given sizes (numbers, or symbols from ``sizes``)."""
    return Tensor(name, shape)


def sizes(names):
    """Positive-integer size symbols: ``C, H, W = sizes('C H W')``."""
    symbols = tuple(size_symbol(n) for n in names.replace(",", " ").split())
    return symbols[0] if len(symbols) == 1 else symbols


def _library_function(kind):
    builder, positional, keywords = LAYERS[kind]

    def build(*tensors, name="y", **options):
        return builder(name, *tensors, **options)

    build.__name__ = kind
    build.__doc__ = (f"{kind}({', '.join(positional)}, *, name='y'"
                     + "".join(f", {k}=..." for k in keywords) + ") -> Layer")
    return build


conv1d = _library_function("conv1d")
conv2d = _library_function("conv2d")
avg_pool1d = _library_function("avg_pool1d")
avg_pool2d = _library_function("avg_pool2d")
max_pool1d = _library_function("max_pool1d")
max_pool2d = _library_function("max_pool2d")
linear = _library_function("linear")
sigmoid = _library_function("sigmoid")
tanh = _library_function("tanh")
relu = _library_function("relu")
softmax = _library_function("softmax")
cross_entropy = _library_function("cross_entropy")
mse = _library_function("mse")
sum_of_squares = _library_function("sum_of_squares")
