"""Simplification of index expressions, one justified rewrite at a time.

SymPy's ``simplify`` does not know that a summation index is bound, so it
cannot pull a factor out of a sum, use a constraint such as Σᵢ pᵢ = 1, or
recognise e^{z_x}/Σⱼ e^{z_j} as the softmax q_x (and on nested sums of
Kronecker deltas it can even raise). The pipeline here does exactly those
steps and records each one, so a proof can be printed line by line:

1. ``contract``: Kronecker deltas against their sums (``contract.py``);
2. ``pull_out_of_sums``: Σᵢ c·f(i) = c·Σᵢ f(i) when c does not involve i;
3. ``apply_constraints``: replace Σᵢ pᵢ by its declared value;
4. ``fold``: write definitions of named layers back as their entries (q_x).

Bound indices are renamed canonically (by nesting depth) so that two sums that
differ only in the name of their index compare equal.
"""
import functools
from collections import Counter
from dataclasses import dataclass

import sympy as sp

from .contract import contract
from .indices import INDEX_LETTERS
from .sympy_memos import replace


@dataclass
class Rewrite:
    """One step of a derivation: the expression after it, and the rule that gave it."""
    expr: sp.Expr
    why: str


# Canonical bound indices ---------------------------------------------------------

def _rename_bound(expr, name_at, as_idx):
    """Rename each summation index by its nesting depth: ``name_at(depth)`` gives the name.

    One pass that carries the renaming of the enclosing sums down the tree and rebuilds each node
    once. A sum's own index shadows an enclosing one of the same name, so giving an outer sum its
    new name can never capture an inner sum's index (Σ_k Σ_j x_{jk} must not become Σ_j Σ_j x_{jj}).
    The first version replaced each index by a unique dummy and then by its name, one ``xreplace``
    of the whole body per index and per pass (0.42 s profiled per call on nyu24-1.2.2f); the result
    is the same tree (tests/test_simplify.py compares the two)."""

    def walk(e, depth, renamed):
        new = renamed.get(e)
        if new is not None:
            return new
        if isinstance(e, sp.Sum):
            inner, limits = dict(renamed), []
            for var, lo, hi in e.limits:
                lo, hi = walk(lo, depth, renamed), walk(hi, depth, renamed)
                symbol = sp.Symbol(name_at(depth), integer=True)
                new = sp.Idx(symbol, (lo, hi)) if as_idx and isinstance(var, sp.Idx) else symbol
                inner[var] = new
                limits.append((new, lo, hi))
                depth += 1
            return sp.Sum(walk(e.function, depth, inner), *limits)
        if not e.args:
            return e
        return e.func(*[walk(a, depth, renamed) for a in e.args])

    return walk(expr, 0, {})


def _rename_bound_by_dummies(expr, name_at, as_idx):
    """The first version of ``_rename_bound`` (every bound index first a unique dummy, then its
    name, by ``xreplace``): kept as the reference the one-pass version is tested against."""
    was_idx = set()

    def unique(e):
        if isinstance(e, sp.Sum):
            body, limits = e.function, []
            for var, lo, hi in e.limits:
                dummy = sp.Dummy(var.name, integer=True)
                if isinstance(var, sp.Idx):
                    was_idx.add(dummy)
                body = body.xreplace({var: dummy})
                limits.append((dummy, lo, hi))
            return sp.Sum(unique(body), *limits)
        if not e.args:
            return e
        return e.func(*[unique(a) for a in e.args])

    def walk(e, depth):
        if isinstance(e, sp.Sum):
            body, limits = e.function, []
            for var, lo, hi in e.limits:
                symbol = sp.Symbol(name_at(depth), integer=True)
                new = sp.Idx(symbol, (lo, hi)) if as_idx and var in was_idx else symbol
                body = body.xreplace({var: new})
                limits.append((new, lo, hi))
                depth += 1
            return sp.Sum(walk(body, depth), *limits)
        if not e.args:
            return e
        return e.func(*[walk(a, depth) for a in e.args])

    return walk(unique(expr), 0)


