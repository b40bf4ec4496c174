"""Prove lhs = rhs for all sizes, or say exactly how much less was established.

The outcome is one of (``answer.Status``):

- proved: the simplification pipeline turns lhs into rhs with symbolic sizes;
- verified at sizes: lhs − rhs simplifies to 0 exactly at each listed size;
- numerically checked: only agreement at seeded random points was found;
- failed: lhs ≠ rhs somewhere, with the point (sizes, index values, inputs) as
  the counterexample.

A claim may use ``diff(f, x[i])`` (kept unevaluated while parsing): the proof
first writes f down to the declared tensors and differentiates.
"""
import random
from dataclasses import dataclass, field

import sympy as sp

from .answer import Status
from .indices import names_in, substitute
from .layers import expand_layers
from .simplify import (Rewrite, apply_constraints, cancel_factors, canonical_sums, exponential_forms, fold,
                       in_exponentials, pull_out_of_sums, simplify_steps, split_exponentials, split_logarithms, tidy)
from .tensors import zero_outside


@dataclass
class Claim:
    lhs: sp.Expr
    rhs: sp.Expr
    free: tuple                      # free indices (Idx) the claim holds for
    layers: dict                     # name -> Layer, for expansion
    constraints: list = field(default_factory=list)   # [(lhs, rhs, label)]
    fold_names: tuple = ()           # layers whose definitions are written back as names
    sizes: tuple = ()                # size symbols
    shapes: tuple = ()               # shapes of the tensors the claim names directly


@dataclass
class Outcome:
    status: Status
    steps: list                      # [Rewrite]
    detail: str
    counterexample: dict = None


def evaluate_derivatives(expr, layers, avoid=()):
    """Replace each diff(f, v) by the derivative of f written down to the declared tensors.

    The layers' summation indices are chosen apart from ``avoid`` and from the names in the
    variables v (a softmax's Σ_j must not bind the j of ∂/∂z_j)."""
    found = list(expr.atoms(sp.Derivative))
    if not found:
        return expr, expr
    avoid = set(avoid) | names_in(expr)
    written = expr.xreplace({d: sp.Derivative(expand_layers(d.expr, layers, avoid), *d.variables, evaluate=False)
                             for d in found})
    return written, written.doit(deep=False) if not written.atoms(sp.Derivative) else _doit(written)


def _doit(expr):
    return expr.replace(lambda e: isinstance(e, sp.Derivative), lambda e: sp.diff(e.expr, *e.variables))


def definitions_of(claim):
    """(name entry, definition) pairs with a Wild per index, for folding."""
    out = []
    for name in claim.fold_names:
        layer = claim.layers[name]
        wilds = tuple(sp.Wild(f"w{n}", exclude=[]) for n in range(layer.rank))
        entry = layer.base[wilds] if wilds else layer.base
        out.append((entry, layer.element(wilds, expand=True)))
    return out


def prove_claim(claim, check_sizes=(2, 3, 4), samples=4, seed=0):
    steps = [Rewrite(claim.lhs, "the left-hand side of the claim")]
    written, lhs = evaluate_derivatives(claim.lhs, claim.layers, context_names(claim))
    if written != claim.lhs:
        steps.append(Rewrite(written, "write the function down to the declared tensors"))
        logs = written.replace(lambda e: isinstance(e, sp.log), lambda e: sp.expand_log(e, force=True))
        if logs != written:
            steps.append(Rewrite(logs, r"log of a quotient: $\log(a/b) = \log a - \log b$, and $\log e^{z} = z$"))
            written, lhs = logs, _doit(logs)
    if lhs != written:
        steps.append(Rewrite(lhs, r"differentiate (chain rule; $\partial x_a/\partial x_b = \delta_{ab}$)"))
    constraints = [(c[0], c[1]) for c in claim.constraints]
    labels = [c[2] for c in claim.constraints]
    pipeline = simplify_steps(lhs, constraints, definitions_of(claim), labels)
    steps += pipeline
    lhs_s = pipeline[-1].expr if pipeline else lhs
    rhs_s = fold(canonical_sums(claim.rhs), definitions_of(claim))
    if _same(lhs_s, rhs_s):
        return _proved(claim, _closed(_renamed(steps, rhs_s), claim.rhs, []), check_sizes, seed)
    # Second try: both sides written down to the declared tensors, with the rules for shifts
    # (e^{a+b} = e^a e^b, factors out of sums, cancelling, log of a product).
    left = _written_out(lhs_s, claim, constraints, labels)
    right = _written_out(claim.rhs, claim, constraints, labels)
    for n in range(len(left) + 1):
        form = left[n - 1].expr if n else lhs_s
        if _same(form, rhs_s):
            return _proved(claim, _closed(_renamed(steps + left[:n], rhs_s), claim.rhs, []), check_sizes, seed)
    lhs_w, rhs_w = (left[-1].expr if left else lhs_s), (right[-1].expr if right else claim.rhs)
    if _same(lhs_w, rhs_w):
        return _proved(claim, _closed(_renamed(steps + left, rhs_w), claim.rhs, right), check_sizes, seed)
    # Third try, for identities without sums: σ and tanh written in exponentials, then simplified.
    middle = _in_exponentials(lhs_w, rhs_w)
    if middle is not None:
        return _proved(claim, _closed(steps + left + middle, claim.rhs, right), check_sizes, seed)
    return _check_at_sizes(claim, steps, check_sizes, samples, seed)


