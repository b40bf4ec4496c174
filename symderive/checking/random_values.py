"""Random values for the tensors an answer names (meeting the question's sign constraints),
and the explicit entries of an answer compared with the engine's at them."""
import functools

import numpy as np
import sympy as sp

from ..evaluate import CannotEvaluate, evaluate
from ..matrix_functions import WHOLE_MATRIX, InverseOf, well_conditioned

NUMERIC_RTOL = 1e-7


def rewrite(expr):
    """Functions symderive.evaluate does not know, in ones it does."""
    return expr.replace(lambda e: isinstance(e, (sp.sign, sp.cosh, sp.sinh, sp.sech)),
                        lambda e: e.rewrite(sp.exp) if not isinstance(e, sp.sign) else
                        sp.Piecewise((1, e.args[0] > 0), (-1, e.args[0] < 0), (0, True)))


@functools.lru_cache(maxsize=32)
def _matrix_facts(e):
    """(names of the tensors ``e`` uses, names of those it inverts, names of those it takes det or
    log det of), in one walk of ``e``: the same large expression is drawn for many times."""
    names, inverses, whole = [], set(), set()
    for atom in e.atoms(sp.Indexed, *WHOLE_MATRIX):
        if isinstance(atom, WHOLE_MATRIX):
            whole.add(atom.args[0].label.name)
        elif isinstance(atom.base, InverseOf):
            inverses.add(atom.base.matrix.label.name)
        else:
            names.append(atom.base.label.name)
    return tuple(names) + tuple(sorted(inverses | whole)), frozenset(inverses), frozenset(whole)


def _matrix_names(e):
    """Names of the tensors ``e`` uses: entries, and the matrices of X⁻¹, det X and log det X."""
    return _matrix_facts(e)[0]


def tensors_in(info, *exprs):
    """The declared tensors (and the upstream gradient) whose entries the expressions use."""
    decls = info.context_args["scope"]
    upstream = info.context_args.get("upstream")
    extra = info.context_args.get("extra_tensors") or {}
    out = {}
    for e in exprs:
        for name in _matrix_names(e):
            t = upstream if upstream is not None and name == upstream.name else decls.lookup(name)
            if t is None:
                t = extra.get(name)           # the sheet's own names (δ^{z_1})
            if t is not None:
                out[name] = t
    return list(out.values())


def draw_values(info, a, b, sizes, rng):
    """Random arrays for the tensors of ``a`` and ``b`` and random reals for their other symbols,
    at the given sizes, meeting the question's constraints: (arrays by name, scalars)."""
    arrays = {}
    facts = [_matrix_facts(e) for e in (a, b)]
    inverses = facts[0][1] | facts[1][1]
    inverted = inverses | facts[0][2] | facts[1][2]
    labels = class_labels(a, b, info)
    for t in tensors_in(info, a, b):
        shape = tuple(int(sp.sympify(n).xreplace(sizes)) for n in t.shape)
        if np.prod(shape) > 1_000_000:
            raise CannotEvaluate("the sizes are too large to test")
        arrays[t.name] = rng.normal(size=shape) * 0.8
        if t.name in labels:                       # class labels: whole numbers in [0, C)
            top = int(sp.sympify(labels[t.name]).xreplace(sizes)) if labels[t.name] is not None else 2
            arrays[t.name] = rng.integers(0, max(1, top), size=shape).astype(float)
        if getattr(t, "symmetric", False):           # a declared fact the engine's answer uses
            arrays[t.name] = (arrays[t.name] + arrays[t.name].T) / 2
        if t.name in inverted:                       # X⁻¹, det X, log det X: invertible, det X > 0
            arrays[t.name] = well_conditioned(rng, shape[0], getattr(t, "symmetric", False))
    for name in inverses & set(arrays):             # X^{-1} once, not at every entry
        arrays[f"{name}^{{-1}}"] = np.linalg.inv(arrays[name])
    scalars = dict(sizes)
    index_like = set()
    for e in (a, b):
        for s in e.atoms(sp.Sum):
            index_like |= {lim[0] for lim in s.limits}
    for e in (a, b):
        for s in e.free_symbols:
            if s in scalars or s in index_like or isinstance(s, sp.Idx) or isinstance(s, sp.Dummy):
                continue
            if s.is_integer:
                continue
            if isinstance(s, sp.Symbol) and s.name in labels and s.name not in arrays:   # a scalar class label
                top = int(sp.sympify(labels[s.name]).xreplace(sizes)) if labels[s.name] is not None else 2
                scalars[s] = float(rng.integers(0, max(1, top)))
                continue
            scalars[s] = float(rng.normal() * 0.8)
    _enforce_constraints(info, arrays, scalars, sizes)
    return arrays, scalars