def canonical_sums(expr, avoid=()):
    """Rename every summation index by its nesting depth, with letters not in ``avoid``.

    >>> from symderive.indices import make_index
    >>> p = sp.IndexedBase('p'); i, k = make_index('i', 3), make_index('k', 3)
    >>> canonical_sums(sp.Sum(p[i], (i, 0, 2))) == canonical_sums(sp.Sum(p[k], (k, 0, 2)))
    True
    """
    if not isinstance(expr, sp.Basic):
        return expr
    taken = set(avoid) | {s.name for s in expr.free_symbols}
    letters = [name for name in ("j", "k", "l", "m", "n", "r", "u", "v") + INDEX_LETTERS if name not in taken]
    return _rename_bound(expr, lambda d: letters[d % len(letters)] + ("" if d < len(letters) else str(d)),
                         as_idx=True)


@functools.lru_cache(maxsize=65536)
def alpha_normal(expr):
    """Bound indices renamed _b0, _b1, … from the outside in, whatever the context: two
    expressions that differ only in bound names get the same normal form (for matching)."""
    if not isinstance(expr, sp.Basic) or not expr.has(sp.Sum):
        return expr
    return _rename_bound(expr, lambda d: f"_b{d}", as_idx=False)


# 2. Factors out of sums --------------------------------------------------------------

def pull_out_of_sums(expr):
    """Σᵢ (a + b) = Σᵢ a + Σᵢ b, and Σᵢ c·f(i) = c·Σᵢ f(i) when c does not involve i.

    >>> from symderive.indices import make_index
    >>> p, z = sp.IndexedBase('p'), sp.IndexedBase('z'); i = make_index('i', 3)
    >>> x = sp.Symbol('x')
    >>> pull_out_of_sums(sp.Sum(-sp.exp(z[0]) * p[i] / x, (i, 0, 2)))
    -exp(z[0])*Sum(p[i], (i, 0, 2))/x
    """
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    if isinstance(expr, sp.Sum):
        body = pull_out_of_sums(expr.function)
        for var, lo, hi in reversed(expr.limits):
            body = _pull(body, var, lo, hi)
        return body
    return expr.func(*[pull_out_of_sums(a) for a in expr.args])


def counted(expr):
    """Each summation index the terms do not depend on (nor another limit) is dropped for its count:
    Σ_{a=0}^{N−1} 1 = N (the δ of batch norm's mean, through its variance Σ (x − μ)²), Σ_{a,b} x_b = 4 Σ_b x_b.
    Only where the count is known to be ≥ 0 (an empty range clipped by max/min counts 0, not hi − lo + 1).

    >>> from symderive.indices import make_index
    >>> n = sp.Symbol('N', integer=True, positive=True)
    >>> a, b, x = make_index('a', n), make_index('b', 4), sp.IndexedBase('x')
    >>> counted(2 * sp.Sum(1, (a, 0, n - 1))), counted(sp.Sum(x[b], (b, 0, 3), (a, 0, n - 1)))
    (2*N, N*Sum(x[b], (b, 0, 3)))
    """
    def unused(limit, e):
        var, lo, hi = limit
        others = [bound for v, l, h in e.limits if v != var for bound in (l, h)]
        return var not in e.function.free_symbols and not any(var in sp.sympify(b).free_symbols for b in others) \
            and (hi - lo + 1).is_nonnegative is True

    def drop(e):
        keep = [l for l in e.limits if not unused(l, e)]
        count = sp.Mul(*[hi - lo + 1 for var, lo, hi in e.limits if unused((var, lo, hi), e)])
        return count * (sp.Sum(e.function, *keep) if keep else e.function)
    if not isinstance(expr, sp.Basic) or not expr.has(sp.Sum):
        return expr
    return replace(expr, lambda e: isinstance(e, sp.Sum) and any(unused(l, e) for l in e.limits), drop)


def _pull(body, var, lo, hi):
    terms = sp.Add.make_args(sp.expand(body, deep=False, mul=True, multinomial=False, power_exp=False,
                                       power_base=False, log=False))
    out = []
    for term in terms:
        inside, outside = [], []
        for factor in sp.Mul.make_args(term):
            (inside if var in factor.free_symbols else outside).append(factor)
        if not inside:
            out.append(sp.Mul(*outside) * (hi - lo + 1))
        else:
            out.append(sp.Mul(*outside) * sp.Sum(sp.Mul(*inside), (var, lo, hi)))
    return sp.Add(*out)


# 3. Constraints -----------------------------------------------------------------------

