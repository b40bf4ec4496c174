"""Cross-checks of layer stacks (``network:``): shapes, parameters, multiply-adds, padding and
receptive fields, with the torch.nn modules the layer kinds register."""
import numpy as np
import sympy as sp

from ..layers import torch_module
from .job import as_int, random_sizes
from ..answer import Kind
from .registry import checks
from .report import FORMULA_DRAWS


def _net_symbols(network):
    found = set()
    values = list(network.shape.dims()) if network.shape is not None and network.shape.known else []
    for top in network.layers:
        for layer in top.flatten():
            for v in vars(layer).values():
                for item in (v if isinstance(v, tuple) else (v,)):
                    if isinstance(item, sp.Basic):
                        values.append(item)
    for v in values:
        found |= {s for s in sp.sympify(v).free_symbols if s.is_integer}
    return sorted(found, key=lambda s: s.name)


def _net_input_shape(shape, sizes):
    """The torch shape of a network input: batch first (1 when the layout has no N), channels next."""
    batch = as_int(shape.batch, sizes) if shape.batch is not None else 1
    spatial = tuple(as_int(n, sizes) for n in shape.spatial or ())
    return (batch, as_int(shape.channels, sizes)) + spatial


def _in_layout(torch_shape, layout):
    """A batch-first, channels-first torch shape written in the engine's layout letters."""
    spatial = dict(zip("HW" if len(torch_shape) == 4 else "L", torch_shape[2:]))
    values = {"N": torch_shape[0], "C": torch_shape[1], **spatial}
    return tuple(values[letter] for letter in layout)




def _run_network(job, network, sizes):
    """The torch output of each top-level layer (eval mode, no grad) at the given sizes."""
    import torch
    num = lambda v: as_int(v, sizes)  # noqa: E731
    x = torch.tensor(job.random(_net_input_shape(network.shape, sizes)), dtype=torch.float64)
    outputs = []
    with torch.no_grad():
        for layer in network.layers:
            x = torch_module(layer, num).eval()(x)
            outputs.append(x)
    return outputs


def _question_network(job, key="network", spec=None):
    from ..network import question_network
    return question_network(job.ctx, key, spec=spec)


@checks("shape_table")
def check_shape_table(job):
    network = _question_network(job)
    rows = network.rows()
    for sizes in random_sizes(job, _net_symbols(network), FORMULA_DRAWS, lambda z: _run_network(job, network, z)):
        for row, out in zip(rows, _run_network(job, network, sizes)):
            engine = job.result(row.layer.name)
            if engine is None:
                continue
            engine = tuple(as_int(v, sizes) for v in engine)
            reference = _in_layout(tuple(out.shape), row.shape_out.layout)
            if len(engine) != len(reference):
                job.shape_mismatch(f"the shape after {row.layer.name}", engine, reference)
                return
            job.compare("the shape after each layer with torch.nn's output shape", engine, reference,
                        [f"{row.layer.name}, axis {a}" for a in row.shape_out.layout])


def _count_parameters(network, sizes, mode):
    """name -> parameters of each layer (and of each layer inside a block), and 'total'."""
    num = lambda v: as_int(v, sizes)  # noqa: E731
    found = {}
    for layer in network.layers:
        torch_module(layer, num, {"with": True, "without": False, "declared": None}[mode], found)
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in found.items()}
    counts["total"] = sum(counts[layer.name] for layer in network.layers)
    return counts


