"""What every entry of a ``network:`` stack is (``NetLayer``), and the shapes it maps.

A stack entry is written with PyTorch's class name and arguments (``Conv2d(3, 10,
kernel_size=3)``); the kind modules of this package subclass ``NetLayer`` for what a
kind does in a stack: parameter count, output shape, receptive field. Reading the
calls and the stack itself is ``symderive/network.py``.
"""
from dataclasses import dataclass

import sympy as sp

from ..errors import ExpressionError, ShapeError
from ..shapes import conv_output_size
from ..yaml_positions import locate
from .registry import MODULES


def in_file(exc, text):
    """Translate an error's position inside the string ``text`` to the file, once."""
    if not getattr(exc, "in_file", False):
        exc = locate(exc, text)
        exc.in_file = True
    return exc


@dataclass(frozen=True)
class FeatureShape:
    """A feature map: batch size (or None), channels, spatial sizes, and the letters to print it in.

    ``channels`` or ``spatial`` is None when unknown (no input shape was declared).
    """
    batch: object
    channels: object
    spatial: tuple
    layout: str

    @property
    def known(self):
        return self.channels is not None and self.spatial is not None

    def dims(self):
        spatial = dict(zip("HW" if len(self.spatial or ()) == 2 else "L", self.spatial or ()))
        values = {"N": self.batch, "C": self.channels, **spatial}
        return tuple(values[letter] for letter in self.layout)

    def latex(self):
        if not self.known:
            return r"\text{unknown}"
        return r" \times ".join(sp.latex(d) for d in self.dims())

    def text(self):
        return "×".join(str(d) for d in self.dims()) if self.known else "unknown"

    def flat(self, features):
        layout = "NC" if "N" in self.layout else "C"
        return FeatureShape(self.batch, features, (), layout)

    def with_(self, channels=None, spatial=None):
        return FeatureShape(self.batch, self.channels if channels is None else channels,
                            self.spatial if spatial is None else spatial, self.layout)


@dataclass
class Count:
    """A parameter count: the value and how it is computed (LaTeX)."""
    value: object
    latex: str


def dot_latex(*factors):
    return r" \cdot ".join(sp.latex(f) for f in factors)


class NetLayer:
    """One entry of a layer stack. Subclasses set ``kind`` and implement what they support."""

    dims = None          # spatial dimensions it works on (1 or 2), None for any
    has_weights = False

    def __init__(self, name, call, text, node):
        self.name, self.call, self.text, self.node = name, call, text, node

    def error(self, message, cls=ShapeError):
        """An error located at this layer's call in the problem file."""
        exc = cls(f"layer '{self.name}' ({self.call}): {message}", line=getattr(self.node, "lineno", None),
                  column=getattr(self.node, "col_offset", 0) + 1)
        return in_file(exc, self.text)

    # Parameter count ---------------------------------------------------------------------
    def count(self, mode):
        """Count of parameters with ``mode`` 'with', 'without' or 'declared'."""
        return Count(sp.Integer(0), "0")

    def count_note(self):
        return "no parameters"

    # Shapes ------------------------------------------------------------------------------
    def output(self, shape):
        return shape

    def axis_steps(self, shape):
        """(latex, why) lines showing how the output size along each axis is computed."""
        return []

    # Receptive field --------------------------------------------------------------------
    def receptive(self, r, j):
        """(r, j) after this layer, per spatial axis: r_out = r_in + d(k−1)·j_in, j_out = j_in·s."""
        return r, j

    def multiply_adds(self, shape_in, shape_out):
        return sp.Integer(0)

    def flatten(self):
        return [self]

    def describe(self):
        return self.call

    def value_tensors(self):
        """Declared tensors whose values a numeric pass needs (weights, a mask), in order."""
        return ()

    def flat_size(self, size):
        """The length of its output vector in a numeric pass, from its input's length."""
        return size


class NetActivation(NetLayer):
    """ReLU, Tanh, Sigmoid, Identity, Softmax: applied entry by entry (softmax over the features)."""

    def __init__(self, name, call, text, node, kind, **options):
        super().__init__(name, call, text, node)
        self.kind, self.options = kind, options

    def count_note(self):
        return "an activation has no parameters"

    def axis_steps(self, shape):
        return [("", "applied entry by entry: the shape does not change")]


def axes_text(values):
    """'2' when every axis has the same value, else '2, 1'."""
    return str(values[0]) if len(set(values)) == 1 else ", ".join(map(str, values))


def per_axis(layer, value, dims, what):
    values = value if isinstance(value, tuple) else (value,) * dims
    if len(values) != dims:
        raise layer.error(f"{what} needs {dims} value(s), got {len(values)}", ExpressionError)
    return tuple(sp.sympify(v) for v in values)


FORMULA = r"n_{\text{out}} = \left\lfloor \frac{n + 2P - D(K-1) - 1}{S} \right\rfloor + 1"


def window_axis_steps(shape, kernel, stride, padding, dilation):
    if shape.spatial is None:
        return []
    names = ["length"] if len(shape.spatial) == 1 else ["height", "width"]
    steps = [(FORMULA, "output size along each spatial axis (PyTorch, floor)")]
    for name, n, k, s, p, d in zip(names, shape.spatial, kernel, stride, padding, dilation):
        out = conv_output_size(n, k, s, p, d)
        filled = (rf"\left\lfloor \frac{{{sp.latex(n)} + 2 \cdot {sp.latex(p)} - {sp.latex(d)}"
                  rf"\,({sp.latex(k)} - 1) - 1}}{{{sp.latex(s)}}} \right\rfloor + 1")
        steps.append((rf"n_{{\text{{{name}}}}} = {filled} = {sp.latex(out)}",
                      f"{name}: n = {n}, K = {k}, S = {s}, P = {p}, D = {d}"))
    return steps


def grow_receptive_field(r, j, kernel, stride, dilation):
    r = tuple(ri + d * (k - 1) * ji for ri, ji, k, d in zip(r, j, kernel, dilation))
    j = tuple(ji * s for ji, s in zip(j, stride))
    return r, j


def auto_name(kind, counts):
    """conv1, conv2, fc1, pool1, relu1, block1...: a name for a layer written without one."""
    found = MODULES.get(kind)
    prefix = found.prefix if found is not None and found.prefix else (kind.lower() or "layer")
    counts[prefix] = counts.get(prefix, 0) + 1
    return f"{prefix}{counts[prefix]}"
