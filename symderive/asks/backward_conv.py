"""ask: backward_conv — ∂L/∂x as a convolution of the upstream gradient: which padding, which
dilation, which flipped kernels; verified exactly at the given sizes, proved for all sizes."""
import sympy as sp

from ..answer import Kind, Result, Status, Step
from ..latex import matrix


KEYS = {"of"}

def _kernels_latex(bc, layer, ctx):
    """The flipped kernels, one row per (input channel, output channel) pair."""
    arr = bc.flipped
    if layer.channels and layer.dims == 1:
        m = sp.Matrix([[arr[c, o, k] for k in range(arr.shape[2])]
                       for c in range(arr.shape[0]) for o in range(arr.shape[1])])
        return (matrix(m, ctx.base), "row (c, o): the kernel that carries output channel o back to "
                "input channel c, rows ordered c then o")
    if not layer.channels and layer.dims == 1:
        return matrix(sp.Matrix([list(arr)]), ctx.base), "the kernel reversed"
    if not layer.channels:
        return matrix(sp.Matrix(arr.tolist()), ctx.base), "the kernel rotated by 180 degrees"
    blocks = [f"({c + ctx.base},{o + ctx.base}):\\ {matrix(sp.Matrix(arr[c, o].tolist()), ctx.base)}"
              for c in range(arr.shape[0]) for o in range(arr.shape[1])]
    return r",\quad ".join(blocks), "kernel (c, o) rotated by 180 degrees, for input channel c, output channel o"


def solve(ctx):
    # imported here, not at the top: loading a problem file (list) must not import NumPy
    from ..backward import backward_as_convolution, backward_matrix, prove_backward_convolution
    from ..conv_matrix import size_names, symbolic_twin
    layer = ctx.tensor("of")
    bc = backward_as_convolution(layer)
    b = backward_matrix(layer)
    equal = bc.matrix.equals(b.matrix)
    axes = ["length"] if layer.dims == 1 else ["height", "width"]
    recipe = []
    for axis, s, d, pad, crop in zip(axes, bc.stride, bc.dilation, bc.padding_each_side, bc.crop):
        parts = []
        if s > 1:
            parts.append(f"insert {s - 1} zero(s) between neighbouring entries (stride {s})")
        parts.append(f"pad {pad} zero(s) on each side ((K-1)·d = {pad})")
        if d > 1:
            parts.append(f"convolve with dilation {d}")
        if crop:
            parts.append(f"drop the first and last {crop} result(s) (the forward padding)")
        recipe.append(f"{axis}: " + ", ".join(parts))
    kernels, kernels_why = _kernels_latex(bc, layer, ctx)
    steps = [
        Step("", "upstream gradient g = ∂L/∂y; " + "; ".join(recipe)),
        Step(r"\tilde w = " + kernels, kernels_why),
        Step("", "convolving the padded g with these kernels (stride 1) gives ∂L/∂x: "
                 + ("the same matrix as the chain rule's B, checked exactly at the given sizes"
                    if equal else "it does NOT match the chain rule's B at the given sizes")),
    ]
    results = [Result("padding", bc.padding_each_side,
                      r"\text{zero padding on each side: } " + ", ".join(map(str, bc.padding_each_side)),
                      Kind.TUPLE, key="padding"),
               Result("kernels", bc.flipped, r"\tilde w = " + kernels, Kind.ENTRIES, key="kernels")]
    if not equal:
        return ctx.answer(results, steps, status=Status.FAILED,
                          detail="The convolution form disagrees with the chain rule at the given sizes.")
    twin = symbolic_twin(layer)
    z, chain, proved = prove_backward_convolution(twin)
    if proved:
        steps.append(Step(rf"z = {ctx.show(z)}", f"the full convolution for all sizes ({size_names(twin)}), "
                          "written with indices and contracted"))
        steps.append(Step(rf"\frac{{\partial L}}{{\partial x}} = {ctx.show(chain)}",
                          "the chain rule, contracted: the same terms, so z = ∂L/∂x"))
        status, detail = Status.PROVED, (f"At the index level, for all sizes ({size_names(twin)}); "
                                         "also verified exactly at the given sizes.")
    else:
        status, detail = Status.VERIFIED, "Verified exactly at the given sizes only; the index-level proof did not close."
    return ctx.answer(results, steps, status=status, detail=detail, conventions={"zero_outside"})


# The --verify cross-check of this ask (torch and the verify helpers are imported when it runs).
def check(job):
    import numpy as np
    from ..verify.formulas import conv_setup
    from ..verify.job import as_int, engine_value, sampled_rows, vjp
    import torch
    import torch.nn.functional as F
    padding, kernels = job.result("padding"), job.result("kernels")
    base = job.problem.index_base
    setup = conv_setup(job)
    if setup is None:
        return
    layer, sizes, values, forward, variable, y_shape = setup
    dims = layer.dims
    stride = [as_int(v, sizes) for v in layer.stride]
    dilation = [as_int(v, sizes) for v in layer.dilation]
    crop = [as_int(v, sizes) for v in layer.padding]
    in_spatial = list(variable.shape[len(variable.shape) - dims:])
    kernels = sp.Array(kernels)
    weight = torch.tensor(np.array([engine_value(v, values) for v in sp.flatten(kernels.tolist())],
                                   dtype=float).reshape(kernels.shape), dtype=torch.float64)
    if not layer.channels:
        weight = weight[None, None]
    n_y = int(np.prod(y_shape, dtype=int))
    columns = sampled_rows(n_y, job.rng)
    G = np.zeros((len(columns) + 1, n_y))
    G[np.arange(len(columns)), columns] = 1.0
    G[-1] = job.random(y_shape).reshape(-1)
    g = torch.tensor(G, dtype=torch.float64).reshape((len(G),) + (y_shape if layer.channels else (1,) + y_shape))
    # Dilate g by the stride, pad each side, convolve with the flipped kernels, crop the forward padding.
    out_spatial = list(g.shape[2:])
    dilated = torch.zeros(g.shape[:2] + tuple((n - 1) * s + 1 for n, s in zip(out_spatial, stride)),
                          dtype=torch.float64)
    dilated[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = g
    pads = [p for pad in reversed(padding) for p in (int(pad), int(pad))]
    conv = F.conv1d if dims == 1 else F.conv2d
    full = conv(F.pad(dilated, pads), weight, dilation=tuple(dilation))
    result = torch.zeros(full.shape[:2] + tuple(in_spatial), dtype=torch.float64)
    pieces = tuple(slice(c, min(c + n, m)) for c, n, m in zip(crop, in_spatial, full.shape[2:]))
    kept = full[(slice(None), slice(None)) + pieces]
    result[(slice(None), slice(None)) + tuple(slice(0, k) for k in kept.shape[2:])] = kept
    result = result.reshape(len(G), -1).numpy()
    reference = np.stack([vjp(forward, variable, G[k].reshape(y_shape)).reshape(-1) for k in range(len(G))])
    job.compare("the backward convolution (dilated, padded g with the flipped kernels) with autograd's "
                "dL/dx, for g = e_j" + (f" ({len(columns)} random j)" if len(columns) < n_y else "")
                + " and a random g", result, reference,
                [f"g = {'e_' + str(c + base) if k < len(columns) else 'random'}, x entry {i + base}"
                 for k, c in enumerate(columns + [None]) for i in range(result.shape[1])])
