"""One question's cross-check: its random sizes and values, the torch graph of its tensors
and layers, the comparisons, and the numbers on the engine's side."""
import math

import numpy as np
import sympy as sp

from ..assumptions import domain as declared_domain
from ..layers import op_for
from ..tensors import flat_positions
from ..torch_ops import VerifyError, to_float
from .report import AGREE, CrossCheck, DISAGREE, MAX_ROWS, NEAR_ZERO, NOT_CHECKED, NO_COUNTERPART, TOLERANCE


class Mismatch(Exception):
    """Engine and torch disagree on a shape: a disagreement, reported as such."""


class Job:
    def __init__(self, problem, question, answer, rng):
        from ..asks import Context
        self.problem, self.question, self.answer, self.rng = problem, question, answer, rng
        self.decls = problem.declarations(question)
        self.ctx = Context(problem, question, self.decls)
        self.max_abs, self.max_rel, self.max_mixed = 0.0, None, 0.0
        self.worst, self.entries, self.compared = "", 0, []
        self.formula_layers, self.sizes = {}, []
        self.autograd, self.mismatch, self.reason, self.random_inputs = False, None, "", True
        self.also = []                         # agreements that are not within TOLERANCE, in words

    # results of the answer -------------------------------------------------------------
    def result(self, key):
        """The value of the answer's result with this key (a ``Kind`` or a key the ask sets), or None."""
        return self.answer.value(key)

    # sizes -------------------------------------------------------------------------------
    def size_symbols(self, nodes):
        found = set()
        for node in _graph_nodes(nodes):
            for v in list(node.shape) + _hyper(node):
                found |= {s for s in sp.sympify(v).free_symbols if s.is_integer}
        return sorted(found, key=lambda s: s.name)

    def draw_sizes(self, nodes, count, torch_nodes=None):
        """Size assignments for the symbolic sizes of ``nodes``: [{}] when all are numbers, else
        up to ``count`` random ones (1..4) for which every shape is positive and torch accepts
        the layers."""
        def valid(sizes):
            if not self._valid(nodes if torch_nodes is None else torch_nodes, sizes):
                raise VerifyError("PyTorch refuses these sizes")
        return random_sizes(self, self.size_symbols(nodes), count, valid)

    def _valid(self, nodes, sizes):
        for node in _graph_nodes(nodes):
            if not node.is_layer and any(as_int(n, sizes) is None or as_int(n, sizes) < 1 for n in node.shape):
                return False
        try:
            graph = self.graph(sizes, self.values(nodes, sizes), check_shapes=False)
            for node in nodes:
                if min(graph.get(node).shape, default=1) < 1:
                    return False
        except (RuntimeError, ValueError, VerifyError):   # torch refuses these sizes
            return False
        return True

    # values ------------------------------------------------------------------------------
    def values(self, nodes, sizes, extra=()):
        """Random values (|v| in [0.25, 2], either sign) for the leaves of ``nodes`` and for the
        tensors in ``extra`` ((name, shape) pairs); NumPy float64 arrays by name."""
        graph = _graph_nodes(nodes)
        # A layer built inside another (an unrolled RNN's steps, attention weights) is found by name
        # in the graph when an answer names it.
        inner = {node.name: node for node in graph}
        out = EngineValues({}, lambda name: self.decls.lookup(name) or inner.get(name), sizes)
        inverted = _inverted(nodes)
        domains = {name: domain for node in graph if node.is_layer for name, domain in node.domains().items()}
        for node in graph:
            if not node.is_layer and node.name not in out:
                out[node.name] = self.random([as_int(n, sizes) for n in node.shape],
                                             domains.get(node.name) or declared_domain(node), sizes)
                if node.symmetric:
                    out[node.name] = (out[node.name] + out[node.name].T) / 2
                if node.name in inverted:        # det, log det, X⁻¹: invertible, det > 0
                    n = out[node.name].shape[0]
                    out[node.name] = out[node.name] + (2 * n + 1) * np.eye(n)
        for name, shape in extra:
            out[name] = self.random([as_int(n, sizes) for n in shape])
        return out

    def random(self, shape, domain=None, sizes=None):
        """Random values of ``shape``; a ``domain`` a layer asks for its input (``Layer.domains``):
        ("labels", C) whole numbers 0..C−1, ("probabilities",) in (0, 1), ("mask",) 0 or 1; a declared
        fact (``assumptions.domain``): ("positive",), ("one_hot",) or ("simplex",) along the last axis."""
        shape = tuple(shape)
        if domain is None:
            return self.rng.uniform(0.25, 2.0, size=shape) * self.rng.choice([-1.0, 1.0], size=shape)
        if domain[0] == "labels":
            return self.rng.integers(0, as_int(domain[1], sizes or {}), size=shape).astype(float)
        if domain[0] == "probabilities":
            return self.rng.uniform(0.05, 0.95, size=shape)
        if domain[0] == "mask":
            return self.rng.integers(0, 2, size=shape).astype(float)
        if domain[0] == "mask rows":     # 0 or 1, at least one 1 in every row (a boolean attention mask)
            mask = self.rng.integers(0, 2, size=shape).astype(float)
            rows = mask.reshape(-1, shape[-1])
            rows[np.arange(rows.shape[0]), self.rng.integers(0, shape[-1], size=rows.shape[0])] = 1.0
            return rows.reshape(shape)
        if domain[0] == "positive":
            return self.rng.uniform(0.25, 2.0, size=shape)
        if domain[0] in ("one_hot", "simplex"):              # along the last axis
            if domain[0] == "simplex":
                raw = self.rng.uniform(0.1, 1.0, size=shape)
                return raw / raw.sum(axis=-1, keepdims=True)
            picked = self.rng.integers(0, shape[-1], size=shape[:-1])
            return (np.arange(shape[-1]) == picked[..., None]).astype(float)
        raise VerifyError(f"unknown domain of values {domain[0]!r}")

    def graph(self, sizes, values, override=(), check_shapes=True):
        return Graph(self, sizes, values, set(override), check_shapes)

    # comparisons -------------------------------------------------------------------------
    def compare(self, what, engine, reference, labels=None, sides=("engine", "torch")):
        """Compare arrays of numbers (engine vs torch); record the errors."""
        engine = np.asarray(engine, dtype=float).reshape(-1)
        reference = np.asarray(reference, dtype=float).reshape(-1)
        if engine.shape != reference.shape:
            self.mismatch = (f"{what}: the engine gives {engine.size} numbers, torch {reference.size}")
            return
        if not engine.size:
            return
        diff = np.abs(engine - reference)
        diff[np.isnan(engine) != np.isnan(reference)] = np.inf
        diff[np.isnan(engine) & np.isnan(reference)] = 0.0
        mixed = diff / np.maximum(np.abs(reference), 1.0)
        self.entries += engine.size
        self.max_abs = max(self.max_abs, float(diff.max()))
        big = np.abs(reference) >= NEAR_ZERO
        if big.any():
            rel = float((diff[big] / np.abs(reference[big])).max())
            self.max_rel = rel if self.max_rel is None else max(self.max_rel, rel)
        k = int(np.argmax(mixed))
        if mixed[k] > self.max_mixed or not self.worst:
            self.max_mixed = max(self.max_mixed, float(mixed[k]))
            at = labels[k] if labels is not None else f"entry {k}"
            self.worst = f"{what}, {at}: {sides[0]} {engine[k]:.17g}, {sides[1]} {reference[k]:.17g}"
        if what not in self.compared:
            self.compared.append(what)

    def shape_mismatch(self, what, engine_shape, torch_shape):
        self.mismatch = f"{what}: the engine gives {tuple(engine_shape)}, torch {tuple(torch_shape)}"

    def report(self):
        r = CrossCheck(self.answer.question_id, AGREE, compared=list(self.compared),
                       formula_layers=sorted((n, k, reg) for n, (k, reg) in self.formula_layers.items()),
                       sizes=self.sizes, autograd=self.autograd, entries=self.entries,
                       random_inputs=self.random_inputs, also=list(self.also))
        if self.mismatch:
            r.outcome, r.worst = DISAGREE, self.mismatch
            r.max_abs, r.max_rel = (self.max_abs, self.max_rel) if self.entries else (math.inf, math.inf)
            return r
        if not self.entries and self.also:
            return r
        if not self.entries:
            r.outcome = NO_COUNTERPART if self.formula_layers else NOT_CHECKED
            r.reason = self.reason or "nothing in the answer could be compared"
            return r
        r.max_abs, r.max_rel, r.worst = self.max_abs, self.max_rel, self.worst
        if self.max_mixed > TOLERANCE:
            r.outcome = DISAGREE
        elif self.formula_layers:
            r.outcome = NO_COUNTERPART
        return r


