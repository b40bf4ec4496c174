"""Cross-check derived answers against PyTorch autograd, at random float64 inputs.

For every question whose answer is a number, a shape, an element formula, a
Jacobian, a chain-rule gradient or a convolution / backward matrix, the same
computation is built in PyTorch (the layer ops of ``torch_ops.TORCH_OPS``,
differentiated with ``torch.autograd``), both sides are evaluated at the same
random inputs (seeded per question, reproducible), and the largest absolute and
relative differences are reported. Symbolic sizes are replaced by random small
sizes for which PyTorch accepts the layers. Layer stacks (``network:``) are
built from the torch.nn modules of ``torch_ops.NETWORK_OPS``; numeric passes are
redone by autograd and ``torch.optim.SGD``; a proved identity has both of its
sides computed in torch. One checker per ask, in ``CHECKS``; an ask without one
is reported as not checked, never passed.

A cross-check is numerical agreement at random points: it never changes an
answer's status. Its report (``CrossCheck``) is stored on the answer as
``answer.cross_check``, printed on the sheet under the status line and in
``--json``.

    from symderive import load_problem
    from symderive.verify import cross_check
    problem = load_problem("problems/nyu-dl-2021-hw3.yaml")
    answers = problem.solve()
    for report in cross_check(problem, answers):
        print(report.question, report.outcome, report.max_rel)

torch is optional (``pip install 'symderive[verify]'``) and imported only when
a cross-check runs.
"""
import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .answer import Status
from .derivative import chain_rule_avoid, derivative, derivative_indices, upstream_name
from .errors import QuestionTimeout, SymderiveError
from .tensors import flat_positions
from .torch_ops import VerifyError, integer_value, op_for, to_float, to_torch

#: Entries agree when |engine - torch| <= TOLERANCE * max(|torch|, 1):
#: relative error for values of magnitude 1 or more, absolute error below.
TOLERANCE = 1e-9
#: The reported relative error is taken over entries with |torch value| >= NEAR_ZERO.
NEAR_ZERO = 1e-6
#: At most this many entries of one array (and rows of one Jacobian) are compared; chosen at random.
MAX_ENTRIES = 400
MAX_ROWS = 64
#: Random size assignments tried per question when sizes are symbolic.
SHAPE_DRAWS = 20
FORMULA_DRAWS = 3
#: Base seed; each question's generator is seeded with this and a hash of its problem and id.
SEED = 20240607

INSTALL_HINT = ("--verify cross-checks answers with PyTorch, which is not installed. Install it with\n"
                "    pip install 'symderive[verify]'\n"
                "or\n"
                "    pip install torch==2.13.0")

AGREE, DISAGREE, NO_COUNTERPART = "agree", "disagree", "no PyTorch counterpart"
NOT_CHECKED, NOTHING = "not checked", "nothing to check"


class TorchMissing(RuntimeError):
    """PyTorch is not importable."""


def require_torch():
    """Import torch or raise ``TorchMissing`` with the install hint."""
    try:
        import torch
    except ImportError:
        raise TorchMissing(INSTALL_HINT) from None
    return torch


