"""Question kinds ("asks"): one module each, registered in ``ASKS``.

A new kind of question is one new module with a ``solve(ctx) -> Answer``
function and a ``KEYS`` set of the question keys it reads, and one line here.
"""
from dataclasses import dataclass

from . import (backward_conv, backward_matrix, chain_rule, conv_matrix, derivative, element, prove, shape,
               text, value)
from . import (batchnorm_shapes, forward_backward, gradient_step, parameter_count, receptive_field,
               rnn_recurrence, same_padding, shape_table)
from .context import Context


@dataclass(frozen=True)
class Ask:
    solve: object
    keys: frozenset


def _ask(module):
    return Ask(module.solve, frozenset(module.KEYS))


ASKS = {
    "shape": _ask(shape),
    "element": _ask(element),
    "derivative": _ask(derivative),
    "chain_rule": _ask(chain_rule),
    "value": _ask(value),
    "text": _ask(text),
    "conv_matrix": _ask(conv_matrix),
    "backward_matrix": _ask(backward_matrix),
    "backward_conv": _ask(backward_conv),
    "prove": _ask(prove),
    "parameter_count": _ask(parameter_count),
    "shape_table": _ask(shape_table),
    "same_padding": _ask(same_padding),
    "receptive_field": _ask(receptive_field),
    "batchnorm_shapes": _ask(batchnorm_shapes),
    "forward_backward": _ask(forward_backward),
    "gradient_step": _ask(gradient_step),
    "rnn_recurrence": _ask(rnn_recurrence),
}

__all__ = ["ASKS", "Ask", "Context"]
