"""ask: receptive_field — how many input positions (per spatial axis) one unit of a layer sees,
by the recurrence r_out = r_in + D·(K − 1)·j_in, j_out = j_in·S, starting from r = j = 1 at the
input (j is the distance, in input positions, between neighbouring units of a layer)."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..layers.conv import NetConv
from ..layers.pool import NetPool
from ..layers.residual import NetResidual
from ..network import question_network
from ..yaml_positions import key_position
from .parameter_count import name_tex

KEYS = {"network", "of"}
RECURRENCE = r"r_{\text{out}} = r_{\text{in}} + D\,(K - 1)\, j_{\text{in}}, \qquad j_{\text{out}} = j_{\text{in}}\, S"


def _pair(values):
    return r" \times ".join(sp.latex(v) for v in values)


def layer_steps(layer, r, j, names):
    """Steps for one layer (a residual block: along its layers; the skip path sees less)."""
    steps = []
    if isinstance(layer, NetResidual):
        for inner in layer.layers:
            more, r, j = layer_steps(inner, r, j, names)
            steps += more
        steps.append(Step(rf"{name_tex(layer.name)}:\quad r = {_pair(r)}",
                          f"{layer.name}: the identity skip sees only the block's input window, which the "
                          f"path through the block contains"))
        return steps, r, j
    r_new, j_new = layer.receptive(r, j)
    if isinstance(layer, (NetConv, NetPool)):
        axes = list(zip(r, j, layer.kernel, layer.dilation, layer.stride, r_new, j_new, names))
        alike = len({a[:5] for a in axes}) == 1
        rows = [rf"r = {sp.latex(ri)} + {sp.latex(d)} \cdot ({sp.latex(k)} - 1) \cdot {sp.latex(ji)} = "
                rf"{sp.latex(rn)},\ j = {sp.latex(ji)} \cdot {sp.latex(s)} = {sp.latex(jn)}"
                + ("" if alike else rf"\ \text{{({name})}}")
                for ri, ji, k, d, s, rn, jn, name in (axes[:1] if alike else axes)]
        steps.append(Step(r",\qquad ".join(rows), f"{layer.name}: {layer.describe()}"
                          + (" (the same along every axis)" if alike and len(axes) > 1 else "")))
    else:
        steps.append(Step("", f"{layer.name}: {layer.describe()} acts position by position: r and j do not change"))
    return steps, r_new, j_new


def solve(ctx):
    network = question_network(ctx)
    rows = network.rows()
    of = ctx.option("of")
    target = network.find(str(of).strip(), of) if of is not None else rows[-1]
    dims = len(network.shape.spatial) if network.shape is not None and network.shape.spatial is not None else None
    if dims is None:
        dims = next((r.layer.dims for r in rows if isinstance(r.layer, (NetConv, NetPool))), None)
    if not dims:
        raise ExpressionError("the network has no spatial axes (no convolution or pooling): no receptive field",
                              *key_position(ctx.question.spec, "network"))
    names = ["length"] if dims == 1 else ["height", "width"]
    r, j = (sp.Integer(1),) * dims, (sp.Integer(1),) * dims
    steps = [Step(RECURRENCE, "receptive field r and jump j, per axis, from r = j = 1 at the input")]
    for row in rows:
        more, r, j = layer_steps(row.layer, r, j, names)
        steps += more
        if row is target:
            break
    shown = _pair(r) + (r"\ (\text{height} \times \text{width})" if dims == 2 else "")
    results = [Result("receptive field", tuple(r), rf"{name_tex(target.layer.name)}:\ r = {shown}", Kind.TUPLE)]
    return ctx.answer(results, steps)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    """The receptive field by autograd: the input positions where one output unit's gradient is
    nonzero, with positive weights, max pooling replaced by average pooling and ReLU by the
    identity (the same windows, and no path that can cancel or switch off)."""
    from ..layers import torch_module
    from ..verify.job import as_int, random_sizes
    from ..verify.stacks import net_symbols
    import torch
    network = question_network(job.ctx)
    rows = network.rows()
    of = job.question.option("of")
    target = next(r for r in rows if r.layer.name == str(of).strip()) if of is not None else rows[-1]
    engine = job.result(Kind.TUPLE)
    job.autograd = True
    for sizes in random_sizes(job, net_symbols(network), 1, lambda z: [as_int(v, z) for v in engine]):
        r, num = [as_int(v, sizes) for v in engine], (lambda v, z=sizes: as_int(v, z))
        jump = 1                      # the distance between neighbouring units of the target, in inputs
        for row in rows:
            jump *= max([num(v) for v in getattr(row.layer, "stride", ())] or [1])
            if row is target:
                break
        channels = num(network.shape.channels) if network.shape is not None and network.shape.channels \
            is not None else num(next(x.layer.in_channels for x in rows if hasattr(x.layer, "in_channels")))
        n = 2 * max(r) + 4 * jump + 16
        x = (torch.rand((1, channels) + (n,) * len(r), dtype=torch.float64) + 0.5).requires_grad_(True)
        y = x
        for row in rows:
            module = _stand_ins(torch_module(row.layer, num).eval())
            with torch.no_grad():
                for p in module.parameters():
                    p.uniform_(0.5, 1.5)
            y = module(y)
            if row is target:
                break
        (grad,) = torch.autograd.grad(y[(0, 0) + tuple(k // 2 for k in y.shape[2:])], x)
        support = grad[0].abs().sum(dim=0) > 0
        widths = []
        for axis in range(len(r)):
            others = tuple(a for a in range(len(r)) if a != axis)
            where = torch.nonzero(support.any(dim=others) if others else support).reshape(-1)
            widths.append(int(where.max() - where.min() + 1) if len(where) else 0)
        job.compare("the receptive field with the input positions autograd finds for one output unit",
                    r, widths, [f"spatial axis {k + 1}" for k in range(len(r))])


def _stand_ins(module):
    """The same windows without switching: average for max pooling, identity for ReLU."""
    import torch
    nn = torch.nn
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
        cls = nn.AvgPool1d if isinstance(module, nn.MaxPool1d) else nn.AvgPool2d
        return cls(module.kernel_size, module.stride, module.padding)
    if isinstance(module, nn.ReLU):
        return nn.Identity()
    for name, child in module.named_children():
        setattr(module, name, _stand_ins(child))
    return module
