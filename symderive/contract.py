"""Contract Kronecker deltas inside sums, keeping every range condition explicit.

    Σ_{k=lo}^{hi} f(k) · δ(a·k + r, j)  =  f((j − r)/a)   if lo ≤ (j − r)/a ≤ hi  (and a | j − r)
                                          0              otherwise

SymPy's ``deltasummation`` does the a = 1 case but drops the divisibility
condition when a ≠ ±1 (a dilated kernel index d·k), so it is wrong there;
this module does the general affine case, and then turns conditions on a
remaining summation index into the sum's bounds, which is how a backward
convolution is written by hand.

Work is on a flat list of ``Term`` s (coefficient, conditions, sum limits):
an expression is the sum of its terms, each term being
Σ_limits [conditions] · coefficient.
"""
from dataclasses import dataclass, field

import sympy as sp
from sympy.core.cache import cacheit

from .indices import INDEX_LETTERS, names_in, substitute
from .sympy_memos import replace


@dataclass
class Term:
    coeff: sp.Expr
    conds: list = field(default_factory=list)
    limits: list = field(default_factory=list)

    def to_expr(self):
        body = self.coeff
        if self.conds:
            body = sp.Piecewise((body, sp.And(*self.conds)), (0, True))
        return sp.Sum(body, *self.limits) if self.limits else body


def contract(expr):
    """Contract every Kronecker delta that a summation index can absorb.

    >>> from symderive.indices import make_index
    >>> w, x = sp.IndexedBase('w'), sp.IndexedBase('x')
    >>> i, j, k = make_index('i', 2), make_index('j', 5), make_index('k', 3)
    >>> contract(sp.Sum(w[k] * sp.KroneckerDelta(2*i + k, j), (k, 0, 2)))
    Piecewise((w[-2*i + j], (2*i - j >= -2) & (2*i - j <= 0)), (0, True))

    A dilated index keeps its divisibility condition (j/2 ≤ 2 is implied by
    j's range 0..4, so it is dropped):

    >>> contract(sp.Sum(w[k] * sp.KroneckerDelta(2*k, j), (k, 0, 2)))
    Piecewise((w[j/2], Eq(Mod(j, 2), 0)), (0, True))
    """
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    return _contracted(expr)


@cacheit
def _contracted(expr):
    """Memoized (a pure function of the formula): solving the shipped problems contracted 764
    formulas, 555 distinct; a file's questions share their layers' definitions."""
    return _contract(expr, frozenset(names_in(expr)), {})


def _contract(expr, avoid, done):
    """``expr`` contracted; ``done`` holds the subtrees already contracted in this call. A formula
    repeats its subtrees (the softmax denominator Σ e^{w} in every term): nyu24-1.2.2f visited
    14,183 subtrees of which 972 were distinct, each visit rebuilding its sums."""
    if not expr.args:
        return expr
    new = done.get(expr)
    if new is None:
        if isinstance(expr, sp.Sum):
            body = _contract(expr.function, avoid, done)
            inner = expr if body is expr.function else sp.Sum(body, *expr.limits)
            new = rebuild([t for term in flatten(inner, avoid) for t in contract_term(term)])
        else:
            args = [_contract(a, avoid, done) for a in expr.args]
            new = expr if all(a is b for a, b in zip(args, expr.args)) else expr.func(*args)
        done[expr] = new
    return new


def flatten(expr, avoid=frozenset()):
    """Split ``expr`` into terms Σ_limits [conds]·coeff (distributing over Add, Sum, Mul).

    Summation indices renamed to keep two sums apart get names not in ``avoid``.
    """
    if isinstance(expr, sp.Add):
        return [t for a in expr.args for t in flatten(a, avoid)]
    if isinstance(expr, sp.Sum):
        return [Term(t.coeff, t.conds, t.limits + [tuple(l) for l in expr.limits])
                for t in flatten(expr.function, avoid)]
    if _is_guard(expr):
        (value, cond), _ = expr.args
        conds = list(cond.args) if isinstance(cond, sp.And) else [cond]
        return [Term(t.coeff, conds + t.conds, t.limits) for t in flatten(value, avoid)]
    if isinstance(expr, sp.Mul):
        terms = [Term(sp.S.One)]
        for factor in expr.args:
            parts = flatten(factor, avoid) if isinstance(factor, (sp.Add, sp.Sum, sp.Piecewise)) \
                else [Term(factor)]
            terms = [_product(a, b, avoid) for a in terms for b in parts]
        return terms
    return [Term(expr)]


