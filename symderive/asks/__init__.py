"""Question kinds ("asks"): one module each, registered in ``ASKS``.

A new kind of question is one new module with a ``solve(ctx) -> Answer``
function and one line here.
"""
from . import (backward_conv, backward_matrix, chain_rule, conv_matrix, derivative, element, shape, text,
               value)
from .context import Context

ASKS = {
    "shape": shape.solve,
    "element": element.solve,
    "derivative": derivative.solve,
    "chain_rule": chain_rule.solve,
    "value": value.solve,
    "text": text.solve,
    "conv_matrix": conv_matrix.solve,
    "backward_matrix": backward_matrix.solve,
    "backward_conv": backward_conv.solve,
}

__all__ = ["ASKS", "Context"]