class Graph:
    """The torch values of a question's tensors and layers at one size assignment."""

    def __init__(self, job, sizes, values, override, check_shapes):
        import torch
        self.job, self.sizes, self.override, self.check_shapes = job, sizes, override, check_shapes
        self.values = values
        self.cache = {name: torch.tensor(v, dtype=torch.float64) for name, v in values.items()
                      if name in override}

    def num(self, v):
        value = as_int(v, self.sizes)
        if value is None:
            raise VerifyError(f"the size {v} is not a whole number at the drawn sizes")
        return value

    def leaf(self, name, requires_grad=False):
        """A fresh torch leaf for ``name`` (used as the variable to differentiate by)."""
        import torch
        t = torch.tensor(self.values[name], dtype=torch.float64, requires_grad=requires_grad)
        self.cache[name] = t
        return t

    def get(self, node):
        import torch
        if node.name in self.cache:
            return self.cache[node.name]
        if not node.is_layer:
            if node.name not in self.values:
                raise VerifyError(f"no value for tensor '{node.name}'")
            out = torch.tensor(self.values[node.name], dtype=torch.float64)
        else:
            op, registered = op_for(node)
            if not op.counterpart:
                self.job.formula_layers[node.name] = (node.kind, registered)
            out = op.compute(node, self.get, self.num)
            expected = tuple(as_int(n, self.sizes) for n in node.shape)
            if self.check_shapes and tuple(out.shape) != expected:
                self.job.shape_mismatch(f"shape of layer {node.name}", expected, out.shape)
                raise Mismatch(f"layer {node.name}: shape {expected} but torch gives {tuple(out.shape)}")
        self.cache[node.name] = out
        return out