def _is_guard(expr):
    """Piecewise((value, condition), (0, True)): a value under a condition."""
    return (isinstance(expr, sp.Piecewise) and len(expr.args) == 2
            and expr.args[1].cond == sp.true and expr.args[1].expr == 0)


def _product(a, b, avoid=frozenset()):
    """The product of two terms; b's summation indices are renamed if a uses their names."""
    taken = {l[0].name for l in a.limits}
    if not any(var.name in taken for var, *_ in b.limits):
        return Term(a.coeff * b.coeff, a.conds + b.conds, a.limits + b.limits)    # nothing to rename
    used = set(avoid) | taken | names_in(a.coeff) | names_in(b.coeff) | {l[0].name for l in b.limits}
    renames = {}
    for var, *_ in b.limits:
        if var.name in taken:
            name = next(n for n in INDEX_LETTERS + tuple(f"{var.name}{k}" for k in range(2, 99))
                        if n not in used)
            used.add(name)
            renames[var] = sp.Idx(sp.Symbol(name, integer=True), (var.lower, var.upper)) \
                if isinstance(var, sp.Idx) else sp.Symbol(name, integer=True)
    if renames:
        b = Term(b.coeff.xreplace(renames), [c.xreplace(renames) for c in b.conds],
                 [(renames.get(v, v), lo, hi) for v, lo, hi in b.limits])
    return Term(a.coeff * b.coeff, a.conds + b.conds, a.limits + b.limits)


def contract_term(term):
    """Absorb deltas into the term's summation indices; returns 0 or 1 terms."""
    changed = True
    while changed:
        changed = False
        for pos, (var, lo, hi) in enumerate(term.limits):
            solved = _solve_delta(term.coeff, var)
            if solved is None:
                continue
            delta, value, divisor, numerator = solved
            coeff = tidy_subscripts(substitute(term.coeff / delta, {var: value}))
            conds = [c.xreplace({var: value}) for c in term.conds] + [lo <= value, value <= hi]
            if divisor is not None:
                conds.append(sp.Eq(sp.Mod(numerator, divisor), 0))
            limits = [(v, l.xreplace({var: value}), h.xreplace({var: value}))
                      for v, l, h in term.limits[:pos] + term.limits[pos + 1:]]
            term = Term(coeff, conds, limits)
            changed = True
            break
    conds = simplify_conditions(term.conds)
    if conds is False or term.coeff == 0:
        return []
    return [Term(term.coeff, conds, term.limits)]


def tidy_subscripts(expr):
    """Write every subscript as one expanded fraction: K − 1 + (q − D·K + D)/D becomes q/D."""
    return replace(expr, lambda e: isinstance(e, sp.Indexed), _tidy_entry)


@cacheit
def _tidy_entry(entry):
    """``entry`` with each subscript one expanded fraction; ``entry`` itself when they are already.
    Memoized (a pure function of the entry): nyu24-1.2.2f tidied 507 entries, 59 distinct, and
    each built a new entry even when nothing changed."""
    def tidy(a):
        num, den = sp.fraction(sp.together(a))
        return sp.expand(num) / den if den != 1 else sp.expand(a)
    indices = tuple(tidy(a) for a in entry.indices)
    return entry if indices == entry.indices else entry.base[indices]


