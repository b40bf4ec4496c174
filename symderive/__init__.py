"""symderive: symbolic derivations for the mathematics of deep learning.

Problem files:  ``load_problem(path).solve()``, ``problem.sheet()``.
Library:        ``tensor``, ``sizes``, the layer functions (``conv1d``, ``softmax``, ...),
                ``derivative``, ``chain_rule``, ``conv_output_size``.
Every result renders as LaTeX in Jupyter.
"""
from .answer import Answer, Status
from .api import (avg_pool1d, avg_pool2d, conv1d, conv2d, cross_entropy, linear, max_pool1d,
                  max_pool2d, mse, relu, sigmoid, sizes, softmax, sum_of_squares, tanh, tensor)
from .derivative import chain_rule, derivative
from .errors import ExpressionError, ProblemFileError, ShapeError, SymderiveError
from .problem import load_problem
from .shapes import conv_output_size
from .tensors import Tensor

__all__ = [
    "Answer", "Status", "Tensor", "load_problem", "tensor", "sizes", "derivative", "chain_rule",
    "conv_output_size", "conv1d", "conv2d", "avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d",
    "linear", "sigmoid", "tanh", "relu", "softmax", "cross_entropy", "mse", "sum_of_squares",
    "SymderiveError", "ProblemFileError", "ExpressionError", "ShapeError",
]
