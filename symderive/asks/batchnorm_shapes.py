"""ask: batchnorm_shapes — the shapes of batch norm's statistics and parameters for an input
given with its layout: one mean and one variance per channel (feature) C, averaged over every
other axis (N for a fully connected input N×C; N, H, W for a convolutional one), and γ, β of
shape C."""
import sympy as sp

from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..network import input_shape
from ..yaml_positions import key_position

KEYS = {"input", "layout"}


def solve(ctx):
    ctx.require("input")
    shape = input_shape(ctx.option("input"), ctx.decls.scope(), ctx.question.spec)
    if "N" not in shape.layout:
        raise ExpressionError("batch norm averages over the batch: the input's layout needs an N axis "
                              "(e.g. NC or NHWC)", *key_position(ctx.question.spec, "layout"))
    sizes = dict(zip(shape.layout, shape.dims()))
    reduced = [a for a in shape.layout if a != "C"]
    count = sp.Mul(*[sizes[a] for a in reduced])
    count_tex = sp.latex(count) if count.is_number else r"\,".join(sp.latex(sizes[a]) for a in reduced)
    count_text = str(count) if count.is_number else "·".join(str(sizes[a]) for a in reduced)
    base = ctx.base
    idx = {a: sp.Symbol(a.lower()) for a in shape.layout}
    entry = "x_{" + ",".join(a.lower() for a in shape.layout) + "}"
    sums = "".join(rf"\sum_{{{a.lower()}={base}}}^{{{sp.latex(sizes[a] - 1 + base)}}}" for a in reduced)
    kind = "convolutional" if shape.spatial else "fully connected"
    over = ", ".join(reduced)
    c = sp.latex(sizes["C"])
    keep = r" \times ".join("1" if a != "C" else c for a in shape.layout)
    steps = [
        Step(rf"x \in \mathbb{{R}}^{{{shape.latex()}}}", f"a {kind} input, layout {shape.layout}"),
        Step(rf"\mu_c = \frac{{1}}{{{count_tex}}} {sums} {entry}, \qquad "
             rf"\sigma^2_c = \frac{{1}}{{{count_tex}}} {sums} \left({entry} - \mu_c\right)^2",
             f"one mean and one variance per channel c, over the {count_text} values that share it "
             f"(the axes {over})" + ("; for a convolution every position of a channel is normalised the "
                                     "same way, so positions count as examples" if shape.spatial else "")),
        Step(rf"y_{{{','.join(str(i) for i in idx.values())}}} = \gamma_c\, \frac{{{entry} - \mu_c}}"
             rf"{{\sqrt{{\sigma^2_c + \varepsilon}}}} + \beta_c",
             "normalised, then scaled and shifted per channel: $\\gamma$ and $\\beta$ have one entry per channel"),
    ]
    results = [
        Result("mean", (sizes["C"],), rf"\mu \in \mathbb{{R}}^{{{c}}}\ \ (\text{{kept as }} {keep})",
               Kind.SHAPE, key="mean"),
        Result("variance", (sizes["C"],), rf"\sigma^2 \in \mathbb{{R}}^{{{c}}}\ \ (\text{{kept as }} {keep})",
               Kind.SHAPE, key="variance"),
        Result("gamma, beta", (sizes["C"],), rf"\gamma,\ \beta \in \mathbb{{R}}^{{{c}}}", Kind.SHAPE,
               key="gamma, beta"),
        # Axis names, not sizes; graded as a shape (axis by axis) as before. The count in a parenthesis,
        # a note: "N, H, W: N H W" read as N, H and W = N H W
        Result("averaged over", tuple(reduced), rf"\text{{averaged over }} {', '.join(reduced)}\ \ ("
                                               rf"{count_tex}\ \text{{values per statistic}})", Kind.SHAPE,
               key="averaged over"),
    ]
    return ctx.answer(results, steps)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    import numpy as np
    from ..verify.job import as_int, random_sizes
    from ..verify.report import FORMULA_DRAWS
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