def _written_out(expr, claim, constraints, labels):
    """The rewrites of ``expr`` with every layer written out: [Rewrite], each one that changed it."""
    chain = []

    def record(new, why):
        if new != (chain[-1].expr if chain else expr):
            chain.append(Rewrite(new, why))

    def last():
        return chain[-1].expr if chain else expr

    record(expand_layers(expr, claim.layers, context_names(claim)), "write every layer out down to the "
                                                                     "declared tensors")
    record(split_exponentials(last()), r"$e^{a+b} = e^{a} e^{b}$")
    record(pull_out_of_sums(last()), "pull factors that do not depend on the summation index out of the sum")
    record(cancel_factors(last()), "cancel the factors common to the numerator and the denominator")
    record(split_logarithms(last()), r"$\log(ab) = \log a + \log b$ for $a, b > 0$, and $\log e^{a} = a$")
    for (lhs, rhs), label in zip(constraints, labels):
        record(apply_constraints(last(), [(lhs, rhs)]), f"use the constraint {label}")
    record(fold(last(), definitions_of(claim)), "recognise the named sub-expressions")
    record(tidy(last()), "collect terms")
    return chain


def _in_exponentials(lhs, rhs):
    """[Rewrite] from ``lhs`` to ``rhs`` through σ and tanh written in exponentials and SymPy's
    simplify, or None when there is a sum (simplify does not know bound indices) or no proof."""
    if lhs.has(sp.Sum) or rhs.has(sp.Sum):
        return None
    lhs_e, rhs_e = in_exponentials(lhs), in_exponentials(rhs)
    steps = [Rewrite(lhs_e, "write in exponentials: " + exponential_forms(lhs))] if lhs_e != lhs else []
    try:
        common_l, common_r = sp.simplify(lhs_e), sp.simplify(rhs_e)
        if _same(common_l, common_r):
            if common_l != (steps[-1].expr if steps else lhs):
                steps.append(Rewrite(common_l, "simplify (SymPy: combine the fractions, cancel)"))
            if common_r != rhs_e:
                steps.append(Rewrite(rhs_e, "simplify, read from right to left"))
        elif sp.simplify(lhs_e - rhs_e) == 0:
            steps.append(Rewrite(rhs_e, "the difference of the two sides simplifies to 0 (SymPy simplify)"))
        else:
            return None
    except (TypeError, ValueError, NotImplementedError, RecursionError):
        return None
    if rhs_e != rhs:
        steps.append(Rewrite(rhs, "write in exponentials: " + exponential_forms(rhs) + ", read from right to left"))
    return steps


def _renamed(steps, rhs):
    """``steps``, plus the step that renames bound indices alike when only that makes the last form
    equal to ``rhs`` (Σ_i e^{z_i} / Σ_k e^{z_k} is 1 once both sums use one name)."""
    last = steps[-1].expr
    if tidy(last - rhs) == 0 or sp.expand(last - rhs) == 0:
        return steps
    renamed = tidy(canonical_sums(last))
    return steps + [Rewrite(renamed, "name the bound indices alike (a sum does not depend on the name of its "
                                     "index) and collect terms")] if renamed != last else steps


