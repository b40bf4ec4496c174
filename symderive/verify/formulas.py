"""Cross-checks of the asks about index formulas: shapes, elements, derivatives, chain rules,
values and the convolution matrices, against torch ops and autograd."""
import math

import numpy as np
import sympy as sp

from ..derivative import chain_rule_avoid, derivative, derivative_indices, upstream_name
from ..tensors import flat_positions
from ..torch_ops import VerifyError, to_torch
from .job import (Mismatch, as_int, engine_value, entry_label, flat_index, free_indices, jacobian_rows,
                  sample_positions, sampled_rows, sparse_values, vjp)
from ..answer import Kind
from .registry import checks
from .report import FORMULA_DRAWS, MAX_ENTRIES, SHAPE_DRAWS


def _derivative_indices(of, wrt, formula, avoid=()):
    """The index symbols of ∂of/∂wrt as the engine names them: (output indices, wrt indices).

    Read off the element expression the derivative starts from (cheap); the full derivative is
    recomputed only if the answer's formula uses other free indices."""
    try:
        out_idx, _, wrt_idx = derivative_indices(of, wrt, avoid)
        if free_indices(formula) <= {i.name for i in out_idx + wrt_idx}:
            return out_idx, wrt_idx
    except Exception:      # the engine's internals changed: ask it the slow way
        pass
    d = derivative(of, wrt, avoid)
    return d.out_idx, d.wrt_idx




def _compare_pairs(job, what, formula, values, sizes, names, out_positions, J, of, wrt):
    """An element formula at (output, input) index pairs against rows of the autograd Jacobian:
    row k of ``J`` belongs to the output position ``out_positions[k]``."""
    wrt_shape = tuple(as_int(n, sizes) for n in wrt.shape)
    pairs = [(k, p, q) for k, p in enumerate(out_positions) for q in flat_positions(wrt_shape)]
    if len(pairs) > MAX_ENTRIES:
        pairs = [pairs[i] for i in sorted(job.rng.choice(len(pairs), MAX_ENTRIES, replace=False))]
    engine = [engine_value(formula, values, sizes, dict(zip(names, p + q))) for _, p, q in pairs]
    base = job.problem.index_base
    job.compare(f"{what} at (output, input) index pairs", engine, [J[k, flat_index(q, wrt_shape)] for k, _, q in pairs],
                [f"{entry_label(of.name, p, base)} by {entry_label(wrt.name, q, base)}" for _, p, q in pairs])


def _conv_setup(job):
    """For the convolution asks: (layer, sizes, values, x -> y in torch, x as a torch leaf, y's shape),
    or None when a shape already disagrees."""
    layer = job.ctx.tensor("of")
    job.autograd = True
    (sizes,) = job.draw_sizes([layer], 1)
    try:
        values, forward, variable = _differentiable_setup(job, layer, layer.x, sizes)
        y_shape = tuple(job.graph(sizes, values).get(layer).shape)
    except Mismatch:
        return None
    return layer, sizes, values, forward, variable, y_shape


@checks("shape")
def check_shape(job):
    layer = job.ctx.tensor("of")
    engine_shape = job.result(Kind.SHAPE)
    if not layer.is_layer:
        job.reason = "a declared tensor's shape is given, not derived"
        return
    for sizes in job.draw_sizes([layer], SHAPE_DRAWS):
        graph = job.graph(sizes, job.values([layer], sizes))
        try:
            torch_shape = tuple(graph.get(layer).shape)
        except Mismatch:
            return
        shape = tuple(as_int(n, sizes) for n in engine_shape)
        if None in shape or len(shape) != len(torch_shape):
            job.shape_mismatch(f"shape of {layer.name}", shape, torch_shape)
            return
        where = ", ".join(f"{s.name} = {v}" for s, v in sizes.items())
        job.compare(f"the shape of {layer.name} with the shape torch produces", shape, torch_shape,
                    labels=[f"axis {k + 1}" + (f" at {where}" if where else "") for k in range(len(shape))])


@checks("element")
def check_element(job):
    layer = job.ctx.tensor("of")
    formula = job.result(Kind.ELEMENT)
    if not layer.is_layer:
        job.reason = "a declared tensor has no formula to compare"
        return
    idx = layer.free_indices()
    base = job.problem.index_base
    for sizes in job.draw_sizes([layer], FORMULA_DRAWS):
        values = job.values([layer], sizes)
        try:
            out = job.graph(sizes, values).get(layer).detach().numpy()
        except Mismatch:
            return
        shape = tuple(as_int(n, sizes) for n in layer.shape)
        dimension = job.result(Kind.SHAPE)
        if dimension is not None and tuple(as_int(n, sizes) for n in dimension) != tuple(out.shape):
            job.shape_mismatch(f"the dimension of {layer.name}", [as_int(n, sizes) for n in dimension], out.shape)
            return
        positions = sample_positions(shape, MAX_ENTRIES, job.rng)
        engine = [engine_value(formula, values, sizes, dict(zip((i.name for i in idx), pos)))
                  for pos in positions]
        job.compare(f"the element formula of {layer.name} with the "
                    "forward pass", engine, [out[pos] for pos in positions],
                    [entry_label(layer.name, pos, base) for pos in positions])