def as_int(v, sizes):
    v = sp.sympify(v).xreplace(sizes)
    return int(v) if v.is_Integer else None


def _hyper(node):
    return [v for attr in ("stride", "padding", "dilation", "kernel") for v in getattr(node, attr, ())]


def _inverse_entry(expr):
    from ..matrix_functions import InverseOf
    return isinstance(expr.base, InverseOf)


def _inverted(nodes):
    """Names of the matrices whose determinant or inverse a layer of ``nodes`` takes."""
    from ..matrix_functions import inverted_names
    return {name for node in _graph_nodes(nodes) if getattr(node, "expr", None) is not None
            for name in inverted_names(node.expr)}


def _graph_nodes(nodes):
    """Every node the given nodes are built from (themselves included), each once."""
    found, stack = {}, list(nodes)
    while stack:
        node = stack.pop()
        if node is None or node.name in found:
            continue
        found[node.name] = node
        stack += list(getattr(node, "inputs", ()))
    return list(found.values())


# ---------------------------------------------------------------------------------------------
# Evaluating the engine's expressions numerically (SymPy, no torch involved)
# ---------------------------------------------------------------------------------------------
def engine_value(expr, values, sizes=None, indices=None):
    """A float for an engine expression: ``indices`` maps index names to numbers, ``sizes`` size
    symbols to numbers, ``values`` tensor names to NumPy arrays. Entries outside a tensor's
    range are zero (the engine's convention for zero padding). NumPy float64 only, no torch."""
    if isinstance(expr, sp.Indexed) and all(i.is_Integer for i in expr.indices) and not _inverse_entry(expr):
        return _entry(expr, values)
    env = {s: int(v) for s, v in (sizes or {}).items()}           # sizes by symbol, indices by name
    env.update(indices or {})

    def lookup(atom):
        if isinstance(atom, sp.Indexed):
            return _entry(atom, values)
        value = values[atom.name]
        if np.ndim(value) != 0:
            raise VerifyError(f"the answer uses '{atom.name}' without subscripts")
        return float(value)

    return float(to_float(expr, lookup, env))


class EngineValues(dict):
    """Values by tensor name for the engine's side. When an answer names an entry of a layer
    (e.g. s[p, q] for sigmoid(x)[p, q]), that layer is computed from its own definition with
    the engine's formulas, never from torch."""

    def __init__(self, data, lookup, sizes):
        super().__init__(data)
        self.lookup, self.sizes = lookup, sizes

    def __missing__(self, name):
        node = self.lookup(name)
        if node is None or not node.is_layer:
            raise VerifyError(f"the answer names '{name}', which has no value here")
        shape = tuple(as_int(n, self.sizes) for n in node.shape)
        if None in shape:
            raise VerifyError(f"layer '{name}' has no numeric shape at the drawn sizes")
        array = np.array([engine_value(node.definition(tuple(sp.Integer(i) for i in pos)), self, self.sizes)
                          for pos in flat_positions(shape)], dtype=float).reshape(shape)
        self[name] = array
        return array