@dataclass
class CrossCheck:
    """How one answer compares with PyTorch. ``outcome`` is one of AGREE, DISAGREE,
    NO_COUNTERPART (agreement, but some layer was computed from its own SymPy formula),
    NOT_CHECKED (a reason says why) or NOTHING (nothing numerical to compare)."""
    question: str
    outcome: str
    reason: str = ""
    max_abs: float = None
    max_rel: float = None
    compared: list = field(default_factory=list)        # what was compared, in words
    formula_layers: list = field(default_factory=list)  # (name, kind, registered): no torch op used
    sizes: list = field(default_factory=list)           # random size assignments used (symbolic sizes)
    worst: str = ""                                      # where the largest difference is
    autograd: bool = False                               # whether derivatives were compared
    random_inputs: bool = True                           # False: a constant expression, no inputs
    also: list = field(default_factory=list)            # agreements not within the tolerance (decimals, words)
    seed: int = None
    entries: int = 0                                     # numbers compared
    seconds: float = 0.0
    tolerance: float = TOLERANCE
    torch_version: str = ""

    @property
    def ok(self):
        return self.outcome != DISAGREE

    def _errors(self):
        rel = "n/a (all values near zero)" if self.max_rel is None else f"{self.max_rel:.1e}"
        return f"max abs. error {self.max_abs:.1e}, max rel. error {rel}"

    def _where(self):
        if not self.random_inputs:
            return "float64"
        parts = [f"random float64 inputs, seed {self.seed}"]
        if self.sizes:
            shown = "; ".join(", ".join(f"{k} = {v}" for k, v in s.items()) for s in self.sizes[:3])
            more = f" and {len(self.sizes) - 3} more" if len(self.sizes) > 3 else ""
            parts.append(f"random sizes {shown}{more}")
        return "; ".join(parts)

    def _compared(self):
        items = list(self.compared)
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    def formula_note(self):
        """Which layers had no PyTorch counterpart, and what that leaves checked."""
        names = ", ".join(f"{n} ({k}{'' if registered else ', no entry in symderive/torch_ops.py'})"
                          for n, k, registered in self.formula_layers)
        many = len(self.formula_layers) > 1
        it = "them" if many else "it"
        checked = (f"so only the differentiation through {it} is checked, not the formula itself" if self.autograd
                   else "so the formula is compared with itself")
        return (f"layer{'s' if many else ''} {names} {'have' if many else 'has'} no PyTorch counterpart and "
                f"{'were' if many else 'was'} computed from {'their own SymPy formulas' if many else 'its own SymPy formula'}, {checked}")

    def sentence(self):
        """One honest sentence for the sheet: what was compared, with what, and the errors."""
        tool = "PyTorch autograd" if self.autograd else "PyTorch"
        points = "at random points" if self.random_inputs else "in floating point"
        if self.outcome == AGREE:
            parts = [f"compared {self._compared()}; all agree within {self.tolerance:g} ({self._errors()})"
                     ] if self.max_abs is not None else []
            return (f"Cross-checked with {tool} ({self._where()}): " + "; ".join(parts + self.also)
                    + f". This is numerical agreement {points}; it does not change how the answer was established.")
        if self.outcome == NO_COUNTERPART:
            if self.max_abs is None:
                return f"Not cross-checked with PyTorch: {self.reason or self.formula_note()}."
            return (f"Not fully cross-checked with PyTorch: {self.formula_note()}. With that, compared "
                    f"{self._compared()}; all agree within {self.tolerance:g} ({self._where()}; {self._errors()}).")
        if self.outcome == DISAGREE:
            return (f"Cross-check with {tool} DISAGREES ({self._where()}): {self.worst}; {self._errors()}. "
                    "The status above is the engine's; this numerical check contradicts it.")
        if self.outcome == NOT_CHECKED:
            return f"Not cross-checked with PyTorch: {self.reason}."
        return f"Nothing to cross-check with PyTorch: {self.reason}."

    def _repr_markdown_(self):
        return self.sentence()

    def to_json(self):
        return {
            "outcome": self.outcome,
            "tool": (f"PyTorch {self.torch_version}" + (" autograd" if self.autograd else "")).strip(),
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "tolerance": self.tolerance,
            "compared": list(self.compared),
            "also_agree": list(self.also),
            "entries": self.entries,
            "no_counterpart": [{"layer": n, "kind": k} for n, k, _ in self.formula_layers],
            "sizes": [dict(s) for s in self.sizes],
            "seed": self.seed,
            "worst": self.worst,
            "reason": self.reason,
            "text": self.sentence(),
            "seconds": round(self.seconds, 4),
        }


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def cross_check(problem, answers, seed=SEED, timeout=None):
    """Cross-check each answer of ``problem`` (as returned by ``problem.solve()``) with PyTorch.

    Sets ``answer.cross_check`` on each and returns the reports in the same order.
    Raises ``TorchMissing`` when torch is not installed.
    """
    torch = require_torch()
    from .timeouts import time_limit
    reports = []
    for answer in answers:
        start = time.perf_counter()
        question_seed = (seed + zlib.crc32(f"{problem.name}/{answer.question_id}".encode())) % 2**32
        try:
            question = problem.question(answer.question_id)
        except KeyError:
            question = None
        try:
            with time_limit(timeout):
                report = _check(problem, question, answer, question_seed)
        except VerifyError as exc:
            report = CrossCheck(answer.question_id, NOT_CHECKED, reason=str(exc))
        except QuestionTimeout:
            report = CrossCheck(answer.question_id, NOT_CHECKED,
                                reason=f"the cross-check took longer than the time limit of {timeout:g} s")
        except SymderiveError as exc:
            report = CrossCheck(answer.question_id, NOT_CHECKED, reason=f"could not rebuild the question: {exc}")
        except Exception as exc:     # a bug in the verifier must not stop the run
            report = CrossCheck(answer.question_id, NOT_CHECKED,
                                reason=f"internal error in the cross-check: {type(exc).__name__}: {exc}")
        report.seed = question_seed
        report.seconds = time.perf_counter() - start
        report.torch_version = torch.__version__.split("+")[0]
        answer.cross_check = report
        reports.append(report)
    return reports


def _check(problem, question, answer, seed):
    if question is None:
        return CrossCheck(answer.question_id, NOT_CHECKED, reason="the question is not in the problem file")
    if answer.status is Status.FAILED:
        return CrossCheck(answer.question_id, NOTHING, reason="the question failed, so there is no answer")
    if question.ask in NOTHING_TO_CHECK:
        return CrossCheck(answer.question_id, NOTHING, reason=NOTHING_TO_CHECK[question.ask])
    checker = CHECKS.get(question.ask)
    if checker is None:
        return CrossCheck(answer.question_id, NOT_CHECKED,
                          reason=f"no cross-check is written for ask '{question.ask}' "
                                 "(symderive/verify.py, CHECKS)")
    job = Job(problem, question, answer, np.random.default_rng(seed))
    checker(job)
    return job.report()


# ---------------------------------------------------------------------------------------------
# One question's cross-check: random sizes and values, the torch graph, the comparisons
# ---------------------------------------------------------------------------------------------
class Mismatch(Exception):
    """Engine and torch disagree on a shape: a disagreement, reported as such."""


class Job:
    def __init__(self, problem, question, answer, rng):
        from .asks import Context
        self.problem, self.question, self.answer, self.rng = problem, question, answer, rng
        self.decls = problem.declarations(question)
        self.ctx = Context(problem, question, self.decls)
        self.max_abs, self.max_rel, self.max_mixed = 0.0, None, 0.0
        self.worst, self.entries, self.compared = "", 0, []
        self.formula_layers, self.sizes = {}, []
        self.autograd, self.mismatch, self.reason, self.random_inputs = False, None, "", True
        self.also = []                         # agreements that are not within TOLERANCE, in words

    # results of the answer -------------------------------------------------------------
    def result(self, label):
        for r in self.answer.results:
            if r.label == label:
                return r.value
        return None

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
        return _random_sizes(self, self.size_symbols(nodes), count, valid)

    def _valid(self, nodes, sizes):
        for node in _graph_nodes(nodes):
            if not node.is_layer and any(_int(n, sizes) is None or _int(n, sizes) < 1 for n in node.shape):
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
        out = EngineValues({}, self.decls.lookup, sizes)
        for node in _graph_nodes(nodes):
            if not node.is_layer and node.name not in out:
                out[node.name] = self.random([_int(n, sizes) for n in node.shape])
        for name, shape in extra:
            out[name] = self.random([_int(n, sizes) for n in shape])
        return out

    def random(self, shape):
        shape = tuple(shape)
        return self.rng.uniform(0.25, 2.0, size=shape) * self.rng.choice([-1.0, 1.0], size=shape)

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
        value = _int(v, self.sizes)
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
            expected = tuple(_int(n, self.sizes) for n in node.shape)
            if self.check_shapes and tuple(out.shape) != expected:
                self.job.shape_mismatch(f"shape of layer {node.name}", expected, out.shape)
                raise Mismatch(f"layer {node.name}: shape {expected} but torch gives {tuple(out.shape)}")
        self.cache[node.name] = out
        return out