def apply_constraints(expr, constraints):
    """Replace each constrained sum (e.g. Σᵢ pᵢ) by its value. ``constraints``: [(lhs, rhs)]."""
    if not constraints:
        return expr
    table = {alpha_normal(lhs): rhs for lhs, rhs in constraints}
    return expr.replace(lambda e: isinstance(e, sp.Sum) and alpha_normal(e) in table,
                                        lambda e: table[alpha_normal(e)])


# 4. Folding definitions back into names -----------------------------------------------

def fold(expr, definitions):
    """Write each occurrence of a named definition back as the name's entry.

    ``definitions``: [(name entry with a Wild index, definition with the same Wild)],
    e.g. (q[a], exp(z[a]) / Σⱼ exp(z[j])). A definition that is a product is found
    inside any product that contains all of its factors (powers count as repeats),
    so e^{z_i} e^{z_p}/S² folds to q_i q_p.
    """
    if not definitions:
        return expr
    tensors = {}          # subtree -> the tensors in it, shared by the definitions' walks
    # Largest definitions first: a = e^{w}/Σ e^{w} must be found before w itself is folded.
    for name, defn in sorted(definitions, key=lambda d: -sp.count_ops(d[1])):
        expr = _fold_one(expr, name, defn, tensors)
    return expr


def _tensors_in(expr, memo, subscripts=True):
    """The tensors (``IndexedBase``) in ``expr``, from its arguments', each distinct subtree once;
    without ``subscripts``, only those named outside a subscript (z in z[y[n]], not the labels y).
    ``memo`` belongs to one choice of ``subscripts``.

    >>> x, y, z = sp.IndexedBase('x'), sp.IndexedBase('y'), sp.IndexedBase('z')
    >>> [sorted(map(str, _tensors_in(sp.exp(z[y[1]]) * x[2], {}, s))) for s in (True, False)]
    [['x', 'y', 'z'], ['x', 'z']]
    """
    got = memo.get(expr)
    if got is None:
        if isinstance(expr, sp.IndexedBase):
            got = frozenset((expr,))
        elif isinstance(expr, sp.Indexed) and not subscripts:
            got = frozenset((expr.base,))
        else:
            got = frozenset().union(*[_tensors_in(a, memo, subscripts) for a in expr.args])
        memo[expr] = got
    return got


def _factor_counts(expr):
    """A product as a multiset of factors, integer powers expanded into repeats."""
    counts = Counter()
    for factor in sp.Mul.make_args(expr):
        if isinstance(factor, sp.exp) and factor.args[0].is_Mul and factor.args[0].args[0].is_Integer:
            k, rest = factor.args[0].as_coeff_Mul()          # e^{2w} is e^w · e^w
            counts[sp.exp(rest) if k > 0 else 1 / sp.exp(rest)] += abs(int(k))
            continue
        base, exp = factor.as_base_exp()
        if exp.is_Integer and exp != 0 and not base.is_Number:
            counts[base if exp > 0 else 1 / base] += abs(int(exp))
        else:
            counts[factor] += 1
    return counts


def _wilds_only_in_subscripts(expr):
    """True when every Wild in ``expr`` sits inside a subscript (q[w0] = e^{z[w0]}/Σ_k e^{z[k]}).

    >>> w = sp.Wild('w'); z = sp.IndexedBase('z')
    >>> _wilds_only_in_subscripts(sp.exp(z[w])), _wilds_only_in_subscripts(w * z[1])
    (True, False)
    """
    if isinstance(expr, sp.Wild):
        return False
    return isinstance(expr, sp.Indexed) or all(_wilds_only_in_subscripts(a) for a in expr.args)