def _signs_ok(job, graph, signs):
    for entry, sign in signs.items():
        node = job.decls.lookup(entry.base.label.name)
        value = float(graph.get(node)[tuple(int(i) for i in entry.indices)])
        if value * sign <= 0:
            return False
    return True


def _differentiable_setup(job, of, wrt, sizes, extra=(), signs=None):
    """Random values (meeting the sign conditions, if any) and the function wrt -> of in torch."""
    extra = list(extra) + ([(wrt.name, wrt.shape)] if wrt.is_layer else [])
    for _ in range(1000 if signs else 1):
        values = job.values([of, wrt], sizes, extra)
        if not signs or _signs_ok(job, job.graph(sizes, values, override={wrt.name} if wrt.is_layer else ()),
                                  signs):
            break
    else:
        raise VerifyError("could not draw random inputs that meet the given sign conditions")

    def forward(v):
        graph = job.graph(sizes, values, override={wrt.name})
        graph.cache[wrt.name] = v
        return graph.get(of)

    variable = job.graph(sizes, values).leaf(wrt.name, requires_grad=True)
    return values, forward, variable


@checks("derivative")
def check_derivative(job):
    of = job.ctx.tensor("of")
    wrt, at = job.ctx.tensor_or_entry("wrt")
    signs = job.ctx.signs() if job.question.option("given") else {}
    formula, array, dimension = job.result(Kind.ELEMENT), job.result(Kind.ENTRIES), job.result(Kind.SHAPE)
    out_idx, wrt_idx = _derivative_indices(of, wrt, formula)
    out_names, wrt_names = [i.name for i in out_idx], [i.name for i in wrt_idx]
    base = job.problem.index_base
    job.autograd = True
    for sizes in job.draw_sizes([of, wrt], FORMULA_DRAWS):
        try:
            values, forward, variable = _differentiable_setup(job, of, wrt, sizes, signs=signs)
            of_shape = tuple(job.graph(sizes, values).num(n) for n in of.shape)
        except Mismatch:
            return
        wrt_shape = tuple(variable.shape)
        n_out = int(np.prod(of_shape, dtype=int))
        if at is None:
            rows = sampled_rows(n_out, job.rng)
            J = jacobian_rows(forward, variable, rows)           # rows of the numel(y) x numel(x) Jacobian
            if dimension is not None:
                shape = tuple(as_int(n, sizes) for n in dimension)
                if shape != of_shape + wrt_shape:
                    job.shape_mismatch("the dimension of the Jacobian", shape, of_shape + wrt_shape)
            if array is not None and not sizes:
                dense = sparse_values(sp.SparseMatrix(array), values, rows)
                job.compare("the Jacobian array", dense, J,
                            [f"row {r + base}, column {c + base}" for r in rows for c in range(J.shape[1])])
            _compare_pairs(job, f"the element formula d{of.name}/d{wrt.name}", formula, values, sizes,
                           out_names + wrt_names, [flat_positions(of_shape)[r] for r in rows], J, of, wrt)
        else:
            column = flat_index(tuple(int(a) for a in at), wrt_shape)
            rows = list(range(n_out))
            J = jacobian_rows(forward, variable, rows)[:, column]
            entry = entry_label(wrt.name, tuple(int(a) for a in at), base)
            if array is not None and not sizes:
                engine = [engine_value(v, values) for v in sp.Matrix(array)]
                job.compare(f"d{of.name}/d{entry} (array" + (", given signs)" if signs else ")"), engine, J,
                            [entry_label(of.name, p, base) for p in flat_positions(of_shape)])
            positions = flat_positions(of_shape)
            engine = [engine_value(formula, values, sizes, dict(zip(out_names, p))) for p in positions]
            job.compare(f"the element formula d{of.name}/d{entry}", engine, J,
                        [entry_label(of.name, p, base) for p in positions])


@checks("chain_rule")
def check_chain_rule(job):
    of, wrt = job.ctx.tensor("of"), job.ctx.tensor("wrt")
    upstream = upstream_name(of, wrt, job.question.option("upstream"))
    formula, array, dimension = job.result(Kind.ELEMENT), job.result(Kind.ENTRIES), job.result(Kind.SHAPE)
    avoid = chain_rule_avoid(of, wrt, upstream, job.question.option("loss", "l"))
    wrt_names = [i.name for i in _derivative_indices(of, wrt, formula, avoid)[1]]
    base = job.problem.index_base
    job.autograd = True
    for sizes in job.draw_sizes([of, wrt], FORMULA_DRAWS):
        try:
            values, forward, variable = _differentiable_setup(job, of, wrt, sizes, extra=[(upstream, of.shape)])
        except Mismatch:
            return
        grad = vjp(forward, variable, values[upstream])
        wrt_shape = tuple(variable.shape)
        if dimension is not None:
            shape = tuple(as_int(n, sizes) for n in dimension)
            if shape != wrt_shape:
                job.shape_mismatch(f"the shape of dl/d{wrt.name}", shape, wrt_shape)
        if array is not None and not sizes:
            engine = [engine_value(v, values) for v in sp.Matrix(array)]
            job.compare(f"the gradient array dl/d{wrt.name} (random upstream {upstream})", engine, grad,
                        [entry_label(wrt.name, p, base) for p in flat_positions(wrt_shape)])
        positions = sample_positions(wrt_shape, MAX_ENTRIES, job.rng)
        engine = [engine_value(formula, values, sizes, dict(zip(wrt_names, p))) for p in positions]
        job.compare(f"the element formula dl/d{wrt.name}", engine,
                    [grad[p] for p in positions], [entry_label(wrt.name, p, base) for p in positions])