def _solve_delta(coeff, var):
    """Find a factor δ(u, v) with u − v = a·var + r; return (δ, −r/a, divisor or None, −r)."""
    for factor in sp.Mul.make_args(coeff):
        if not isinstance(factor, sp.KroneckerDelta):
            continue
        diff = sp.expand(factor.args[0] - factor.args[1])
        if var not in diff.free_symbols:
            continue
        a = diff.coeff(var)
        rest = sp.expand(diff - a * var)
        if var in a.free_symbols or var in rest.free_symbols or not a.is_nonzero:
            continue
        divisor = None if a in (1, -1) else (-a if a.is_negative else a)
        return factor, sp.expand(-rest / a) if divisor is None else -rest / a, divisor, sp.expand(-rest)
    return None


def simplify_conditions(conds):
    """Drop conditions that always hold over the indices' ranges; False if one never holds."""
    kept = []
    for cond in conds:
        parts = cond.args if isinstance(cond, sp.And) else (cond,)
        for part in parts:
            part, verdict = _decided(part)
            if verdict is False:
                return False
            if verdict is None and part not in kept:
                kept.append(part)
    return kept


@cacheit
def _decided(cond):
    """``cond`` with its denominators cleared, and whether it always holds (``always``). Memoized (a
    pure function of the condition): solving the shipped problems decided 1,438 conditions, 228
    distinct; 1.19 s of CPU with the clearing, 0.77 s with the memo."""
    cond = clear_denominators(cond)
    return cond, always(cond)


def clear_denominators(cond):
    """Write  e/D ≥ 0  as  e ≥ 0  when D is known positive (e.g. a dilation), keeping the sense.

    >>> D = sp.Symbol('D', integer=True, positive=True); m = sp.Symbol('m', integer=True)
    >>> clear_denominators((m + 1)/D >= 0)
    m + 1 >= 0
    """
    if not isinstance(cond, sp.core.relational.Relational) or isinstance(cond, (sp.Eq, sp.Ne)):
        return cond
    num, den = sp.fraction(sp.together(cond.lhs - cond.rhs))
    if den == 1 or not den.is_positive:
        return cond
    return cond.func(sp.expand(num), 0)


def always(cond):
    """True if ``cond`` holds for every value of its indices, False if for none, else None.

    Decides linear inequalities by the extremes of each ``Idx`` over its range.

    >>> from symderive.indices import make_index
    >>> K = sp.Symbol('K', integer=True, positive=True)
    >>> j = make_index('j', K)
    >>> always(K >= j + 1), always(j >= K), always(j >= 1)
    (True, False, None)
    """
    if cond in (sp.true, sp.false):
        return bool(cond)
    e = as_nonnegative(cond)
    if e is None:
        return None
    e = sp.expand(e)
    low, high = _extremes(e)
    if low is not None and _nonneg(low):
        return True
    if high is not None and _nonneg(-high - 1):
        return False
    return None


def as_nonnegative(cond):
    """An ``e`` with  cond ⟺ e ≥ 0  for integer values of the indices and sizes, or None.

    A strict  e > 0  is  e − 1 ≥ 0  only where e takes integer values, so a strict condition with
    fractional coefficients is first scaled by their denominators (positive); None when it still is
    not known to be integer-valued (the condition then stays a condition: never a wrong bound).

    >>> i = sp.Symbol('i', integer=True)
    >>> as_nonnegative(i > sp.Rational(1, 2)), as_nonnegative(3 > i), as_nonnegative(i >= sp.Rational(1, 2))
    (2*i - 2, 2 - i, i - 1/2)
    >>> as_nonnegative(sp.Symbol('x') > 0) is None, as_nonnegative(sp.Eq(i, 1)) is None
    (True, True)
    """
    if not isinstance(cond, (sp.GreaterThan, sp.LessThan, sp.StrictGreaterThan, sp.StrictLessThan)):
        return None
    e = cond.lhs - cond.rhs if isinstance(cond, (sp.GreaterThan, sp.StrictGreaterThan)) else cond.rhs - cond.lhs
    if not isinstance(cond, (sp.StrictGreaterThan, sp.StrictLessThan)):
        return e
    if not e.is_integer:
        coeffs = [term.as_coeff_Mul()[0] for term in sp.Add.make_args(e)]
        e = sp.expand(sp.ilcm(1, *[c.q for c in coeffs if c.is_Rational]) * e)
        if not e.is_integer:
            return None
    return e - 1