def _fold_one(expr, name, defn, tensors=None):
    """``expr`` with ``defn`` written as ``name`` wherever found. A subtree that lacks one of the
    definition's tensors cannot hold it (matching replaces Wild indices only), so the walk skips it
    unseen: nyu24-1.2.2e and f spent 0.23–0.27 s CPU looking for the whole layer h = Σ a·V·x (an
    Add: every Add of the formula normalised and matched) where it never occurs. ``tensors``: the
    memo of ``_tensors_in``."""
    tensors = {} if tensors is None else tensors
    needs = _tensors_in(defn, tensors)
    wilds = [w for w in defn.atoms(sp.Wild)]
    needed = Counter({alpha_normal(f): n for f, n in _factor_counts(defn).items()})
    anchor = max(needed, key=lambda f: (bool(f.atoms(sp.Wild)), sp.count_ops(f)))

    anchor_has_wilds = bool(anchor.atoms(sp.Wild))

    def too_many_terms(form):
        """A sum of more terms than the anchor's cannot be it: a fold needs the anchor with its Wild
        indices replaced to equal the form, and replacing indices merges terms but never splits one.
        SymPy's Add matching tries hard before it fails (collecting on the Wilds): on
        nyu24-1.2.2e one match of the whole formula against h = Σ a·V·x took 0.2 s."""
        return isinstance(anchor, sp.Add) and isinstance(form, sp.Add) and len(form.args) > len(anchor.args)

    # When the anchor's Wilds are all subscripts, every instance of it names the anchor's tensors outside
    # subscripts and no other: a factor naming another there (the upstream gradient g beside the layer
    # h = Σ a·V·x, in ∂l/∂h[T] of nyu24-1.2.2f) is not it, and is neither normalised (0.08 s for that
    # formula) nor matched. (Normalising could only drop a tensor by cancelling Σ_j x_j against 1/Σ_k x_k,
    # which SymPy does not do to the factor itself either.)
    outside = {}
    anchor_outside = _tensors_in(anchor, outside, subscripts=False) if _wilds_only_in_subscripts(anchor) else None

    concretes = {}          # the definition's factors under one match (xreplace rebuilds its sums)
    matches = {}            # a factor's bound-normal form -> its match with the anchor (or None)

    def rewrite(term):
        have = _factor_counts(term)                       # original factors
        if not any(type(f) is type(anchor) for f in have):
            return term                                   # cheap rejection: no factor of the right kind
        folded_any = False
        changed = True
        while changed:
            changed = False
            by_form = None          # every factor's bound-normal form: needed only once the anchor matched
            for candidate in list(have):
                if type(candidate) is not type(anchor) or anchor_outside is not None and \
                        not _tensors_in(candidate, outside, False) <= anchor_outside:
                    continue
                form = alpha_normal(candidate)
                if form not in matches:       # the same factor recurs in many terms; matching is costly
                    matches[form] = None if too_many_terms(form) else \
                        form.match(anchor) if anchor_has_wilds else ({} if form == anchor else None)
                match = matches[form]
                if match is None or any(w not in match for w in wilds):
                    continue
                key = frozenset(match.items())
                if key not in concretes:
                    concretes[key] = Counter({f.xreplace(match): n for f, n in needed.items()})
                concrete = concretes[key]
                if by_form is None:
                    by_form = Counter()
                    for f, n in have.items():
                        by_form[alpha_normal(f)] += n
                if all(by_form[f] >= n for f, n in concrete.items()):
                    for f, n in concrete.items():
                        for original in [g for g in have if alpha_normal(g) == f]:
                            take = min(n, have[original])
                            have[original] -= take
                            n -= take
                    have = +have
                    have[name.xreplace(match)] += 1
                    changed = folded_any = True
                    break
        return sp.Mul(*[f ** n for f, n in have.items()]) if folded_any else term

    def rebuilt(e, args):
        """e with new arguments; e itself when none changed (rebuilding a Sum is costly)."""
        return e if all(a is b for a, b in zip(args, e.args)) else e.func(*args)

    def walk(e):
        if not needs <= _tensors_in(e, tensors):
            return e
        if isinstance(e, sp.Add):
            if isinstance(anchor, sp.Add):            # a definition that is a sum (Σ_h a_h W_hc + b_c)
                whole = rewrite(e)
                if whole != e:
                    return whole
            return rebuilt(e, [walk(t) for t in e.args])
        if isinstance(e, sp.Sum):
            whole = rewrite(e)                      # the sum itself may be the definition
            if whole != e:
                return whole
            body = walk(e.function)
            return e if body is e.function else sp.Sum(body, *e.limits)
        if isinstance(e, sp.Piecewise):          # kept when nothing folded: its sum is not rebuilt either
            values = [walk(value) for value, _ in e.args]
            if all(new is value for new, (value, _) in zip(values, e.args)):
                return e
            return sp.Piecewise(*[(new, cond) for new, (_, cond) in zip(values, e.args)])
        if isinstance(e, (sp.Mul, sp.Pow, sp.Function)):
            whole = rewrite(e)                      # the definition may span several factors
            if whole != e:
                return walk(whole)
            inner = rebuilt(e, [walk(a) for a in e.args])
            if inner is e:
                return e                            # rewrite(e) already left it unchanged
            return rewrite(inner) if isinstance(inner, (sp.Mul, sp.Pow, sp.Function)) else inner
        return e

    return walk(expr)


