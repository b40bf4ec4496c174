"""ask: shape_table — the shape after each layer of a stack, worked out axis by axis, in the
layout the input was given in (e.g. N×H×W×C)."""
from ..answer import Kind, Result, Step
from ..errors import ExpressionError
from ..layers.residual import NetResidual
from ..network import question_network
from ..yaml_positions import key_position
from .parameter_count import name_tex

KEYS = {"network"}


def layer_steps(layer, shape_in, shape_out):
    """The axis formulas of one layer (a residual block: of each of its layers, then the skip)."""
    steps = []
    if isinstance(layer, NetResidual):
        shape = shape_in
        for inner in layer.layers:
            after = inner.output(shape)
            steps += layer_steps(inner, shape, after)
            shape = after
        steps.append(Step(rf"{name_tex(layer.name)}:\quad {shape_out.latex()}",
                          f"{layer.name}: {layer.describe()}; the identity skip adds the input, so the "
                          f"output has the input's shape"))
        return steps
    for latex, why in layer.axis_steps(shape_in):
        steps.append(Step(latex, f"{layer.name}: {why}"))
    steps.append(Step(rf"{name_tex(layer.name)}:\quad {shape_out.latex()}",
                      f"{layer.name}: {layer.describe()}, output ({shape_out.layout})"))
    return steps


def solve(ctx):
    network = question_network(ctx)
    if network.shape is None:
        raise ExpressionError("ask 'shape_table' needs the network's 'input' shape",
                              *key_position(ctx.question.spec, "network"))
    rows = network.rows()
    steps = [Step(rf"\text{{input}}:\quad {network.shape.latex()}", f"layout {network.shape.layout}")]
    results = []
    for row in rows:
        steps += layer_steps(row.layer, row.shape_in, row.shape_out)
        results.append(Result(row.layer.name, row.shape_out.dims(),
                              rf"{name_tex(row.layer.name)}:\ {row.shape_out.latex()}", Kind.SHAPE,
                              key=row.layer.name))
    return ctx.answer(results, steps)


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    from ..verify.job import as_int, random_sizes
    from ..verify.report import FORMULA_DRAWS
    from ..verify.stacks import in_layout, net_symbols, run_network
    network = question_network(job.ctx)
    rows = network.rows()
    for sizes in random_sizes(job, net_symbols(network), FORMULA_DRAWS, lambda z: run_network(job, network, z)):
        for row, out in zip(rows, run_network(job, network, sizes)):
            engine = job.result(row.layer.name)
            if engine is None:
                continue
            engine = tuple(as_int(v, sizes) for v in engine)
            reference = in_layout(tuple(out.shape), row.shape_out.layout)
            if len(engine) != len(reference):
                job.shape_mismatch(f"the shape after {row.layer.name}", engine, reference)
                return
            job.compare("the shape after each layer with torch.nn's output shape", engine, reference,
                        [f"{row.layer.name}, axis {a}" for a in row.shape_out.layout])