def _int(v, sizes):
    v = sp.sympify(v).xreplace(sizes)
    return int(v) if v.is_Integer else None


def _hyper(node):
    return [v for attr in ("stride", "padding", "dilation", "kernel") for v in getattr(node, attr, ())]


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
    if isinstance(expr, sp.Indexed) and all(i.is_Integer for i in expr.indices):
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
        shape = tuple(_int(n, self.sizes) for n in node.shape)
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


def _positions(shape, count, rng):
    """Up to ``count`` positions of ``shape`` (all when there are few), row-major."""
    positions = flat_positions(shape)
    if len(positions) <= count:
        return positions
    chosen = sorted(rng.choice(len(positions), size=count, replace=False))
    return [positions[k] for k in chosen]


def _flat(pos, shape):
    return int(np.ravel_multi_index(pos, shape)) if shape else 0


def _label(name, pos, base):
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


def _sampled_rows(n, rng):
    return list(range(n)) if n <= MAX_ROWS else sorted(int(r) for r in rng.choice(n, MAX_ROWS, replace=False))


# ---------------------------------------------------------------------------------------------
# One checker per ask
# ---------------------------------------------------------------------------------------------
def _derivative_indices(of, wrt, formula, avoid=()):
    """The index symbols of ∂of/∂wrt as the engine names them: (output indices, wrt indices).

    Read off the element expression the derivative starts from (cheap); the full derivative is
    recomputed only if the answer's formula uses other free indices."""
    try:
        out_idx, _, wrt_idx = derivative_indices(of, wrt, avoid)
        if _free_indices(formula) <= {i.name for i in out_idx + wrt_idx}:
            return out_idx, wrt_idx
    except Exception:      # the engine's internals changed: ask it the slow way
        pass
    d = derivative(of, wrt, avoid)
    return d.out_idx, d.wrt_idx


def _free_indices(expr):
    return {s.name for s in sp.sympify(expr).free_symbols if isinstance(s, sp.Idx)} if expr is not None else set()


def _compare_pairs(job, what, formula, values, sizes, names, out_positions, J, of, wrt):
    """An element formula at (output, input) index pairs against rows of the autograd Jacobian:
    row k of ``J`` belongs to the output position ``out_positions[k]``."""
    wrt_shape = tuple(_int(n, sizes) for n in wrt.shape)
    pairs = [(k, p, q) for k, p in enumerate(out_positions) for q in flat_positions(wrt_shape)]
    if len(pairs) > MAX_ENTRIES:
        pairs = [pairs[i] for i in sorted(job.rng.choice(len(pairs), MAX_ENTRIES, replace=False))]
    engine = [engine_value(formula, values, sizes, dict(zip(names, p + q))) for _, p, q in pairs]
    base = job.problem.index_base
    job.compare(f"{what} at (output, input) index pairs", engine, [J[k, _flat(q, wrt_shape)] for k, _, q in pairs],
                [f"{_label(of.name, p, base)} by {_label(wrt.name, q, base)}" for _, p, q in pairs])


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


def check_shape(job):
    layer = job.ctx.tensor("of")
    engine_shape = job.result("shape")
    if not layer.is_layer:
        job.reason = "a declared tensor's shape is given, not derived"
        return
    for sizes in job.draw_sizes([layer], SHAPE_DRAWS):
        graph = job.graph(sizes, job.values([layer], sizes))
        try:
            torch_shape = tuple(graph.get(layer).shape)
        except Mismatch:
            return
        shape = tuple(_int(n, sizes) for n in engine_shape)
        if None in shape or len(shape) != len(torch_shape):
            job.shape_mismatch(f"shape of {layer.name}", shape, torch_shape)
            return
        where = ", ".join(f"{s.name} = {v}" for s, v in sizes.items())
        job.compare(f"the shape of {layer.name} with the shape torch produces", shape, torch_shape,
                    labels=[f"axis {k + 1}" + (f" at {where}" if where else "") for k in range(len(shape))])


def check_element(job):
    layer = job.ctx.tensor("of")
    formula = job.result("element")
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
        shape = tuple(_int(n, sizes) for n in layer.shape)
        dimension = job.result("dimension")
        if dimension is not None and tuple(_int(n, sizes) for n in dimension) != tuple(out.shape):
            job.shape_mismatch(f"the dimension of {layer.name}", [_int(n, sizes) for n in dimension], out.shape)
            return
        positions = _positions(shape, MAX_ENTRIES, job.rng)
        engine = [engine_value(formula, values, sizes, dict(zip((i.name for i in idx), pos)))
                  for pos in positions]
        job.compare(f"the element formula of {layer.name} with the "
                    "forward pass", engine, [out[pos] for pos in positions],
                    [_label(layer.name, pos, base) for pos in positions])


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