# The pipeline ---------------------------------------------------------------------------

def simplify_steps(expr, constraints=(), definitions=(), constraint_names=()):
    """Run the pipeline; returns the list of ``Rewrite`` s that changed something.

    ``constraint_names`` labels each constraint for the sheet (e.g. "Σp = 1").
    """
    steps = []

    def record(new, why):
        nonlocal expr
        if new != expr:
            steps.append(Rewrite(new, why))
            expr = new

    record(contract(expr), "contract each Kronecker delta against its sum")
    record(pull_out_of_sums(expr), "pull factors that do not depend on the summation index out of the sum")
    for (lhs, rhs), label in zip(constraints, constraint_names or [None] * len(constraints)):
        record(apply_constraints(expr, [(lhs, rhs)]), f"use the constraint {label}" if label else
               "use the declared constraint")
    record(fold(expr, definitions), "recognise the named sub-expressions")
    record(tidy(expr), "collect terms")
    return steps


def combine_sums(expr):
    """Σ_j a + Σ_j b = Σ_j (a + b) for sums over the same range (after canonical renaming).

    >>> from symderive.indices import make_index
    >>> g = sp.IndexedBase('g'); j, k = make_index('j', 3), make_index('k', 3)
    >>> combine_sums(sp.Sum(g[j], (j, 0, 2)) - sp.Sum(g[k]**2, (k, 0, 2)))
    Sum((1 - g[k])*g[k], (k, 0, 2))
    """
    return replace(expr, lambda e: isinstance(e, sp.Add), _combine_add)


def _combine_add(expr):
    groups, rest = {}, []
    for term in sp.Add.make_args(expr):
        coeff, sums = sp.S.One, []
        for factor in sp.Mul.make_args(term):
            (sums if isinstance(factor, sp.Sum) else [None]).append(factor) if isinstance(factor, sp.Sum) \
                else None
            if not isinstance(factor, sp.Sum):
                coeff *= factor
        if len(sums) == 1 and not coeff.atoms(sp.Sum):
            limits = sums[0].limits
            # Same ranges: rename this sum's indices to those of the group's first sum.
            key = tuple((lo, hi) for _, lo, hi in limits)
            own = tuple(v for v, _, _ in limits)
            first = groups.get(key, [(None, None, own)])[0][2]
            outside = sums[0].function.free_symbols - set(own)
            if set(first) & outside:      # renaming would capture a free index of that name
                rest.append(term)
                continue
            body = sums[0].function.xreplace(dict(zip(own, first)))
            groups.setdefault(key, []).append((term, coeff * body, first))
        else:
            rest.append(term)
    merged = [sp.Sum(sp.factor_terms(sp.Add(*[b for _, b, _ in members])),
                     *[(v, lo, hi) for v, (lo, hi) in zip(members[0][2], key)])
              if len(members) > 1 else members[0][0] for key, members in groups.items()]
    return sp.Add(*(merged + rest))


def factor_sum_bodies(expr):
    """Factor the body of each sum when that makes it shorter: contraction distributes products
    over sums, and this puts (tanh − y)(1 − tanh²) back together."""
    def better(e):
        body = e.function
        try:
            factored = sp.factor(body)
        except (sp.PolynomialError, NotImplementedError, ValueError):
            return e
        return sp.Sum(factored, *e.limits) if sp.count_ops(factored) < sp.count_ops(body) else e

    return replace(expr, lambda e: isinstance(e, sp.Sum), better)


def tidy(expr):
    """Collect like terms without touching sums or functions."""
    return sp.expand(expr, deep=False, mul=True, multinomial=False, power_exp=False, power_base=False,
                     log=False)


# Rules for written-out identities (used by proofs) ------------------------------------