def _extremes(e):
    """Lowest and highest value of an expression affine in its ``Idx`` symbols."""
    idxs = [s for s in e.free_symbols if isinstance(s, sp.Idx)]
    low, high = e, e
    for idx in idxs:
        a = e.coeff(idx)
        if a.free_symbols & set(idxs) or idx.lower is None or idx.upper is None:
            return None, None
        if a.is_nonnegative:
            low, high = low.xreplace({idx: idx.lower}), high.xreplace({idx: idx.upper})
        elif a.is_nonpositive:
            low, high = low.xreplace({idx: idx.upper}), high.xreplace({idx: idx.lower})
        else:
            return None, None
    if not sp.expand(e - sum(e.coeff(i) * i for i in idxs)).free_symbols.isdisjoint(idxs):
        return None, None
    return sp.expand(low), sp.expand(high)


@cacheit
def _nonneg(e):
    """Whether ``e`` is provably ≥ 0. Memoized: solving the shipped problems asked 318 times
    about 18 distinct expressions, and ``simplify`` made it 15 % of solve time."""
    if e.is_nonnegative:
        return True
    return sp.simplify(e).is_nonnegative is True


def rebuild(terms):
    return sp.Add(*[_drop_single_value_limits(t).to_expr() for t in terms]) if terms else sp.S.Zero


def _drop_single_value_limits(term):
    """Σ_{i=a}^{a} f(i) is f(a): substitute instead of keeping a one-term sum."""
    for pos, (var, lo, hi) in enumerate(term.limits):
        if sp.expand(hi - lo) == 0:          # a one-value range (simplify here was a third of the time)
            rest = [(v, l.xreplace({var: lo}), h.xreplace({var: lo}))
                    for v, l, h in term.limits[:pos] + term.limits[pos + 1:]]
            conds = simplify_conditions([c.xreplace({var: lo}) for c in term.conds])
            if conds is False:
                return Term(sp.S.Zero)
            return _drop_single_value_limits(Term(substitute(term.coeff, {var: lo}), conds, rest))
    return term


def conditions_to_bounds(expr):
    """Move conditions that are linear in a summation index into that sum's bounds.

    Σ_{i=0}^{n} [0 ≤ j − 2i ≤ 2] g_i  becomes  Σ_{i=max(0, ⌈(j−2)/2⌉)}^{min(n, ⌊j/2⌋)} g_i.

    >>> from symderive.indices import make_index
    >>> g, w = sp.IndexedBase('g'), sp.IndexedBase('w')
    >>> i, j = make_index('i', 2), make_index('j', 5)
    >>> body = sp.Piecewise((g[i] * w[j - 2*i], (j - 2*i >= 0) & (j - 2*i <= 2)), (0, True))
    >>> conditions_to_bounds(sp.Sum(body, (i, 0, 1)))
    Sum(g[i]*w[-2*i + j], (i, Max(0, ceiling(j/2) - 1), Min(1, floor(j/2))))
    """
    out = []
    for term in flatten(expr) if isinstance(expr, (sp.Sum, sp.Add)) else [Term(expr)]:
        limits = [list(l) for l in term.limits]
        kept = []
        for cond in term.conds:
            bound = _as_bound(cond, [l[0] for l in limits])
            if bound is None:
                kept.append(cond)
                continue
            var, side, value = bound
            entry = next(l for l in limits if l[0] == var)
            if side == "lower":
                entry[1] = sp.Max(entry[1], value)
            else:
                entry[2] = sp.Min(entry[2], value)
        out.append(Term(term.coeff, kept, [tuple(l) for l in limits]))
    return rebuild(out)