def check_derivative(job):
    of = job.ctx.tensor("of")
    wrt, at = job.ctx.tensor_or_entry("wrt")
    signs = job.ctx.signs() if job.question.option("given") else {}
    formula, array, dimension = job.result("element"), job.result("array"), job.result("dimension")
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
            rows = _sampled_rows(n_out, job.rng)
            J = jacobian_rows(forward, variable, rows)           # rows of the numel(y) x numel(x) Jacobian
            if dimension is not None:
                shape = tuple(_int(n, sizes) for n in dimension)
                if shape != of_shape + wrt_shape:
                    job.shape_mismatch("the dimension of the Jacobian", shape, of_shape + wrt_shape)
            if array is not None and not sizes:
                dense = sparse_values(sp.SparseMatrix(array), values, rows)
                job.compare("the Jacobian array", dense, J,
                            [f"row {r + base}, column {c + base}" for r in rows for c in range(J.shape[1])])
            _compare_pairs(job, f"the element formula d{of.name}/d{wrt.name}", formula, values, sizes,
                           out_names + wrt_names, [flat_positions(of_shape)[r] for r in rows], J, of, wrt)
        else:
            column = _flat(tuple(int(a) for a in at), wrt_shape)
            rows = list(range(n_out))
            J = jacobian_rows(forward, variable, rows)[:, column]
            entry = _label(wrt.name, tuple(int(a) for a in at), base)
            if array is not None and not sizes:
                engine = [engine_value(v, values) for v in sp.Matrix(array)]
                job.compare(f"d{of.name}/d{entry} (array" + (", given signs)" if signs else ")"), engine, J,
                            [_label(of.name, p, base) for p in flat_positions(of_shape)])
            positions = flat_positions(of_shape)
            engine = [engine_value(formula, values, sizes, dict(zip(out_names, p))) for p in positions]
            job.compare(f"the element formula d{of.name}/d{entry}", engine, J,
                        [_label(of.name, p, base) for p in positions])


def check_chain_rule(job):
    of, wrt = job.ctx.tensor("of"), job.ctx.tensor("wrt")
    upstream = upstream_name(of, wrt, job.question.option("upstream"))
    formula, array, dimension = job.result("element"), job.result("array"), job.result("dimension")
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
            shape = tuple(_int(n, sizes) for n in dimension)
            if shape != wrt_shape:
                job.shape_mismatch(f"the shape of dl/d{wrt.name}", shape, wrt_shape)
        if array is not None and not sizes:
            engine = [engine_value(v, values) for v in sp.Matrix(array)]
            job.compare(f"the gradient array dl/d{wrt.name} (random upstream {upstream})", engine, grad,
                        [_label(wrt.name, p, base) for p in flat_positions(wrt_shape)])
        positions = _positions(wrt_shape, MAX_ENTRIES, job.rng)
        engine = [engine_value(formula, values, sizes, dict(zip(wrt_names, p))) for p in positions]
        job.compare(f"the element formula dl/d{wrt.name}", engine,
                    [grad[p] for p in positions], [_label(wrt.name, p, base) for p in positions])


def check_value(job):
    expr = job.ctx.expression("expr")
    if expr.free_symbols or expr.atoms(sp.Indexed):
        job.reason = "the value depends on tensor entries, so it is not a number"
        return
    job.random_inputs = False
    reference = float(to_torch(expr, _no_lookup))
    exact, decimal = job.result("exact"), job.result("decimal")
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


def check_conv_matrix(job):
    layer = job.ctx.tensor("of")
    which = job.question.option("matrix", "A")
    wrt = layer.x if which == "A" else layer.weight
    name = job.question.option("name", "A" if which == "A" else "X")
    matrix, formula = job.result("matrix"), job.result("element")
    names = [i.name for idx in _derivative_indices(layer, wrt, formula) for i in idx]
    base = job.problem.index_base
    job.autograd = True
    (sizes,) = job.draw_sizes([layer], 1)
    try:
        values, forward, variable = _differentiable_setup(job, layer, wrt, sizes)
        of_shape = tuple(job.graph(sizes, values).get(layer).shape)
    except Mismatch:
        return
    rows = _sampled_rows(int(np.prod(of_shape, dtype=int)), job.rng)
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


def check_backward_matrix(job):
    B = job.result("B")
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
    columns = _sampled_rows(n_y, job.rng)
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
    stride = [_int(v, sizes) for v in layer.stride]
    dilation = [_int(v, sizes) for v in layer.dilation]
    crop = [_int(v, sizes) for v in layer.padding]
    in_spatial = list(variable.shape[len(variable.shape) - dims:])
    kernels = sp.Array(kernels)
    weight = torch.tensor(np.array([engine_value(v, values) for v in sp.flatten(kernels.tolist())],
                                   dtype=float).reshape(kernels.shape), dtype=torch.float64)
    if not layer.channels:
        weight = weight[None, None]
    n_y = int(np.prod(y_shape, dtype=int))
    columns = _sampled_rows(n_y, job.rng)
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


# ---------------------------------------------------------------------------------------------
# Layer stacks (network.py): torch.nn modules from torch_ops.NETWORK_OPS
# ---------------------------------------------------------------------------------------------
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
    batch = _int(shape.batch, sizes) if shape.batch is not None else 1
    spatial = tuple(_int(n, sizes) for n in shape.spatial or ())
    return (batch, _int(shape.channels, sizes)) + spatial


def _in_layout(torch_shape, layout):
    """A batch-first, channels-first torch shape written in the engine's layout letters."""
    spatial = dict(zip("HW" if len(torch_shape) == 4 else "L", torch_shape[2:]))
    values = {"N": torch_shape[0], "C": torch_shape[1], **spatial}
    return tuple(values[letter] for letter in layout)