@checks("value")
def check_value(job):
    expr = job.ctx.expression("expr")
    if expr.free_symbols or expr.atoms(sp.Indexed):
        job.reason = "the value depends on tensor entries, so it is not a number"
        return
    job.random_inputs = False
    reference = float(to_torch(expr, _no_lookup))
    exact, decimal = job.result(Kind.VALUE), job.result(Kind.DECIMAL)
    if exact is not None:
        job.compare("the exact value with the expression evaluated in torch",
                    [float(sp.N(exact, 30))], [reference], ["the value"])
    elif decimal is not None:
        digits = job.question.option("digits", 4)
        ok = abs(float(decimal) - reference) <= 0.5 * 10 ** (math.floor(math.log10(abs(reference) or 1))
                                                             - digits + 1) * (1 + 1e-6)
        if not ok:
            job.mismatch = f"the {digits}-digit decimal {decimal} does not round torch's value {reference!r}"
        job.also.append(f"the {digits}-digit decimal (the only form given) agrees with the expression evaluated "
                        "in torch to those digits")


def _no_lookup(atom):
    raise VerifyError(f"the value names {atom}, which has no value")


@checks("conv_matrix")
def check_conv_matrix(job):
    layer = job.ctx.tensor("of")
    which = job.question.option("matrix", "A")
    wrt = layer.x if which == "A" else layer.weight
    name = job.question.option("name", "A" if which == "A" else "X")
    matrix, formula = job.result(Kind.ENTRIES), job.result(Kind.ELEMENT)
    names = [i.name for idx in _derivative_indices(layer, wrt, formula) for i in idx]
    base = job.problem.index_base
    job.autograd = True
    (sizes,) = job.draw_sizes([layer], 1)
    try:
        values, forward, variable = _differentiable_setup(job, layer, wrt, sizes)
        of_shape = tuple(job.graph(sizes, values).get(layer).shape)
    except Mismatch:
        return
    rows = sampled_rows(int(np.prod(of_shape, dtype=int)), job.rng)
    J = jacobian_rows(forward, variable, rows)
    if matrix is not None:
        if tuple(matrix.shape) != (int(np.prod(of_shape, dtype=int)), variable.numel()):
            job.shape_mismatch(f"the shape of {name}", matrix.shape, (int(np.prod(of_shape)), variable.numel()))
            return
        job.compare(f"{name} with the Jacobian d vec({layer.name})/d vec({wrt.name}) from autograd"
                    + (f" ({len(rows)} random rows)" if len(rows) < matrix.rows else ""),
                    sparse_values(matrix, values, rows), J,
                    [f"row {r + base}, column {c + base}" for r in rows for c in range(J.shape[1])])
    if formula is not None:
        _compare_pairs(job, f"the entry formula of {name}", formula, values, sizes, names,
                       [flat_positions(of_shape)[r] for r in rows], J, layer, wrt)


@checks("backward_matrix")
def check_backward_matrix(job):
    B = job.result(Kind.ENTRIES)
    base = job.problem.index_base
    setup = _conv_setup(job)
    if setup is None:
        return
    layer, sizes, values, forward, variable, y_shape = setup
    n_y = int(np.prod(y_shape, dtype=int))
    if B is None:
        job.reason = "the answer has no matrix B"
        return
    if tuple(B.shape) != (variable.numel(), n_y):
        job.shape_mismatch("the shape of B", B.shape, (variable.numel(), n_y))
        return
    columns = sampled_rows(n_y, job.rng)
    # Column j of B is dL/dvec(x) for the upstream gradient g = e_j: one backward pass each.
    J = jacobian_rows(forward, variable, columns)
    dense = sparse_values(B.T, values, columns)
    job.compare("B's columns with dL/dx from autograd's backward pass with g = e_j"
                + (f" ({len(columns)} random j)" if len(columns) < n_y else ""), dense, J,
                [f"B[{c + base}, {r + base}]" for r in columns for c in range(J.shape[1])])
    g = job.random(y_shape)
    full = sparse_values(B, values) @ g.reshape(-1)
    job.compare("B g with autograd's dL/dx for a random g", full, vjp(forward, variable, g),
                [f"row {r + base}" for r in range(len(full))])


@checks("backward_conv")
def check_backward_conv(job):
    import torch
    import torch.nn.functional as F
    padding, kernels = job.result("padding"), job.result("kernels")
    base = job.problem.index_base
    setup = _conv_setup(job)
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