def _closed(steps, rhs, right):
    """``steps`` (ending at a form of the right-hand side) followed by the rewrites of the right-hand
    side ``right`` read backwards, down to ``rhs`` itself."""
    steps = list(steps)
    forms = [rhs] + [r.expr for r in right]
    for k in range(len(right), 0, -1):
        steps.append(Rewrite(forms[k - 1], right[k - 1].why + ", read from right to left"))
    if steps[-1].expr != rhs:
        steps.append(Rewrite(rhs, "which is the right-hand side"))
    elif not right:
        steps[-1] = Rewrite(rhs, steps[-1].why + ": the right-hand side")
    return steps


def context_names(claim):
    """Every name a bound index of the proof must not take: the claim's free indices and the
    names in both sides (sizes, tensors, layers)."""
    return {idx.name for idx in claim.free} | names_in(claim.lhs) | names_in(claim.rhs)


def _sizes_used(claim):
    """The size symbols the claim depends on (through its tensors' shapes or its indices)."""
    used = {s for shape in claim.shapes for n in shape for s in sp.sympify(n).free_symbols}
    for layer in claim.layers.values():
        for leaf in list(layer.leaves().values()) + [layer]:
            for n in leaf.shape:
                used |= sp.sympify(n).free_symbols
    for idx in claim.free:
        used |= sp.sympify(idx.upper).free_symbols
    return [s for s in claim.sizes if s in used]


def _for_all(claim):
    names = ", ".join(str(s) for s in _sizes_used(claim))
    return f"Every step holds for all values of {names}." if names else "Every step is an identity."


def _same(a, b):
    return tidy(canonical_sums(a) - canonical_sums(b)) == 0 or sp.expand(a - b) == 0


# Concrete sizes --------------------------------------------------------------------------

def _concrete(expr, claim, size, index_values, layers):
    """``expr`` at a concrete size and concrete free-index values, written down to the declared
    tensors and differentiated there: computed from the claim as written, never from the proof's
    own symbolic result, so that an error in the pipeline cannot confirm itself."""
    subs = {s: sp.Integer(size) for s in claim.sizes}
    # Indices first (capture-free: only free occurrences), while the sizes are still symbols:
    # substituting a size rebuilds each Idx (its range changes).
    e = substitute(expr, {idx: sp.Integer(v) for idx, v in zip(claim.free, index_values)})
    e = e.xreplace({d: sp.Derivative(expand_layers(d.expr, layers), *d.variables, evaluate=False)
                    for d in e.atoms(sp.Derivative)})
    e = _zero_padding(_expand_sums(expand_layers(e, layers).xreplace(subs)), layers, subs)
    return _doit(e) if e.has(sp.Derivative) else e


def _expand_sums(expr):
    """Every sum written out term by term (all its limits are concrete here)."""
    return expr.replace(lambda e: isinstance(e, (sp.Sum, sp.Product)), lambda e: e.doit())


def _zero_padding(expr, layers, subs):
    shapes = {}
    for layer in layers.values():
        for leaf in layer.leaves().values():
            shape = tuple(sp.sympify(n).xreplace(subs) for n in leaf.shape)
            if all(n.is_Integer for n in shape):
                shapes[leaf.name] = shape
    return zero_outside(expr, shapes) if shapes else expr


def _solve_constraints(claim, size, layers):
    """At a concrete size each (linear) constraint fixes one entry: {entry: value}."""
    fixed = {}
    for lhs, rhs, _ in claim.constraints:
        eq = (_concrete(lhs, claim, size, (), layers) - rhs).xreplace(fixed)
        unknowns = sorted(eq.atoms(sp.Indexed), key=sp.default_sort_key)
        if not unknowns:
            continue
        target = unknowns[-1]
        solution = sp.solve(eq, target, dict=True)
        if solution:
            fixed[target] = solution[0][target]
    return fixed


def _index_assignments(claim, size):
    """Every value of the free indices at this size (0-based)."""
    ranges = []
    for idx in claim.free:
        upper = sp.sympify(idx.upper).xreplace({s: sp.Integer(size) for s in claim.sizes})
        ranges.append(range(int(upper) + 1))
    combos = [()]
    for r in ranges:
        combos = [c + (v,) for c in combos for v in r]
    return combos


def _spot_check(claim, size, seed):
    """A counterexample at one random point per index value at ``size``, or None: both sides
    computed from the claim as written, so a proof whose rewrites went wrong cannot stand."""
    rng = random.Random(seed)
    fixed = _solve_constraints(claim, size, claim.layers)
    for values in _index_assignments(claim, size):
        left = _concrete(claim.lhs, claim, size, values, claim.layers).xreplace(fixed)
        right = _concrete(claim.rhs, claim, size, values, claim.layers).xreplace(fixed)
        counter, _ = _counterexample(claim, size, values, left, right, fixed, rng, 1)
        if counter is not None:
            return counter
    return None