def _random_sizes(job, symbols, count, valid):
    """[{}] without symbols, else up to ``count`` random assignments (1..4) that ``valid`` accepts."""
    if not symbols:
        return [{}]
    found, seen = [], set()
    for _ in range(200 * count):
        values = tuple(int(v) for v in job.rng.integers(1, 5, size=len(symbols)))
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


def _run_network(job, network, sizes):
    """The torch output of each top-level layer (eval mode, no grad) at the given sizes."""
    import torch
    from .torch_ops import network_module
    num = lambda v: _int(v, sizes)  # noqa: E731
    x = torch.tensor(job.random(_net_input_shape(network.shape, sizes)), dtype=torch.float64)
    outputs = []
    with torch.no_grad():
        for layer in network.layers:
            x = network_module(layer, num).eval()(x)
            outputs.append(x)
    return outputs


def _question_network(job, key="network", spec=None):
    from .network import question_network
    return question_network(job.ctx, key, spec=spec)


def check_shape_table(job):
    network = _question_network(job)
    rows = network.rows()
    for sizes in _random_sizes(job, _net_symbols(network), FORMULA_DRAWS, lambda z: _run_network(job, network, z)):
        for row, out in zip(rows, _run_network(job, network, sizes)):
            engine = job.result(row.layer.name)
            if engine is None:
                continue
            engine = tuple(_int(v, sizes) for v in engine)
            reference = _in_layout(tuple(out.shape), row.shape_out.layout)
            if len(engine) != len(reference):
                job.shape_mismatch(f"the shape after {row.layer.name}", engine, reference)
                return
            job.compare("the shape after each layer with torch.nn's output shape", engine, reference,
                        [f"{row.layer.name}, axis {a}" for a in row.shape_out.layout])


def _count_parameters(network, sizes, mode):
    """name -> parameters of each layer (and of each layer inside a block), and 'total'."""
    from .torch_ops import network_module
    num = lambda v: _int(v, sizes)  # noqa: E731
    found = {}
    for layer in network.layers:
        network_module(layer, num, {"with": True, "without": False, "declared": None}[mode], found)
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in found.items()}
    counts["total"] = sum(counts[layer.name] for layer in network.layers)
    return counts


