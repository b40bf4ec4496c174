"""Batch normalisation: the index formula ``batch_norm`` (training mode, PyTorch's
``F.batch_norm(input, running_mean, running_var, weight=None, bias=None, training=True, eps=1e-05)``
without the running statistics, which training mode only updates) and the ``network:`` entries
``BatchNorm1d`` / ``BatchNorm2d`` (a scale and a shift per channel).

On x of shape (N, C, *spatial), each channel c is normalised with the mean and the biased
variance over the batch and spatial axes, M = N·H·W… entries:

    y[n, c, s] = γ[c] · (x[n, c, s] − μ_c) / √(σ²_c + eps) + β[c].
"""
import sympy as sp

from ..errors import ShapeError
from .normalization import DEFAULT_EPS, Normalize, summed, torch_affine
from .registry import LayerKind, Signature, TorchOp, register
from .stack import Count, NetLayer


class BatchNorm(Normalize):
    """``batch_norm`` in training mode on (N, C, *spatial).

    >>> from symderive.tensors import Tensor
    >>> y = BatchNorm('y', Tensor('x', (2, 1)), eps=1)
    >>> y.definition((0, 0))
    (-mu[0] + x[0, 0])/sqrt(var[0] + 1)
    >>> y.element((0, 0))
    (x[0, 0] - Sum(x[a, 0], (a, 0, 1))/2)/sqrt(Sum((x[a, 0] - Sum(x[b, 0], (b, 0, 1))/2)**2, (a, 0, 1))/2 + 1)
    """

    kind = "batch_norm"
    per = "over the batch and spatial axes, per channel"

    def __init__(self, name, x, weight=None, bias=None, eps=DEFAULT_EPS):
        if x.rank < 2:
            raise ShapeError(f"batch_norm: {x.name} must be (N, C) or (N, C, spatial…), not of rank {x.rank}")
        count = sp.Mul(x.shape[0], *x.shape[2:])
        if count.is_number and count < 2:
            raise ShapeError(f"batch_norm: training mode needs more than one value per channel; {x.name} "
                             f"has shape {x.shape}")
        super().__init__(name, x, weight, bias, eps, (x.shape[1],))

    def describe(self):
        return f"batch_norm (training mode), eps {self.eps}"

    def count(self):
        return sp.Mul(self.x.shape[0], *self.x.shape[2:])

    def stats_shape(self):
        return (self.x.shape[1],)

    def stats_index(self, idx):
        return (idx[1],)

    def group(self, at, taken):
        rest = tuple(self.x.shape[:1]) + tuple(self.x.shape[2:])
        fresh = summed(rest, taken)
        return entry_at(self.x, (fresh[0], at[0]) + fresh[1:]), [(i, 0, n - 1) for i, n in zip(fresh, rest)]

    def affine_index(self, idx):
        return (idx[1],)


def entry_at(node, idx):
    return node.base[tuple(idx)]


def _torch_batch_norm(layer, get, num):
    import torch.nn.functional as F
    weight, bias = torch_affine(layer, get)
    return F.batch_norm(get(layer.x), None, None, weight, bias, training=True, eps=float(layer.eps))


class NetBatchNorm(NetLayer):
    def __init__(self, name, call, text, node, dims, num_features, affine=True, eps=None, momentum=None):
        super().__init__(name, call, text, node)
        self.dims, self.kind = dims, f"BatchNorm{dims if dims == 2 else 1}d"
        self.num_features, self.affine = num_features, affine

    def count(self, mode):
        if not self.affine:
            return Count(sp.Integer(0), "0")
        return Count(2 * self.num_features, rf"2 \cdot {sp.latex(self.num_features)}")

    def count_note(self):
        if not self.affine:
            return "affine=False: no $\\gamma$, $\\beta$; the running mean and variance are not parameters"
        return (f"a scale $\\gamma$ and a shift $\\beta$ per channel ({self.num_features} each); the running "
                f"mean and variance are buffers updated by averaging, not parameters learned by gradient "
                f"descent")

    def output(self, shape):
        if shape.channels is not None and sp.simplify(shape.channels - self.num_features) != 0:
            raise self.error(f"normalises {self.num_features} channels but its input has {shape.channels}")
        if shape.spatial is not None and self.dims == 2 and len(shape.spatial) != 2:
            raise self.error(f"needs an input with height and width; its input is {shape.text()}")
        return shape.with_(channels=self.num_features)

    def describe(self):
        return f"{self.kind}, {self.num_features} channels"


def _torch_module(layer, num, bias):
    import torch
    cls = torch.nn.BatchNorm2d if layer.dims == 2 else torch.nn.BatchNorm1d
    return cls(num(layer.num_features), affine=layer.affine, dtype=torch.float64)


def _signature(dims):
    def build(name, call, text, node, **kw):
        return NetBatchNorm(name, call, text, node, dims, **kw)
    return Signature(build, ("num_features",), 1, {"affine": True, "eps": None, "momentum": None})


register(LayerKind("batch_norm", BatchNorm, ("input", "weight", "bias"), options=("eps",), numbers=("eps",),
                   torch=TorchOp("torch.nn.functional.batch_norm (training=True)", _torch_batch_norm)))

for _dims in (1, 2):
    register(LayerKind(f"batch_norm{_dims}d", module=f"BatchNorm{_dims}d", signature=_signature(_dims),
                       torch_module=_torch_module, torch_module_name=f"torch.nn.BatchNorm{_dims}d", prefix="bn"))