def _proved(claim, steps, check_sizes, seed):
    """PROVED, unless the claim evaluated directly disagrees at a point (then FAILED there)."""
    counter = _spot_check(claim, min(check_sizes, default=2), seed)
    if counter is not None:
        return Outcome(Status.FAILED, steps, "The claim is false (so a rewrite above is wrong: please report "
                                             "it).", counter)
    return Outcome(Status.PROVED, steps, _for_all(claim))


def _check_at_sizes(claim, steps, check_sizes, samples, seed):
    layers = claim.layers
    sizeless = not _sizes_used(claim)
    if sizeless:
        check_sizes = tuple(check_sizes)[:1]     # nothing depends on the size: one is every one
    rng = random.Random(seed)
    undecided = []
    for size in check_sizes:
        fixed = _solve_constraints(claim, size, layers)
        for values in _index_assignments(claim, size):
            left = _concrete(claim.lhs, claim, size, values, layers).xreplace(fixed)
            right = _concrete(claim.rhs, claim, size, values, layers).xreplace(fixed)
            difference = sp.simplify(in_exponentials(left - right))
            if difference == 0:
                continue
            counter, agreed = _counterexample(claim, size, values, left, right, fixed, rng, samples)
            if counter is not None:
                return Outcome(Status.FAILED, steps, "The claim is false.",
                               counter)
            if agreed < samples:
                return Outcome(Status.FAILED, steps,
                               f"Neither proved nor disproved: at size {size} the difference does not simplify "
                               "to 0 and it could not be evaluated at random points.")
            undecided.append((size, values))
    if sizeless and not undecided and check_sizes:
        return Outcome(Status.PROVED, steps + [Rewrite(claim.rhs, "lhs − rhs simplifies exactly to 0 (at every value "
                                                                   "of the free indices; no size is involved)")],
                       "No size is involved: lhs − rhs simplifies exactly to 0, which proves the claim.")
    sizes = ", ".join(str(s) for s in check_sizes)
    names = ", ".join(str(s) for s in claim.sizes) or "size"
    if undecided and sizeless:
        return Outcome(Status.NUMERIC, steps, "No proof: exact simplification was inconclusive and lhs = rhs at "
                                              f"{samples} random points (not a proof).")
    if undecided:
        return Outcome(Status.NUMERIC, steps,
                       f"No proof for all sizes; at {names} = {sizes} exact simplification was inconclusive "
                       f"and lhs = rhs at {samples} random points per case (not a proof).")
    return Outcome(Status.VERIFIED, steps,
                   f"No proof for all sizes was found; lhs − rhs simplifies exactly to 0 at {names} = {sizes} "
                   "for every index value (not a proof for other sizes).")


def _counterexample(claim, size, values, left, right, fixed, rng, samples):
    """(counterexample or None, number of random points where both sides evaluated and agreed).

    Inputs are random rationals; constrained entries take the values the constraints fix."""
    # Entries of both sides: ones that cancel in left − right still need values.
    both = sp.Tuple(left, right)
    inputs = sorted(both.free_symbols | set(both.atoms(sp.Indexed)), key=sp.default_sort_key)
    labels = {e.base.label for e in both.atoms(sp.Indexed)}
    inputs = [v for v in inputs if isinstance(v, sp.Indexed)
              or (isinstance(v, sp.Symbol) and not v.is_integer and v not in labels)]
    agreed = 0
    for _ in range(samples):
        point = {v: sp.Rational(rng.randint(-20, 20), rng.randint(1, 10)) for v in inputs if v not in fixed}
        fixed_values = {k: sp.sympify(v).xreplace(point) for k, v in fixed.items()}
        full = {**point, **fixed_values}
        a, b = sp.N(left.xreplace(full), 20), sp.N(right.xreplace(full), 20)
        if not (a.is_number and b.is_number and a.is_finite and b.is_finite):
            continue
        if abs(a - b) > 1e-9 * max(1, abs(a), abs(b)):
            return {"sizes": {str(s): size for s in _sizes_used(claim)},
                    "indices": {idx.name: v for idx, v in zip(claim.free, values)},
                    "inputs": full, "lhs": a, "rhs": b}, agreed
        agreed += 1
    return None, agreed