def _multiply_adds(network, sizes):
    """Multiply-adds of one example, from torch's FLOP counter (2 FLOPs per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from .torch_ops import network_module
    num = lambda v: _int(v, sizes)  # noqa: E731
    x = torch.zeros((1,) + _net_input_shape(network.shape, sizes)[1:], dtype=torch.float64)
    modules = torch.nn.Sequential(*[network_module(layer, num) for layer in network.layers]).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        modules(x)
    return counter.get_total_flops() / 2


def check_parameter_count(job):
    from .asks.parameter_count import modes
    chosen = modes(job.ctx)
    spec = job.question.spec
    networks = ({str(name): _question_network(job, "networks", value) for name, value in spec["networks"].items()}
                if "networks" in spec else {None: _question_network(job)})
    first = None
    for name, network in networks.items():
        draws = _random_sizes(job, _net_symbols(network), 1,
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
                            [_int(v, sizes) for v in engine], [counts[m][key] for m in chosen],
                            [f"{label} ({m})" for m in chosen])
            if name is None:
                continue
            macs = job.result(f"{name} multiply-adds")
            if macs is not None and network.shape is not None:
                job.compare("the multiply-adds per example with torch's FLOP counter (FLOPs / 2)",
                            [_int(macs, sizes)], [_multiply_adds(network, sizes)], [f"{name} multiply-adds"])
            total = counts[chosen[0]]["total"]
            if first is None:
                first = (name, total)
            elif job.result(f"{name} / {first[0]}") is not None:
                job.compare("the ratio of the totals", [float(sp.N(job.result(f"{name} / {first[0]}"), 30))],
                            [total / first[1]], [f"{name} / {first[0]}"])


def check_batchnorm_shapes(job):
    import torch
    from .network import input_shape
    shape = input_shape(job.ctx.option("input"), job.ctx.decls.scope(), job.question.spec)
    channels_first = "".join(["N", "C"] + [a for a in shape.layout if a not in "NC"])
    symbols = sorted({s for d in shape.dims() for s in sp.sympify(d).free_symbols}, key=lambda s: s.name)

    def run(sizes):
        dims = dict(zip(shape.layout, (_int(d, sizes) for d in shape.dims())))
        x = torch.tensor(job.random([dims[a] for a in channels_first]), dtype=torch.float64)
        cls = torch.nn.BatchNorm2d if len(shape.spatial or ()) == 2 else torch.nn.BatchNorm1d
        bn = cls(dims["C"], dtype=torch.float64).train()
        return bn, bn(x)

    for sizes in _random_sizes(job, symbols, FORMULA_DRAWS, run):
        bn, y = run(sizes)
        for label, tensor in (("mean", bn.running_mean), ("variance", bn.running_var),
                              ("gamma, beta", bn.weight), ("gamma, beta", bn.bias)):
            engine = tuple(_int(v, sizes) for v in job.result(label))
            job.compare("the shapes of the statistics and of gamma, beta with torch.nn.BatchNorm's",
                        engine, tuple(tensor.shape), [f"{label}, axis {k + 1}" for k in range(len(engine))])
        axes = [channels_first.index(a) for a in job.result("averaged over")]
        means = y.detach().mean(dim=axes).reshape(-1).numpy()
        job.compare("the axes averaged over (torch's normalised output has mean 0 over them, per channel)",
                    np.zeros_like(means), means, [f"channel {c + 1}" for c in range(len(means))])


def check_same_padding(job):
    import copy
    import torch
    from .network import Conv, Pool
    from .torch_ops import network_module
    network = _question_network(job)
    of = job.question.option("of")
    row = next(r for r in network.rows() if (r.layer.name == str(of).strip() if of is not None
                                             else isinstance(r.layer, (Conv, Pool))))
    padding = job.result("padding")
    layer = copy.copy(row.layer)
    layer.padding = tuple(padding) if isinstance(padding, tuple) else (padding,) * row.layer.dims
    for sizes in _random_sizes(job, _net_symbols(network), FORMULA_DRAWS, lambda z: _run_network(job, network, z)):
        num = lambda v: _int(v, sizes)  # noqa: E731
        if any(num(p) is None for p in layer.padding):
            job.mismatch = f"the padding {padding} is not a whole number"
            return
        shape = _net_input_shape(row.shape_in, sizes)
        with torch.no_grad():
            out = network_module(layer, num).eval()(torch.zeros(shape, dtype=torch.float64))
        engine = tuple(_int(v, sizes) for v in job.result("output shape"))
        job.compare(f"the output shape with padding {padding} with torch's", engine,
                    _in_layout(tuple(out.shape), row.shape_out.layout), [f"axis {a}" for a in row.shape_out.layout])
        job.compare("the input's spatial size with torch's output size (same padding)",
                    list(shape[2:]), list(out.shape[2:]), [f"spatial axis {k + 1}" for k in range(len(shape) - 2)])


def check_receptive_field(job):
    """The receptive field by autograd: the input positions where one output unit's gradient is
    nonzero, with positive weights, max pooling replaced by average pooling and ReLU by the
    identity (the same windows, and no path that can cancel or switch off)."""
    import torch
    from .torch_ops import network_module
    network = _question_network(job)
    rows = network.rows()
    of = job.question.option("of")
    target = next(r for r in rows if r.layer.name == str(of).strip()) if of is not None else rows[-1]
    engine = job.result("receptive field")
    job.autograd = True
    for sizes in _random_sizes(job, _net_symbols(network), 1, lambda z: [_int(v, z) for v in engine]):
        r, num = [_int(v, sizes) for v in engine], (lambda v, z=sizes: _int(v, z))
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
            module = _stand_ins(network_module(row.layer, num).eval())
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


# ---------------------------------------------------------------------------------------------
# Numeric networks (numeric_network.py): autograd through the same layers with the given values
# ---------------------------------------------------------------------------------------------
def _numeric_pass(job):
    """(NumericNetwork, torch output of each layer, the loss, the weights by name) after backward()."""
    import torch
    from .numeric_network import NumericNetwork
    from .torch_ops import linear_with_weights, network_module
    network = NumericNetwork(job.ctx)

    def leaf(value, vector):
        if isinstance(value, sp.MatrixBase):
            array = np.array([[float(sp.N(v, 30)) for v in value.row(r)] for r in range(value.rows)])
            array = array.reshape(-1) if vector else array
        else:
            array = np.array(float(sp.N(value, 30)))
        return torch.tensor(array, dtype=torch.float64, requires_grad=True)

    biases = {layer.bias_tensor.name for layer in network.linear_layers() if layer.bias_tensor is not None}
    params = {name: leaf(v, name in biases) for name, v in network.weights.items()}
    x = leaf(network.x0, True).detach()
    outputs = {}
    for layer in network.net.layers:
        if layer.kind == "Linear":
            bias = params[layer.bias_tensor.name] if layer.bias_tensor is not None else None
            x = linear_with_weights(x, params[layer.weight.name], bias, network.bias_node)
        else:
            x = network_module(layer, int)(x.unsqueeze(0))[0]
        x.retain_grad()
        outputs[layer.name] = x
    last = network.net.layers[-1].name

    def lookup(atom):
        if isinstance(atom, sp.Indexed) and atom.base.label.name == last:
            return outputs[last][tuple(int(i) for i in atom.indices)]
        raise VerifyError(f"the loss names {atom}, which has no value")

    loss = to_torch(network.loss_expr, lookup)
    loss.backward()
    return network, outputs, loss, params


def _floats(value):
    """Floats of an exact answer (a number or a matrix, row-major)."""
    if isinstance(value, sp.MatrixBase):
        return [float(sp.N(v, 30)) for v in value]
    return [float(sp.N(value, 30))]


def check_forward_backward(job):
    network, outputs, loss, params = _numeric_pass(job)
    job.autograd, job.random_inputs = True, False
    base = job.problem.index_base
    for name, out in outputs.items():
        engine, reference = _floats(job.result(name)), out.detach().reshape(-1).tolist()
        if network.bias_node and len(engine) == len(reference) + 1:
            reference = [1.0] + reference            # shown with the bias node 1 in front
        job.compare("every layer's output with torch's forward pass", engine, reference,
                    [f"{name}[{k + base}]" for k in range(len(engine))])
    job.compare("the loss", _floats(job.result(network.loss_name)), [float(loss.detach())], [network.loss_name])
    for name, out in list(outputs.items()) + list(params.items()):
        engine = job.result(f"d{network.loss_name}/d{name}")
        if engine is not None:
            job.compare("the gradients by every layer's output and every weight with autograd's", _floats(engine),
                        out.grad.reshape(-1).tolist(),
                        [f"d{network.loss_name}/d{name}, entry {k + base}" for k in range(out.numel())])


def check_gradient_step(job):
    import torch
    from .expressions import parse
    network, outputs, loss, params = _numeric_pass(job)
    job.autograd, job.random_inputs = True, False
    rate = float(parse(job.question.option("learning_rate"), job.ctx.decls.scope()))
    update = job.question.option("update", list(params))
    torch.optim.SGD([params[name] for name in update], lr=rate).step()
    for name in update:
        job.compare("W - rate dE/dW with one step of torch.optim.SGD", _floats(job.result(f"{name}'")),
                    params[name].detach().reshape(-1).tolist(),
                    [f"{name}', entry {k + job.problem.index_base}" for k in range(params[name].numel())])


def check_rnn_recurrence(job):
    import torch
    from .asks.rnn_recurrence import integer_option, number_option
    from .numeric_network import tensor_value
    ctx = job.ctx
    state = ctx.tensor("state")
    update = ctx.expression("update")
    job.autograd = True
    values = {}
    for symbol in update.free_symbols - {state.base}:
        tensor = ctx.decls.lookup(str(symbol))
        if tensor is not None and not tensor.is_layer and tensor.value_spec is not None:
            values[str(symbol)] = float(sp.N(tensor_value(ctx, tensor), 30))
        else:
            values[str(symbol)] = float(job.random(()))

    def g(a):
        return to_torch(update, lambda atom: a if atom.name == state.name else values[atom.name])

    def slope(a):
        a = torch.tensor(float(a), dtype=torch.float64, requires_grad=True)
        (d,) = torch.autograd.grad(g(a), a)
        return float(d)

    points = [float(v) for v in job.random((3,))]
    engine = [engine_value(job.result("derivative"),
                           EngineValues({**values, state.name: np.array(p)}, ctx.decls.lookup, {})) for p in points]
    job.compare("the derivative with autograd's at random states", engine, [slope(p) for p in points],
                [f"{state.name} = {p:.3g}" for p in points])
    a = torch.tensor(float(sp.N(number_option(ctx, "initial", 0), 30)), dtype=torch.float64)
    trajectory = []
    for _ in range(integer_option(ctx, "steps", 5, 1, 50)):
        a = g(a)
        trajectory.append(float(a))
    job.compare("the trajectory with the recurrence iterated in torch",
                [float(sp.N(v, 30)) for v in job.result("trajectory")], trajectory,
                [f"step {t + 1}" for t in range(len(trajectory))])
    fixed = job.result("fixed point")
    if fixed is None:
        return
    star = float(sp.N(fixed, 30))
    d = job.result("derivative at the fixed point")
    if not isinstance(sp.sympify(fixed), sp.Float):       # exact: it must be a fixed point to 1e-9
        job.compare("the fixed point a* with g(a*) in torch", [star],
                    [float(g(torch.tensor(star, dtype=torch.float64)))], ["a*"])
        if d is not None:
            job.compare("the derivative at the fixed point with autograd's", [float(sp.N(d, 30))], [slope(star)], ["d"])
    else:                                                 # a rounded decimal: agreement to its digits only
        digits = job.question.option("digits", 4)
        rounding = 10.0 ** (1 - digits)
        pairs = [("a*", star, float(g(torch.tensor(star, dtype=torch.float64))))]
        pairs += [("d", float(sp.N(d, 30)), slope(star))] if d is not None else []
        for name, mine, theirs in pairs:
            if abs(mine - theirs) > rounding * max(1.0, abs(theirs)):
                job.mismatch = f"{name} = {mine:.10g}, but torch gives {theirs:.10g} (beyond its {digits} digits)"
        job.also.append(f"the fixed point and the derivative there, given as {digits}-digit decimals, "
                           "agree with torch to those digits")
    size = abs(slope(star))
    expected = "neither" if abs(size - 1) <= 1e-9 else "vanishing" if size < 1 else "exploding"
    if job.result("verdict") is not None:
        job.also.append("the verdict matches autograd's |d| at the fixed point")
        if job.result("verdict") != expected:
            job.mismatch = f"the verdict '{job.result('verdict')}', but autograd's |d| = {size:.6g} means '{expected}'"


# ---------------------------------------------------------------------------------------------
# Identities (ask: prove): both sides computed by PyTorch, diff(...) by autograd
# ---------------------------------------------------------------------------------------------
def check_prove(job):
    """Both sides of the claim in torch at random inputs meeting the constraints: layer entries
    from the layers' torch ops, diff(f, x[i]) by autograd, then lhs against rhs."""
    from .expressions import parse_equation
    claim = job.result("claim")
    lhs, rhs = claim.lhs, claim.rhs
    free = sorted(_free_indices(lhs) | _free_indices(rhs))
    idx_of = {i.name: i for e in (lhs, rhs) for i in sp.sympify(e).free_symbols if isinstance(i, sp.Idx)}
    constraints = [parse_equation(text, job.ctx.decls.scope()) for text in job.question.option("constraints") or []]
    names = {a.base.label.name for e in (lhs, rhs) for a in e.atoms(sp.Indexed)} | \
        {s.name for e in (lhs, rhs) for s in e.free_symbols if isinstance(s, sp.Symbol) and not s.is_integer}
    nodes = [n for n in (job.decls.lookup(name) for name in sorted(names)) if n is not None]
    derivatives = sorted(set(lhs.atoms(sp.Derivative)) | set(rhs.atoms(sp.Derivative)), key=sp.default_sort_key)
    placeholders = {d: sp.Symbol(f"_derivative_{k}") for k, d in enumerate(derivatives)}
    sides = [sp.sympify(e).xreplace(placeholders) for e in (lhs, rhs)]
    job.autograd = bool(derivatives)
    for sizes in job.draw_sizes(nodes, FORMULA_DRAWS):
        values = job.values(nodes, sizes)
        env = {s: int(v) for s, v in sizes.items()}
        _meet_constraints(job, constraints, values, env)
        graph = job.graph(sizes, values)
        shape = [_int(idx_of[n].upper, sizes) + 1 for n in free]
        positions = _positions(tuple(shape), 60, job.rng)
        left, right = [], []
        for pos in positions:
            where = {**env, **dict(zip(free, pos))}
            known = {placeholders[d].name: _autograd_value(job, d, sizes, values, where) for d in derivatives}

            def lookup(atom, graph=graph, known=known):
                if isinstance(atom, sp.Symbol) and atom.name in known:
                    return known[atom.name]
                return _graph_entry(job, graph, atom)

            left.append(float(to_torch(sides[0], lookup, where)))
            right.append(float(to_torch(sides[1], lookup, where)))
        job.compare("the two sides of the claim, each computed by PyTorch"
                    + (" (diff by autograd)" if derivatives else ""), left, right,
                    [", ".join(f"{n} = {v + job.problem.index_base}" for n, v in zip(free, pos)) or "the claim"
                     for pos in positions], sides=("lhs", "rhs"))