def _as_bound(cond, variables):
    """For  a·var + r ≥ 0  with a of known sign, give (var, 'lower'|'upper', bound)."""
    e = as_nonnegative(cond)
    if e is None:
        return None
    linear = _rational_linear(e)
    if linear is not None:       # the usual case, at concrete sizes: no together/cancel needed
        present = [v for v in variables if v in linear]
        if len(present) != 1:
            return None
        var = present[0]
        a, r = linear[var], e - linear[var] * var
        return (var, "lower", sp.ceiling(-r / a)) if a > 0 else (var, "upper", sp.floor(r / -a))
    num, den = sp.fraction(sp.together(e))
    e = sp.expand(num) if den.is_positive else sp.expand(e)
    present = [v for v in variables if v in e.free_symbols]
    if len(present) != 1:
        return None
    var = present[0]
    a = e.coeff(var)
    r = sp.expand(e - a * var)
    if var in a.free_symbols or var in r.free_symbols:
        return None
    if a.is_positive:
        return var, "lower", sp.ceiling(sp.cancel(-r / a))
    if a.is_negative:
        return var, "upper", sp.floor(sp.cancel(r / -a))
    return None


def _rational_linear(e):
    """{symbol or index: rational coefficient} when ``e`` is c + Σ aₖ·sₖ with rational c (the
    index arithmetic of a layer at concrete sizes), else None. For such an e the general path of
    ``_as_bound`` (together, fraction, expand, cancel: 0.014 s per conv layer, half of the chain
    rule's moving of conditions into bounds) gives exactly ceiling(−r/a) and floor(r/−a) as SymPy
    builds them: a positive common denominator does not change the bound, and cancel leaves a
    polynomial with rational coefficients as it is (tests/test_contract_bounds.py).

    >>> q, j = sp.symbols('q j', integer=True)
    >>> _rational_linear(2*j - q/2 + 1) == {j: 2, q: -sp.Rational(1, 2)}
    True
    >>> _rational_linear(j*q) is None, _rational_linear(sp.Symbol('n')*j) is None
    (True, True)
    """
    terms = {}
    for term in sp.Add.make_args(e):
        if term.is_Rational:
            continue
        coeff, rest = term.as_coeff_Mul()
        if not (coeff.is_Rational and (rest.is_Symbol or isinstance(rest, sp.Idx))) or rest in terms:
            return None
        terms[rest] = coeff
    return terms


def same_terms(a, b):
    """True when ``a`` and ``b`` have the same terms in normal form: equal coefficients and
    the same range conditions (after clearing positive denominators). A sufficient test
    for equality for all values of the sizes; False means "not shown equal", not "different".
    """
    ta, tb = flatten(a), flatten(b)
    if len(ta) != len(tb):
        return False
    unmatched = list(tb)
    for t in ta:
        match = next((u for u in unmatched if _same_term(t, u)), None)
        if match is None:
            return False
        unmatched.remove(match)
    return True


def _same_term(t, u):
    if len(t.limits) != len(u.limits):
        return False
    renames = {}
    for (v1, lo1, hi1), (v2, lo2, hi2) in zip(t.limits, u.limits):
        renames[v2] = v1
        if sp.simplify(lo1 - lo2.xreplace(renames)) != 0 or sp.simplify(hi1 - hi2.xreplace(renames)) != 0:
            return False
    if sp.simplify(t.coeff - u.coeff.xreplace(renames)) != 0:
        return False
    return _condition_set(t.conds) == _condition_set([c.xreplace(renames) for c in u.conds])


def _condition_set(conds):
    """Conditions as a set of canonical SymPy objects: e >= 0 with e expanded, Mod(e, D) = 0."""
    out = set()
    for cond in conds:
        cond = clear_denominators(cond)
        if isinstance(cond, sp.Eq) and isinstance(cond.lhs, sp.Mod) and cond.rhs == 0:
            out.add(("mod",) + _divisibility(*cond.lhs.args))
            continue
        if isinstance(cond, (sp.GreaterThan, sp.StrictGreaterThan)):
            e = cond.lhs - cond.rhs
        elif isinstance(cond, (sp.LessThan, sp.StrictLessThan)):
            e = cond.rhs - cond.lhs
        else:
            out.add(("other", cond))
            continue
        if isinstance(cond, (sp.StrictGreaterThan, sp.StrictLessThan)):
            e -= 1
        num, den = sp.fraction(sp.together(e))
        out.add(("ge", sp.expand(num if den.is_positive else e)))
    return out