def _entry(atom, values):
    name = atom.base.label.name
    arr = np.asarray(values[name])
    try:
        idx = tuple(int(i) for i in atom.indices)
    except TypeError:
        raise VerifyError(f"the entry {atom} has a non-numeric subscript") from None
    if len(idx) != arr.ndim:
        raise VerifyError(f"the entry {atom} has {len(idx)} subscripts; '{name}' has rank {arr.ndim}")
    if not all(0 <= i < n for i, n in zip(idx, arr.shape)):
        return 0.0
    return float(arr[idx])


def sparse_values(matrix, values, rows=None):
    """A dense NumPy array of a SymPy (sparse) matrix, entries evaluated; only ``rows`` if given."""
    rows = list(range(matrix.rows)) if rows is None else list(rows)
    where = {r: k for k, r in enumerate(rows)}
    out = np.zeros((len(rows), matrix.cols))
    items = matrix.todok().items() if hasattr(matrix, "todok") else \
        (((r, c), matrix[r, c]) for r in rows for c in range(matrix.cols))
    for (r, c), v in items:
        if r in where and v != 0:
            out[where[r], c] = engine_value(v, values)
    return out


def sample_positions(shape, count, rng):
    """Up to ``count`` positions of ``shape`` (all when there are few), row-major."""
    positions = flat_positions(shape)
    if len(positions) <= count:
        return positions
    chosen = sorted(rng.choice(len(positions), size=count, replace=False))
    return [positions[k] for k in chosen]


def flat_index(pos, shape):
    return int(np.ravel_multi_index(pos, shape)) if shape else 0


def entry_label(name, pos, base):
    return f"{name}[{', '.join(str(p + base) for p in pos)}]" if pos else name


# ---------------------------------------------------------------------------------------------
# Torch references
# ---------------------------------------------------------------------------------------------
def jacobian_rows(output_fn, variable, rows):
    """Rows of d vec(output)/d vec(variable) by reverse-mode autograd (one backward pass each)."""
    import torch
    y = output_fn(variable).reshape(-1)
    out = np.zeros((len(rows), variable.numel()))
    if not y.requires_grad:           # the output does not depend on the variable at all
        return out
    for k, r in enumerate(rows):
        (g,) = torch.autograd.grad(y[r], variable, retain_graph=True, allow_unused=True)
        if g is not None:
            out[k] = g.detach().reshape(-1).numpy()
    return out


def vjp(output_fn, variable, upstream):
    """∂L/∂variable for L with ∂L/∂output = upstream, by autograd."""
    import torch
    y = output_fn(variable)
    if not y.requires_grad:           # the output does not depend on the variable at all
        return np.zeros(tuple(variable.shape))
    g = torch.tensor(upstream, dtype=torch.float64).reshape(y.shape)
    (grad,) = torch.autograd.grad(y, variable, grad_outputs=g, allow_unused=True)
    return np.zeros(tuple(variable.shape)) if grad is None else grad.detach().numpy()


def sampled_rows(n, rng):
    return list(range(n)) if n <= MAX_ROWS else sorted(int(r) for r in rng.choice(n, MAX_ROWS, replace=False))


def random_sizes(job, symbols, count, valid):
    """[{}] without symbols, else up to ``count`` random assignments (1..4) that ``valid`` accepts.

    The first is drawn from 2..4 while such sizes are accepted: a size of 1 can make a formula
    vanish wherever it is compared (a step t - 1 out of range, a sum of one term), so that the
    comparison could not fail; the others may use 1, the edge case of their own."""
    if not symbols:
        return [{}]
    found, seen = [], set()
    for attempt in range(200 * count):
        low = 2 if not found and attempt < 100 else 1
        values = tuple(int(v) for v in job.rng.integers(low, 5, size=len(symbols)))
        if values in seen:
            continue
        seen.add(values)
        sizes = dict(zip(symbols, map(sp.Integer, values)))
        try:
            valid(sizes)
        except (RuntimeError, ValueError, VerifyError):
            continue
        found.append(sizes)
        if len(found) == count:
            break
    if not found:
        raise VerifyError("found no small sizes (1 to 4) that PyTorch accepts here")
    job.sizes += [{s.name: int(v) for s, v in sizes.items()} for sizes in found]
    return found


def free_indices(expr):
    return {s.name for s in sp.sympify(expr).free_symbols if isinstance(s, sp.Idx)} if expr is not None else set()