def _graph_entry(job, graph, atom):
    """The torch value of a tensor or layer entry (zero outside its range) or of a scalar."""
    import torch
    name = atom.base.label.name if isinstance(atom, sp.Indexed) else atom.name
    node = job.decls.lookup(name)
    if node is None:
        raise VerifyError(f"'{name}' is not a declared tensor or layer")
    value = graph.get(node)
    if not isinstance(atom, sp.Indexed):
        return value
    idx = tuple(int(i) for i in atom.indices)
    if not all(0 <= i < n for i, n in zip(idx, value.shape)):
        return torch.zeros((), dtype=torch.float64)
    return value[idx]


def _autograd_value(job, derivative, sizes, values, env):
    """diff(f, v) at the index values ``env``: f computed in torch with v's tensor as a leaf."""
    import torch
    (variable, count), = derivative.variable_count
    if count != 1:
        raise VerifyError("only first derivatives are cross-checked")
    name = variable.base.label.name if isinstance(variable, sp.Indexed) else variable.name
    node = job.decls.lookup(name)
    forward = job.graph(sizes, values).get(node).detach().numpy()
    graph = job.graph(sizes, {**values, name: forward}, override={name})
    leaf = graph.leaf(name, requires_grad=True)
    f = to_torch(derivative.expr, lambda atom: _graph_entry(job, graph, atom), env)
    if not f.requires_grad:
        return 0.0
    (grad,) = torch.autograd.grad(f, leaf, allow_unused=True)
    if grad is None:
        return 0.0
    if not isinstance(variable, sp.Indexed):
        return float(grad)
    return float(grad[tuple(integer_value(i, env) for i in variable.indices)])


