"""Output sizes of convolution and pooling, with the floor, in numbers or symbols.

One formula serves both (PyTorch's, with ``ceil_mode=False``):

    out = ⌊(n + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1
"""
import sympy as sp

from .errors import ShapeError


def conv_output_size(n, kernel, stride=1, padding=0, dilation=1):
    """Output length along one axis.

    >>> conv_output_size(10, 3, stride=2)
    4
    >>> H, K, P, S, D = sp.symbols('H K P S D', integer=True, positive=True)
    >>> conv_output_size(H, K, S, P, D)
    floor((-D*(K - 1) + H + 2*P - 1)/S) + 1
    """
    n, kernel, stride, padding, dilation = map(sp.sympify, (n, kernel, stride, padding, dilation))
    check_hyperparameters(kernel, stride, padding, dilation)
    extent = dilation * (kernel - 1) + 1
    padded = n + 2 * padding
    if (padded - extent).is_negative:
        raise ShapeError(
            f"kernel extent {extent} (kernel {kernel}, dilation {dilation}) is larger than "
            f"the padded input {padded} (input {n}, padding {padding})")
    return sp.floor((padded - extent) / stride) + 1


def check_hyperparameters(kernel, stride, padding, dilation):
    """Refuse values PyTorch would refuse: non-positive kernel, stride, dilation; negative padding."""
    for name, value, least in (("kernel size", kernel, 1), ("stride", stride, 1),
                               ("dilation", dilation, 1), ("padding", padding, 0)):
        value = sp.sympify(value)
        if value.is_number and (not value.is_integer or value < least):
            bound = "a positive integer" if least else "a non-negative integer"
            raise ShapeError(f"{name} must be {bound}, got {value}")


def same_padding(n, kernel, stride=1, dilation=1):
    """Padding P that keeps the output length equal to the input (stride 1): P = d(k−1)/2."""
    return sp.sympify(dilation) * (sp.sympify(kernel) - 1) / 2


def pool_output_size(n, kernel, stride, padding=0, dilation=1, ceil_mode=False):
    """Output length of a pooling along one axis, PyTorch's ``pooling_output_shape``: with
    ``ceil_mode`` the division rounds up, but the last window must start inside the input or
    its left padding. Padding is at most half the kernel, as PyTorch requires.

    >>> pool_output_size(5, 2, 2, padding=1, ceil_mode=True)    # the 4th window would start in the right padding
    3
    >>> pool_output_size(6, 3, 2, ceil_mode=True), pool_output_size(6, 3, 2)
    (3, 2)
    """
    n, kernel, stride, padding, dilation = map(sp.sympify, (n, kernel, stride, padding, dilation))
    if (2 * padding - dilation * (kernel - 1) - 1).is_positive:
        raise ShapeError(f"padding {padding} must be at most half the kernel size {kernel}")
    if not ceil_mode:
        return conv_output_size(n, kernel, stride, padding, dilation)
    conv_output_size(n, kernel, stride, padding, dilation)        # the same checks
    out = sp.ceiling((n + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
    starts_outside = sp.simplify((out - 1) * stride - n - padding)
    if starts_outside.is_nonnegative:
        return out - 1
    if starts_outside.is_negative:
        return out
    raise ShapeError(f"ceil_mode: cannot decide whether the last window starts inside the input for "
                     f"symbolic sizes ((out − 1)·stride − n − padding = {starts_outside}); give numbers")