def split_exponentials(expr):
    """e^{a+b} = e^a e^b, inside sums too (so that a shift can be pulled out of Σ_j e^{z_j + c}).

    >>> a, b = sp.symbols('a b')
    >>> split_exponentials(sp.exp(a + b) / (1 + sp.exp(2*a)))
    exp(a)*exp(b)/(exp(2*a) + 1)
    """
    return expr.replace(lambda e: isinstance(e, sp.exp) and e.args[0].is_Add,
                        lambda e: sp.Mul(*[sp.exp(t) for t in e.args[0].args]))


def _positive(expr):
    """True when ``expr`` is positive by construction: e^a, a positive number, a sum, product or
    power of positive terms (no assumption on the inputs is needed: they are real)."""
    if isinstance(expr, sp.exp) or expr.is_positive:
        return True
    if isinstance(expr, sp.Sum):
        return _positive(expr.function)
    if isinstance(expr, (sp.Add, sp.Mul)):
        return all(_positive(a) for a in expr.args)
    if isinstance(expr, sp.Pow):
        return _positive(expr.base) and expr.exp.is_real
    return False


def split_logarithms(expr):
    """log(ab) = log a + log b for positive a, b, and log e^a = a (a real): only where both hold
    for every real input, unlike ``expand_log(force=True)``.

    >>> c, s = sp.symbols('c s', real=True)
    >>> split_logarithms(sp.log(sp.exp(c) * (1 + sp.exp(s))))
    c + log(exp(s) + 1)
    """
    def split(e):
        arg = e.args[0]
        if isinstance(arg, sp.exp) and arg.args[0].is_real is not False:
            return arg.args[0]
        if arg.is_Mul and all(_positive(f) for f in arg.args):
            return sp.Add(*[split(sp.log(f, evaluate=False)) for f in arg.args])
        return e

    return expr.replace(lambda e: isinstance(e, sp.log), split)


def cancel_factors(expr):
    """(ab)^{-1} = a^{-1} b^{-1} for integer powers, so that a factor common to a numerator and
    its denominator cancels: e^c e^{z_k} / (e^c Σ_j e^{z_j}) = e^{z_k} / Σ_j e^{z_j}."""
    return sp.expand_power_base(expr, deep=True, force=False)


def exponential_forms(expr):
    """The definitions ``in_exponentials`` uses on ``expr``, in LaTeX, for the step's reason.

    >>> print(exponential_forms(1 + sp.tanh(sp.Symbol('x'))))
    $\\tanh a = \\frac{e^{a} - e^{-a}}{e^{a} + e^{-a}}$
    """
    from .functions import sigmoid
    forms = {sigmoid: r"$\sigma(a) = \frac{1}{1 + e^{-a}}$",
             sp.tanh: r"$\tanh a = \frac{e^{a} - e^{-a}}{e^{a} + e^{-a}}$"}
    return ", ".join(text for function, text in forms.items() if expr.has(function))


def in_exponentials(expr):
    """σ and tanh written with exp (their definitions), everything else kept.

    >>> from symderive.functions import sigmoid
    >>> in_exponentials(sigmoid(sp.Symbol('x')))
    1/(1 + exp(-x))
    """
    from .functions import sigmoid
    return expr.replace(lambda e: isinstance(e, (sigmoid, sp.tanh)), lambda e: e.rewrite(sp.exp))


def cancel_exponentials(expr):
    """e^{a} e^{-a} = 1 within each product: differentiating log q_i leaves 1/q_i = e^{-z_i} Σ_j e^{z_j}
    beside e^{z_i}, which SymPy keeps apart (it never merges exponentials of sums unasked).

    >>> a, b = sp.symbols('a b')
    >>> cancel_exponentials(sp.exp(-a - b) * sp.exp(a + b) * sp.exp(a) * 3)
    3*exp(a)
    """
    def cancel(product):
        factors = list(sp.Mul.make_args(product))
        changed = True
        while changed:
            changed = False
            exps = [n for n, f in enumerate(factors) if isinstance(f, sp.exp)]
            for m, first in enumerate(exps):
                match = next((n for n in exps[m + 1:] if sp.expand(factors[first].args[0] + factors[n].args[0]) == 0),
                             None)
                if match is not None:
                    factors = [f for n, f in enumerate(factors) if n not in (first, match)]
                    changed = True
                    break
        return sp.Mul(*factors)

    return expr.replace(lambda e: isinstance(e, sp.Mul) and sum(isinstance(f, sp.exp) for f in e.args) > 1, cancel)
