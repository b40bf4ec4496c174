"""ask: parameter_count — learnable parameters of a layer stack, per layer and in total,
with and without biases; or, with ``networks:``, several stacks compared.

Convolution: (C_in·k_h·k_w + 1)·C_out with biases, C_in·k_h·k_w·C_out without. Linear:
(in + 1)·out. Batch norm: 2·C (γ and β; the running statistics are buffers, not
parameters). Pooling, activations, flattening and identity skips: none.
"""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..latex import text
from ..layers.residual import NetResidual
from ..network import BIAS_MODES, question_network
from ..yaml_positions import LocatedDict, position

KEYS = {"network", "networks", "bias"}
LABELS = {"with": "with bias", "without": "without bias", "declared": "biases as declared"}


def modes(ctx):
    """The counts to give. Without ``bias:``, both (with and without biases) — unless a layer of the
    network declares ``bias=False``: then the network says what it has, and a count "with bias" would
    count parameters it does not have (MobileNet's and DCGAN's convolutions), so only the declared one."""
    mode = ctx.option("bias", None)
    if mode is None:
        return ("declared",) if _declares_no_bias(ctx) else ("with", "without")
    if mode not in BIAS_MODES:
        raise ExpressionError(f"'bias' is one of {', '.join(BIAS_MODES)} (both: with and without biases)",
                              *position(mode))
    return ("with", "without") if mode == "both" else (mode,)


def _declares_no_bias(ctx):
    spec = ctx.question.spec
    if "networks" in spec and isinstance(spec["networks"], dict):
        networks = [question_network(ctx, "networks", spec=value) for value in spec["networks"].values()]
    elif "network" in spec:
        networks = [question_network(ctx)]
    else:
        return False
    return any(getattr(layer, "bias", None) is False
               for network in networks for top in network.layers for layer in top.flatten())


def _components(chosen):
    """What each entry of a count tuple is ("with bias", "without bias"); empty for one count."""
    return tuple(LABELS[m] for m in chosen) if len(chosen) > 1 else ()


def name_tex(name):
    return rf"\text{{{text(name)}}}"


def counted(counts, chosen):
    """'280 with bias, 270 without bias' as LaTeX."""
    return r",\ ".join(rf"{sp.latex(counts[m])}\ \text{{{LABELS[m]}}}" for m in chosen)


def layer_steps(layer, chosen):
    """Steps for one layer (a residual block: its layers, then their sum); returns its counts."""
    steps = []
    if isinstance(layer, NetResidual):
        for inner in layer.layers:
            steps += layer_steps(inner, chosen)[0]
    counts = {m: layer.count(m) for m in chosen}
    shown = []
    for m in chosen:
        c = counts[m]
        formula = c.latex if c.latex == sp.latex(c.value) else f"{c.latex} = {sp.latex(c.value)}"
        shown.append((rf"\text{{{LABELS[m]}: }}" if len(chosen) > 1 else "") + formula)
    steps.append(Step(f"{name_tex(layer.name)}:\\quad " + r",\qquad ".join(shown),
                      f"{layer.name}: {layer.describe()}; {layer.count_note()}"))
    return steps, {m: c.value for m, c in counts.items()}


def count_network(network, chosen):
    """(steps, [(name, counts)] for each layer to report, totals)."""
    steps, reported = [], []
    totals = {m: sp.Integer(0) for m in chosen}
    for row in network.rows():
        layer_steps_, counts = layer_steps(row.layer, chosen)
        steps += layer_steps_
        if isinstance(row.layer, NetResidual):
            reported += [(inner.name, {m: inner.count(m).value for m in chosen}) for inner in row.layer.layers]
            if len(network.layers) > 1:
                reported.append((row.layer.name, counts))
        else:
            reported.append((row.layer.name, counts))
        for m in chosen:
            totals[m] += counts[m]
    totals = {m: sp.expand(v) for m, v in totals.items()}
    sums = [rf"\text{{{LABELS[m]}: }}" * (len(chosen) > 1) + " + ".join(
        sp.latex(counts[m]) for _, counts in _top(network, chosen)) + f" = {sp.latex(totals[m])}" for m in chosen]
    if len(network.layers) > 1:
        steps.append(Step(r",\qquad ".join(sums), "the total is the sum over the layers"))
    shape = network.shape
    if shape is not None and (shape.batch is not None or shape.spatial):
        ignored = [w for w, present in (("the batch size", shape.batch is not None),
                                        ("the spatial size", bool(shape.spatial))) if present]
        steps.append(Step("", f"{' and '.join(ignored)} of the input ({shape.text()}, {shape.layout}) do not "
                              f"change the count: the same weights are used at every position and for every "
                              f"example"))
    return steps, reported, totals


def _leaves(network, chosen):
    """(name, counts) of every layer that is not a block, blocks opened."""
    return [(layer.name, {m: layer.count(m).value for m in chosen})
            for top in network.layers for layer in top.flatten() if not isinstance(layer, NetResidual)]


def _top(network, chosen):
    return [(layer.name, {m: layer.count(m).value for m in chosen}) for layer in network.layers]


def solve(ctx):
    chosen = modes(ctx)
    if "networks" in ctx.question.spec:
        if "network" in ctx.question.spec:
            raise ExpressionError("give either 'network' or 'networks' (to compare several)",
                                  *position(next(k for k in ctx.question.spec if k == "networks")))
        return compare(ctx, chosen)
    network = question_network(ctx)
    steps, reported, totals = count_network(network, chosen)
    kind = Kind.TUPLE if len(chosen) > 1 else Kind.VALUE      # one count per way of counting
    results = [Result(name, tuple(counts[m] for m in chosen) if len(chosen) > 1 else counts[chosen[0]],
                      rf"{name_tex(name)}:\ {counted(counts, chosen)}", kind, key=name,
                      components=_components(chosen)) for name, counts in reported]
    results.append(Result("total", tuple(totals[m] for m in chosen) if len(chosen) > 1 else totals[chosen[0]],
                          rf"\text{{total}}:\ {counted(totals, chosen)}", kind, key="total",
                          components=_components(chosen)))
    return ctx.answer(results, steps)