def class_labels(a, b, info):
    """{tensor name: number of classes or None}: tensors whose entries the expressions use as class labels —
    an argument of a Kronecker delta, or a condition bounding the entry by a size (0 ≤ y_n, y_n + 1 ≤ C, the
    engine's guard that a label is a class). Random values for them are whole numbers below that size, as a
    class-label tensor holds; random reals would test only the branch for labels that are no class."""
    sizes = set(info.context_args["scope"].sizes.values())
    out = {}
    for e in (a, b):
        for d in e.atoms(sp.KroneckerDelta):
            for arg in d.args:
                for ind in arg.atoms(sp.Indexed):
                    out.setdefault(ind.base.label.name, None)
        for label, top in _scalar_labels(e, info).items():
            out.setdefault(label, top)
        for rel in e.atoms(sp.core.relational.Relational):
            entries = rel.atoms(sp.Indexed)
            # the sizes the relation itself names (not the ranges of the entries' own indices)
            bound = rel.xreplace({ind: sp.Dummy() for ind in entries}).free_symbols & sizes
            for ind in entries:
                if bound:
                    out[ind.base.label.name] = min(bound, key=str)
    return out


def _scalar_labels(e, info):
    """{name: number of classes} of the scalar tensors ``e`` uses as a class label: an index of a declared
    tensor (U_{p,o}: o < V, the size of that axis) or an argument of a Kronecker delta against a summed
    index (δ(o, j), j < V): word2vec's outside word o, the label of one sample."""
    scope = info.context_args["scope"]
    scalar = {}
    for sym in e.free_symbols:
        if isinstance(sym, sp.Symbol) and not isinstance(sym, (sp.Dummy, sp.Idx)) and not sym.is_integer:
            t = _declared(scope, sym.name)
            if t is not None and not t.shape and t.base == sym:
                scalar[sym] = sym.name
    if not scalar:
        return {}
    out = {}
    for ind in e.atoms(sp.Indexed):
        t = _declared(scope, ind.base.label.name)
        for k, i in enumerate(ind.indices):
            if i in scalar and t is not None and k < len(t.shape):
                out[scalar[i]] = t.shape[k]
    for total in e.atoms(sp.Sum):
        ranges = {var: hi + 1 for var, lo, hi in total.limits if lo == 0}
        for d in total.function.atoms(sp.KroneckerDelta):
            a, b = d.args
            for label, other in ((a, b), (b, a)):
                if label in scalar and other in ranges:
                    out.setdefault(scalar[label], ranges[other])
    return out


def _declared(scope, name):
    try:
        return scope.lookup(name)
    except Exception:
        return None


def _enforce_constraints(info, arrays, scalars, sizes):
    """Make random values satisfy the declared linear constraints (Σ p = 1) by solving for one entry."""
    for left, right in info.constraints:
        f = (left - right).xreplace(sizes)
        entries = sorted(f.atoms(sp.Indexed), key=str)
        names = [e.base.label.name for e in entries] or [
            ind.base.label.name for s in f.atoms(sp.Sum) for ind in s.function.atoms(sp.Indexed)]
        if not names or names[0] not in arrays:
            continue
        array = arrays[names[0]]
        flat = array.reshape(-1)
        try:
            flat[-1] = 0.0
            f0 = evaluate(f, arrays, scalars)
            flat[-1] = 1.0
            f1 = evaluate(f, arrays, scalars)
        except Exception:
            continue
        if abs(f1 - f0) > 1e-12:
            flat[-1] = -f0 / (f1 - f0)


def numeric_entries(pending, info, seed, deadline):
    """(points compared, None) when every (row, column, answer, expected) entry agrees at random
    values, else (points, the first entry that does not)."""
    rng = np.random.default_rng(seed)
    everything = sp.Add(*[a for _, _, a, _ in pending]) + sp.Add(*[b for _, _, _, b in pending])
    points = 0
    for _ in range(4):
        arrays, scalars = draw_values(info, everything, sp.Integer(0), {}, rng)
        for r, c, a, b in pending:
            try:
                vb = evaluate(rewrite(b), arrays, scalars)
                va = evaluate(rewrite(a), arrays, scalars)
            except (CannotEvaluate, ArithmeticError, ValueError, TypeError):
                return points, (r, c, a, b)
            points += 1
            if abs(va - vb) > NUMERIC_RTOL * max(1.0, abs(va), abs(vb)):
                return points, (r, c, a, b)
    return points, None
