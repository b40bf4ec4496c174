"""Losses in PyTorch's form: one term per item (a sample of the batch, or an entry), then the
``reduction``: ``'mean'`` (PyTorch's default: the 1/N stands in the formula), ``'sum'`` or
``'none'`` (the terms themselves, a tensor). ``ReducedLoss`` is that frame; each loss kind is a
module of its own (``cross_entropy.py``, ``nll_loss.py``, ...). Here: ``mse`` (``mse_loss``) and
``sum_of_squares`` (Σ (y − t)², the sum reduction with an optional target)."""
import sympy as sp

from ..errors import ShapeError
from ..indices import INDEX_LETTERS, fresh_index
from ..tensors import numel
from .base import Layer, entry, taken_by
from .registry import LayerKind, TorchOp, register

REDUCTIONS = ("mean", "sum", "none")
#: A batch index is named like the batch: n first.
BATCH_LETTERS = ("n", "i", "k", "m", "s", "t", "u", "v")


def same_shape(kind, a, b):
    if a.rank != b.rank or any(sp.simplify(m - n) != 0 for m, n in zip(a.shape, b.shape)):
        raise ShapeError(f"{kind}: {a.name} has shape {a.shape} but {b.name} has shape {b.shape}")


def class_target(kind, scores, target):
    """True when ``target`` holds class indices for ``scores`` (N, C) or (C,): shape (N,) or ()
    as PyTorch decides; False when it has the scores' shape (probabilities); else an error."""
    if scores.rank not in (1, 2):
        raise ShapeError(f"{kind}: {scores.name} must be (C,) or (N, C), not of rank {scores.rank}")
    if target.rank == scores.rank - 1 and all(sp.simplify(m - n) == 0 for m, n in zip(target.shape, scores.shape)):
        return True
    same_shape(kind, scores, target)
    return False


class ReducedLoss(Layer):
    """A loss over ``items`` (a shape: the batch (N,), or every entry), reduced as PyTorch's
    ``reduction`` says. Subclasses give ``kind`` and ``term(idx, avoid)``, the loss of one item."""

    letters = INDEX_LETTERS       # of the summation indices over the items

    def __init__(self, name, inputs, items, reduction="mean", reductions=REDUCTIONS):
        if reduction not in reductions:
            raise ShapeError(f"{self.kind}: reduction is one of {', '.join(reductions)}, not {reduction!r}")
        self.items, self.reduction = tuple(items), reduction
        super().__init__(name, [t for t in inputs if t is not None], self.items if reduction == "none" else ())

    def term(self, idx, avoid):
        raise NotImplementedError

    def divisor(self):
        """What the sum of the terms is divided by: the number of items for 'mean'."""
        return numel(self.items) if self.reduction == "mean" else sp.Integer(1)

    def describe(self):
        return f"{self.kind}, reduction '{self.reduction}'"

    def definition(self, idx=(), avoid=()):
        if self.reduction == "none":
            return self.term(tuple(idx), taken_by(avoid, idx))
        taken, ix = set(avoid), []
        for n in self.items:
            ix.append(fresh_index(n, taken, self.letters))
            taken.add(ix[-1].name)
        body = self.term(tuple(ix), taken)
        total = sp.Sum(body, *[(i, 0, n - 1) for i, n in zip(ix, self.items)]) if ix else body
        return total / self.divisor()


class Loss(ReducedLoss):
    """``mse`` (the mean of (y − t)² by default, as ``mse_loss``) and ``sum_of_squares``."""

    def __init__(self, name, kind, prediction, target=None, reduction="mean"):
        if kind not in ("mse", "sum_of_squares"):
            raise ValueError(f"Loss is mse or sum_of_squares, not {kind!r} (cross_entropy is CrossEntropy)")
        self.kind, self.prediction, self.target = kind, prediction, target
        if target is not None:
            same_shape(kind, prediction, target)
        elif kind != "sum_of_squares":
            raise ShapeError(f"{kind}: needs a target")
        super().__init__(name, [prediction, target], prediction.shape,
                         "sum" if kind == "sum_of_squares" else reduction)

    def term(self, idx, avoid):
        t = entry(self.target, idx) if self.target is not None else 0
        return (entry(self.prediction, idx) - t) ** 2


def _mse(layer, get, num):
    import torch.nn.functional as F
    return F.mse_loss(get(layer.prediction), get(layer.target), reduction=layer.reduction)


def _sum_of_squares(layer, get, num):
    import torch
    y = get(layer.prediction)
    t = get(layer.target) if layer.target is not None else torch.zeros_like(y)
    return torch.nn.functional.mse_loss(y, t, reduction="sum")


register(
    LayerKind("mse", lambda n, y, t, reduction="mean": Loss(n, "mse", y, t, reduction), ("input", "target"),
              options=("reduction",), choices={"reduction": REDUCTIONS},
              torch=TorchOp("torch.nn.functional.mse_loss", _mse)),
    LayerKind("sum_of_squares", lambda n, y, t=None: Loss(n, "sum_of_squares", y, t), ("input", "target"),
              torch=TorchOp("torch.nn.functional.mse_loss(reduction='sum')", _sum_of_squares)),
)