def compare(ctx, chosen):
    specs = ctx.option("networks")
    if not isinstance(specs, dict) or len(specs) < 2:
        raise ExpressionError("'networks' maps two or more names to networks, e.g. "
                              "{standard: *a, bottleneck: *b}", *position(specs if isinstance(specs, LocatedDict)
                                                                         else ctx.question))
    steps, results, first = [], [], None
    for name, spec in specs.items():
        network = question_network(ctx, "networks", spec=spec)
        _, _, totals = count_network(network, chosen)
        sums = [" + ".join(sp.latex(c[m]) for _, c in _leaves(network, chosen)) + f" = {sp.latex(totals[m])}"
                for m in chosen]
        lines = [(rf"\text{{{LABELS[m]}: }}" if len(chosen) > 1 else "") + s for m, s in zip(chosen, sums)]
        parts = [rf"{name_tex(name)}:\quad " + (r"\begin{gathered}" + r" \\ ".join(lines) + r"\end{gathered}"
                                                 if len(lines) > 1 else lines[0])]
        rows = network.rows()
        shape_in, shape_out = (rows[0].shape_in, rows[-1].shape_out) if rows else (None, None)
        why = f"{name}: " + "; ".join(layer.describe() for layer in network.layers)
        if network.shape is not None and shape_out.known:
            why += f"; input {shape_in.text()} → output {shape_out.text()} ({shape_in.layout})"
        steps.append(Step(parts[0], why))
        results.append(Result(str(name), tuple(totals[m] for m in chosen) if len(chosen) > 1 else totals[chosen[0]],
                              rf"{name_tex(name)}:\ {counted(totals, chosen)}",
                              Kind.TUPLE if len(chosen) > 1 else Kind.VALUE, key=str(name),
                              components=_components(chosen)))
        macs = multiply_adds(network)
        if macs is not None:
            steps.append(Step(rf"{name_tex(name)}:\quad {sp.latex(macs)}",
                              "multiply–adds per example (each output entry of a convolution costs "
                              "$C_{\\mathrm{in}} k_h k_w$ of them, of a linear layer one per input; biases, "
                              "pooling and activations not counted)"))
            results.append(Result(f"{name} multiply-adds", macs,
                                  rf"{name_tex(name)}:\ {sp.latex(macs)}\ \text{{multiply--adds per example}}",
                                  Kind.VALUE, key=multiply_adds_key(name)))
        if first is None:
            first = (name, totals)
        else:
            ratio = sp.nsimplify(totals[chosen[0]] / first[1][chosen[0]])
            shown = rf"\frac{{{sp.latex(totals[chosen[0]])}}}{{{sp.latex(first[1][chosen[0]])}}}"
            if ratio.is_number:
                shown += rf" \approx {sp.latex(sp.N(ratio, 4))}"
            label = rf"\frac{{{name_tex(name)}}}{{{name_tex(first[0])}}}\ \text{{({LABELS[chosen[0]]})}}:\ "
            results.append(Result(f"{name} / {first[0]}", ratio, label + shown, Kind.VALUE,
                                  key=ratio_key(name, first[0])))
    return ctx.answer(results, steps)


def multiply_adds_key(name):
    """The key of network ``name``'s multiply-adds in a comparison (what verify reads)."""
    return ("multiply-adds", str(name))


def ratio_key(name, first):
    """The key of the ratio of network ``name``'s total to the first network's."""
    return ("ratio", str(name), str(first))


def multiply_adds(network):
    """Multiply–adds per example, when the input shape is known; else None."""
    if network.shape is None:
        return None
    total = sp.Integer(0)
    for row in network.rows():
        macs = row.layer.multiply_adds(row.shape_in, row.shape_out)
        if macs is None:
            return None
        total += macs
    return sp.expand(total)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    from ..verify.job import as_int, random_sizes
    from ..verify.stacks import net_symbols
    chosen = modes(job.ctx)
    spec = job.question.spec
    networks = ({str(name): question_network(job.ctx, "networks", spec=value)
                 for name, value in spec["networks"].items()}
                if "networks" in spec else {None: question_network(job.ctx)})
    first = None
    for name, network in networks.items():
        draws = random_sizes(job, net_symbols(network), 1,
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


def _count_parameters(network, sizes, mode):
    """name -> parameters of each layer (and of each layer inside a block), and 'total'."""
    from ..layers import torch_module
    from ..verify.job import as_int
    num = lambda v: as_int(v, sizes)  # noqa: E731
    found = {}
    for layer in network.layers:
        torch_module(layer, num, {"with": True, "without": False, "declared": None}[mode], found)
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in found.items()}
    counts["total"] = sum(counts[layer.name] for layer in network.layers)
    return counts


def _multiply_adds(network, sizes):
    """Multiply-adds of one example, from torch's FLOP counter (2 FLOPs per multiply-add)."""
    from ..layers import torch_module
    from ..verify.job import as_int
    from ..verify.stacks import net_input_shape
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    num = lambda v: as_int(v, sizes)  # noqa: E731
    x = torch.zeros((1,) + net_input_shape(network.shape, sizes)[1:], dtype=torch.float64)
    modules = torch.nn.Sequential(*[torch_module(layer, num) for layer in network.layers]).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        modules(x)
    return counter.get_total_flops() / 2