def _meet_constraints(job, constraints, values, env):
    """Make the random inputs meet linear constraints such as sum_i p[i] = 1, by solving each for
    the last entry of the first tensor it names."""
    for left, right in constraints:
        atoms = sorted(left.atoms(sp.Indexed) | right.atoms(sp.Indexed), key=sp.default_sort_key)
        if not atoms:
            continue
        name = atoms[0].base.label.name
        if name not in values:
            raise VerifyError(f"cannot meet the constraint {left} = {right}: '{name}' is not an input")
        array = values[name]
        last = tuple(n - 1 for n in array.shape)

        def residual(v):
            array[last] = v
            return engine_value(left - right, values, None, env)

        at0, at1 = residual(0.0), residual(1.0)
        if abs(at1 - at0) < 1e-12:
            raise VerifyError(f"cannot meet the constraint {left} = {right} by its last entry of '{name}'")
        residual(-at0 / (at1 - at0))
        if abs(residual(array[last])) > 1e-9:
            raise VerifyError(f"the constraint {left} = {right} is not linear in '{name}': random inputs "
                              "cannot be drawn to meet it")


#: ask -> its cross-check. A new ask that derives something numerical gets one entry here.
CHECKS = {
    "shape": check_shape,
    "element": check_element,
    "derivative": check_derivative,
    "chain_rule": check_chain_rule,
    "value": check_value,
    "conv_matrix": check_conv_matrix,
    "backward_matrix": check_backward_matrix,
    "backward_conv": check_backward_conv,
    "shape_table": check_shape_table,
    "parameter_count": check_parameter_count,
    "batchnorm_shapes": check_batchnorm_shapes,
    "same_padding": check_same_padding,
    "receptive_field": check_receptive_field,
    "forward_backward": check_forward_backward,
    "gradient_step": check_gradient_step,
    "rnn_recurrence": check_rnn_recurrence,
    "prove": check_prove,
}

#: ask -> why it has nothing to compare numerically.
NOTHING_TO_CHECK = {
    "text": "authored text",
}



def report_lines(problem, reports):
    """Plain lines for the terminal: one per question, the worst difference for a disagreement."""
    width = max((len(r.question) for r in reports), default=0)
    lines = [f"cross-check with PyTorch ({problem.path}), agreement within {TOLERANCE:g} "
             "(relative; absolute where |value| < 1):"]
    for r in reports:
        if r.max_abs is not None:
            rel = "n/a" if r.max_rel is None else f"{r.max_rel:.1e}"
            numbers = f"max abs. error {r.max_abs:.1e}, max rel. error {rel}, {r.entries} numbers, {r.seconds:.2f} s: "
        else:
            numbers = ""
        what = "; ".join(r.compared + r.also) or r.reason
        if r.formula_layers:
            what += "; " + r.formula_note()
        lines.append(f"  {r.question:<{width}}  {r.outcome}: {numbers}{what}")
        if r.outcome == DISAGREE:
            lines.append(f"  {'':<{width}}  worst: {r.worst}")
    return lines