def _multiply_adds(network, sizes):
    """Multiply-adds of one example, from torch's FLOP counter (2 FLOPs per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    num = lambda v: as_int(v, sizes)  # noqa: E731
    x = torch.zeros((1,) + _net_input_shape(network.shape, sizes)[1:], dtype=torch.float64)
    modules = torch.nn.Sequential(*[torch_module(layer, num) for layer in network.layers]).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        modules(x)
    return counter.get_total_flops() / 2


@checks("parameter_count")
def check_parameter_count(job):
    from ..asks.parameter_count import modes, multiply_adds_key, ratio_key
    chosen = modes(job.ctx)
    spec = job.question.spec
    networks = ({str(name): _question_network(job, "networks", value) for name, value in spec["networks"].items()}
                if "networks" in spec else {None: _question_network(job)})
    first = None
    for name, network in networks.items():
        draws = random_sizes(job, _net_symbols(network), 1,
                             lambda z: [_count_parameters(network, z, m) for m in chosen])
        for sizes in draws:
            counts = {m: _count_parameters(network, sizes, m) for m in chosen}
            labels = [n for n in counts[chosen[0]]] if name is None else [name]
            for label in labels:
                engine = job.result(label)
                if engine is None:
                    continue
                engine = engine if isinstance(engine, tuple) else (engine,)
                key = label if name is None else "total"
                job.compare("the parameters per layer and in total with torch.nn's parameters()",
                            [as_int(v, sizes) for v in engine], [counts[m][key] for m in chosen],
                            [f"{label} ({m})" for m in chosen])
            if name is None:
                continue
            macs = job.result(multiply_adds_key(name))
            if macs is not None and network.shape is not None:
                job.compare("the multiply-adds per example with torch's FLOP counter (FLOPs / 2)",
                            [as_int(macs, sizes)], [_multiply_adds(network, sizes)], [f"{name} multiply-adds"])
            total = counts[chosen[0]]["total"]
            if first is None:
                first = (name, total)
            elif job.result(ratio_key(name, first[0])) is not None:
                job.compare("the ratio of the totals", [float(sp.N(job.result(ratio_key(name, first[0])), 30))],
                            [total / first[1]], [f"{name} / {first[0]}"])


@checks("batchnorm_shapes")
def check_batchnorm_shapes(job):
    import torch
    from ..network import input_shape
    shape = input_shape(job.ctx.option("input"), job.ctx.decls.scope(), job.question.spec)
    channels_first = "".join(["N", "C"] + [a for a in shape.layout if a not in "NC"])
    symbols = sorted({s for d in shape.dims() for s in sp.sympify(d).free_symbols}, key=lambda s: s.name)

    def run(sizes):
        dims = dict(zip(shape.layout, (as_int(d, sizes) for d in shape.dims())))
        x = torch.tensor(job.random([dims[a] for a in channels_first]), dtype=torch.float64)
        cls = torch.nn.BatchNorm2d if len(shape.spatial or ()) == 2 else torch.nn.BatchNorm1d
        bn = cls(dims["C"], dtype=torch.float64).train()
        return bn, bn(x)

    for sizes in random_sizes(job, symbols, FORMULA_DRAWS, run):
        bn, y = run(sizes)
        for label, tensor in (("mean", bn.running_mean), ("variance", bn.running_var),
                              ("gamma, beta", bn.weight), ("gamma, beta", bn.bias)):
            engine = tuple(as_int(v, sizes) for v in job.result(label))
            job.compare("the shapes of the statistics and of gamma, beta with torch.nn.BatchNorm's",
                        engine, tuple(tensor.shape), [f"{label}, axis {k + 1}" for k in range(len(engine))])
        axes = [channels_first.index(a) for a in job.result("averaged over")]
        means = y.detach().mean(dim=axes).reshape(-1).numpy()
        job.compare("the axes averaged over (torch's normalised output has mean 0 over them, per channel)",
                    np.zeros_like(means), means, [f"channel {c + 1}" for c in range(len(means))])


@checks("same_padding")
def check_same_padding(job):
    import copy
    import torch
    from ..layers.conv import NetConv
    from ..layers.pool import NetPool
    network = _question_network(job)
    of = job.question.option("of")
    row = next(r for r in network.rows() if (r.layer.name == str(of).strip() if of is not None
                                             else isinstance(r.layer, (NetConv, NetPool))))
    padding = job.result("padding")
    layer = copy.copy(row.layer)
    layer.padding = tuple(padding) if isinstance(padding, tuple) else (padding,) * row.layer.dims
    for sizes in random_sizes(job, _net_symbols(network), FORMULA_DRAWS, lambda z: _run_network(job, network, z)):
        num = lambda v: as_int(v, sizes)  # noqa: E731
        if any(num(p) is None for p in layer.padding):
            job.mismatch = f"the padding {padding} is not a whole number"
            return
        shape = _net_input_shape(row.shape_in, sizes)
        with torch.no_grad():
            out = torch_module(layer, num).eval()(torch.zeros(shape, dtype=torch.float64))
        engine = tuple(as_int(v, sizes) for v in job.result(Kind.SHAPE))
        job.compare(f"the output shape with padding {padding} with torch's", engine,
                    _in_layout(tuple(out.shape), row.shape_out.layout), [f"axis {a}" for a in row.shape_out.layout])
        job.compare("the input's spatial size with torch's output size (same padding)",
                    list(shape[2:]), list(out.shape[2:]), [f"spatial axis {k + 1}" for k in range(len(shape) - 2)])


@checks("receptive_field")
def check_receptive_field(job):
    """The receptive field by autograd: the input positions where one output unit's gradient is
    nonzero, with positive weights, max pooling replaced by average pooling and ReLU by the
    identity (the same windows, and no path that can cancel or switch off)."""
    import torch
    network = _question_network(job)
    rows = network.rows()
    of = job.question.option("of")
    target = next(r for r in rows if r.layer.name == str(of).strip()) if of is not None else rows[-1]
    engine = job.result(Kind.TUPLE)
    job.autograd = True
    for sizes in random_sizes(job, _net_symbols(network), 1, lambda z: [as_int(v, z) for v in engine]):
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
