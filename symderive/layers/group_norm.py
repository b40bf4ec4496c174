"""Group normalisation, PyTorch's ``F.group_norm(input, num_groups, weight=None, bias=None,
eps=1e-05)``: the C channels of x (N, C, *spatial) are cut into num_groups groups of C/G
consecutive channels; each entry is normalised with the mean and biased variance of its own
sample's group (C/G · H·W… entries); weight and bias scale and shift per channel (C,).

    y[n, c, s] = γ[c] · (x[n, c, s] − μ_{n,g}) / √(σ²_{n,g} + eps) + β[c],  g = ⌊c / (C/G)⌋.

num_groups = 1 is layer_norm over (C, H, W) with a per-channel affine; num_groups = C is
instance normalisation.
"""
import sympy as sp

from ..errors import ShapeError
from .normalization import DEFAULT_EPS, Normalize, summed, torch_affine
from .registry import LayerKind, TorchOp, register


class GroupNorm(Normalize):
    """``group_norm`` on (N, C, *spatial) with ``num_groups`` dividing C.

    >>> from symderive.tensors import Tensor
    >>> GroupNorm('y', Tensor('x', (2, 4, 3)), num_groups=2).count()
    6
    """

    kind = "group_norm"
    per = "per sample and group of channels"

    def __init__(self, name, x, weight=None, bias=None, num_groups=None, eps=DEFAULT_EPS):
        if num_groups is None:
            raise ShapeError("group_norm needs num_groups, the number of channel groups")
        if x.rank < 2:
            raise ShapeError(f"group_norm: {x.name} must be (N, C) or (N, C, spatial…), not of rank {x.rank}")
        groups = sp.sympify(num_groups)
        per_group = sp.simplify(x.shape[1] / groups)
        if (groups.is_number and (not groups.is_integer or groups < 1)) or per_group.is_integer is False \
                or (per_group.is_number and not per_group.is_integer):
            raise ShapeError(f"group_norm: num_groups {groups} must be a positive integer dividing the "
                             f"{x.shape[1]} channels of {x.name}")
        self.num_groups, self.per_group = groups, per_group
        super().__init__(name, x, weight, bias, eps, (x.shape[1],))

    def describe(self):
        return f"group_norm, {self.num_groups} groups, eps {self.eps}"

    def count(self):
        return sp.Mul(self.per_group, *self.x.shape[2:])

    def stats_shape(self):
        return (self.x.shape[0], self.num_groups)

    def stats_index(self, idx):
        return (idx[0], sp.floor(idx[1] / self.per_group))

    def group(self, at, taken):
        rest = (self.per_group,) + tuple(self.x.shape[2:])
        fresh = summed(rest, taken)
        first = at[1] * self.per_group                     # the first channel of group at[1]
        return self.x.base[(at[0], first + fresh[0]) + fresh[1:]], [(i, 0, n - 1) for i, n in zip(fresh, rest)]

    def affine_index(self, idx):
        return (idx[1],)


def _torch_group_norm(layer, get, num):
    import torch.nn.functional as F
    weight, bias = torch_affine(layer, get)
    return F.group_norm(get(layer.x), num(layer.num_groups), weight, bias, eps=float(layer.eps))


register(LayerKind("group_norm", GroupNorm, ("input", "weight", "bias"), options=("num_groups", "eps"),
                   numbers=("eps",), torch=TorchOp("torch.nn.functional.group_norm", _torch_group_norm)))