def _divisibility(num, den):
    """Canonical (e, den) for  den | num : drop multiples of den, fix the sign.

    >>> D, S = sp.symbols('D S', integer=True, positive=True); i, j = sp.symbols('i j', integer=True)
    >>> _divisibility(S*j - i + 3*D, D) == _divisibility(i - S*j, D)
    True
    """
    kept = [t for t in sp.Add.make_args(sp.expand(num))
            if not (t / den).is_integer or not (sp.fraction(sp.together(t / den))[1] == 1)]
    e = sp.Add(*kept)
    if den.is_Integer:
        e = sp.Add(*[sp.Mod(c, den) * m if c.is_Integer else c * m
                     for c, m in (t.as_coeff_Mul() for t in sp.Add.make_args(e))])
    return min(e, sp.expand(-e), key=sp.default_sort_key), den


def collapse_single_value_sums(expr):
    """Σ_{i=lo}^{hi} f(i) = f(lo) when the range has exactly one value for every value of the
    free indices, e.g. max(0, ⌈(p−1)/2⌉) ≤ i ≤ min(n−1, ⌊p/2⌋) with 0 ≤ p ≤ 2n−1 is i = ⌊p/2⌋.

    Proved, not sampled: each free index is split into its residues modulo the denominators
    under floor and ceiling (p = d·u + r), where floor and ceiling simplify exactly; the clipping
    by max/min is dropped only when it is inactive at both ends of the index's range.
    """
    def collapse(e):
        limits = list(e.limits)
        body = e.function
        changed = False
        for pos, (var, lo, hi) in enumerate(limits):
            value = _single_value(lo, hi)
            if value is None:
                continue
            body = substitute(body, {var: value})
            limits[pos] = None
            changed = True
        if not changed:
            return e
        rest = [l for l in limits if l is not None]
        return sp.Sum(body, *rest) if rest else body

    return replace(expr, lambda e: isinstance(e, sp.Sum), collapse)


def _core(bound, kind):
    """max(0, A) → (A, 0) for a lower bound; min(B, C) → (the part with floor/ceiling, other)."""
    cls = sp.Max if kind == "lower" else sp.Min
    if isinstance(bound, cls):
        parts = list(bound.args)
        rounded = [a for a in parts if a.has(sp.floor, sp.ceiling)]
        if len(rounded) == 1 and len(parts) == 2:
            return rounded[0], next(a for a in parts if a is not rounded[0])
    return bound, None


def _single_value(lo, hi):
    lo_core, lo_clip = _core(lo, "lower")
    hi_core, hi_clip = _core(hi, "upper")
    free = [s for s in (lo_core - hi_core).free_symbols if isinstance(s, sp.Idx)]
    if not free or not (lo_core.has(sp.floor, sp.ceiling) or hi_core.has(sp.floor, sp.ceiling)):
        return None
    denominators = {sp.fraction(sp.together(a.args[0]))[1] for a in (lo_core - hi_core).atoms(sp.floor, sp.ceiling)}
    if not all(d.is_Integer and d > 0 for d in denominators):
        return None
    modulus = int(sp.lcm_list(list(denominators))) if denominators else 1
    if len(free) != 1:
        return None
    idx = free[0]
    u = sp.Symbol("_u", integer=True)
    for r in range(modulus):
        if sp.simplify((hi_core - lo_core).xreplace({idx: modulus * u + r})) != 0:
            return None
    # The clipping must be inactive over the index's whole range (the cores are monotone in it).
    for clip, kind in ((lo_clip, "lower"), (hi_clip, "upper")):
        if clip is None:
            continue
        for end in (idx.lower, idx.upper):
            core = lo_core if kind == "lower" else hi_core
            at = sp.simplify(core.xreplace({idx: end}))
            ok = (at - clip).is_nonnegative if kind == "lower" else (clip - at).is_nonnegative
            if ok is not True:
                return None
    return lo_core
