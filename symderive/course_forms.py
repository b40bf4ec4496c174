"""Course forms: the names a course's answer key gives the parts of a gradient.

Each rule is an exact rewrite of an element formula into named intermediates, so that the
matrix form built from it reads as a course writes it (the form is then checked numerically
against the element formula, with each name computed from its own definition):

    e^{s_q} / Σ_j e^{s_j}          → ŷ_q       (P_{n,q} on a batch): the softmax of a loss's scores
    Σ_j f_j e^{s_j} / Σ_k e^{s_k}  → Σ_j f_j ŷ_j
    δ(q, o), δ(q, y_n)             → y_q, Y_{n,q}: the one-hot of a class label
    U_{p,o}                        → Σ_j U_{p,j} y_j    (a column picked by a label, for U(ŷ − y))
    −(t − 1)(t + 1), t = tanh(a)   → 1 − tanh²(a)

A name is made only for what the formula contains, and only under a name the question leaves free.

A layer kind whose backward pass courses write with intermediates of their own (an RNN step's δ,
attention's P, dP, D, dS) registers ``backward_form`` in its module; ``layer_backward`` (chain_rule,
with the upstream gradient given) and ``loss_backward`` (derivative of a scalar loss, the upstream
gradient G named) read it, and the ask checks the result against its element formula.
"""
from dataclasses import dataclass, replace

import sympy as sp

from .indices import fresh_index, make_index
from .layers.base import entry
from .simplify import pull_out_of_sums
from .functions import sigmoid
from .tensors import Tensor


@dataclass(frozen=True)
class Named:
    """An intermediate a course names: its tensor, its entry at ``idx`` and what it is (LaTeX allowed)."""
    tensor: Tensor
    idx: tuple
    element: sp.Expr
    why: str
    defined: bool = False            # a name the form introduces (a mask M), its definition shown as a step

    def derived(self):
        """The ``(name, shape, element, idx)`` ``matrix_form.check`` computes it from."""
        return (self.tensor.name, self.tensor.shape, self.element, self.idx)

    def record(self):
        """What the sheet defines, kept on the Answer for the checker (``Intermediate``)."""
        return Intermediate(self.tensor.name, self.tensor.tex, tuple(self.tensor.shape), tuple(self.idx),
                            self.element, self.why, OTHER_NAMES.get(self.tensor.name, ()))


#: Other names courses give the same intermediate, which a student may write for it (D2L writes Ŷ for the
#: batch of predicted probabilities that CS231n calls P); the checker accepts them where the question
#: leaves them free.
OTHER_NAMES = {"P": ("Yhat",), "Yhat": ("P",)}


@dataclass(frozen=True)
class Intermediate:
    """A name the sheet introduces (ŷ, P, the one-hot Y) with its definition in declared names: the one
    record both the sheet (its step "name the intermediates as courses do") and the checker (a student's
    ``\\hat{y}`` resolves to it, ``checking/meaning.py``) use. Plain SymPy and strings, so that an Answer
    carrying it pickles into the grading cache.

    >>> c = make_index("c", 3); o = sp.Symbol("o", integer=True)
    >>> y = Intermediate("y", "y", (3,), (c,), sp.KroneckerDelta(c, o), "the one-hot of o")
    >>> y.at((sp.Integer(2),))
    KroneckerDelta(2, o)
    >>> expand_intermediates(sp.IndexedBase("y")[1] + 1, {"y": y})
    KroneckerDelta(1, o) + 1
    """
    name: str
    tex: str
    shape: tuple
    idx: tuple
    element: sp.Expr
    why: str
    also: tuple = ()          # other identifiers a student may write for it (Yhat for P)
    #: Backpropagation's δ: kept as a name in what is graded and computed from its definition at each test
    #: point (top down), since written out the δ's nest one sum per layer and grow with the depth.
    computed: bool = False

    def at(self, indices):
        """The definition at ``indices`` (one per axis)."""
        return self.element.xreplace(dict(zip(self.idx, indices)))


def expand_intermediates(expr, intermediates):
    """``expr`` with every entry of a named intermediate replaced by its definition (an exact rewrite back
    to declared names: what an answer written with ŷ is graded against)."""
    by_name = dict(intermediates)

    def definition(e):
        found = by_name[e.base.label.name]
        return found.at(e.indices) if len(e.indices) == len(found.idx) else e
    if not intermediates or not hasattr(expr, "replace"):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and getattr(e.base.label, "name", None) in by_name,
                        definition)


def _free_name(candidates, taken):
    name = next((n for n in candidates if n not in taken), None)
    if name is None:
        name = candidates[0]
        while name in taken:
            name += "_"
    taken.add(name)
    return name


def loss_intermediates(layers, taken):
    """The softmax and one-hot target a course names for each softmax-based loss among ``layers``
    ({name: Layer}): ``[(Named softmax, Named one-hot or None, the loss's scores, the label or None)]``.

    >>> import symderive as sd
    >>> s = sd.tensor('s', 4); o = sd.tensor('o')
    >>> J = sd.cross_entropy(s, o, name='J')
    >>> [(p.tensor.name, t.tensor.name) for p, t, _, _ in loss_intermediates({'J': J}, {'s', 'o', 'J'})]
    [('yhat', 'y')]
    """
    out, done = [], set()
    order = {"cross_entropy": 0, "nll_loss": 0, "log_softmax": 1}        # a loss's target before a bare log-softmax
    for layer in sorted(layers.values(), key=lambda l: order.get(getattr(l, "kind", None), 2)):
        kind = getattr(layer, "kind", None)
        if kind not in order:
            continue
        scores = layer.input if kind != "log_softmax" else layer.inputs[0]
        if getattr(scores, "kind", None) == "log_softmax":        # nll_loss(log_softmax(O)): the softmax of O
            scores = scores.inputs[0]
        elif kind == "nll_loss":
            continue
        if scores.rank not in (1, 2) or scores.name in done:
            continue
        done.add(scores.name)
        batched = scores.rank == 2
        name = _free_name(("P", "Yhat") if batched else ("yhat", "qhat", "phat"), taken)
        soft = Tensor(name, scores.shape)
        idx = tuple(make_index(letter, n) for letter, n in zip(("n", "c") if batched else ("c",), scores.shape))
        j = fresh_index(scores.shape[-1], {i.name for i in idx}, ("j", "k"))
        element = sp.exp(entry(scores, idx)) / sp.Sum(sp.exp(entry(scores, idx[:-1] + (j,))),
                                                      (j, 0, scores.shape[-1] - 1))
        softmax = Named(soft, idx, element, rf"${soft.tex} = \operatorname{{softmax}}({scores.tex})$, "
                                            + ("row by row, the predicted probabilities"
                                               if batched else "the predicted probabilities"))
        target, label = None, None
        if getattr(layer, "classes", kind == "nll_loss"):          # nll_loss always takes class indices
            label = layer.target
            one = Tensor(_free_name(("Y", "T") if batched else ("y", "t"), taken), scores.shape)
            element = sp.KroneckerDelta(idx[-1], entry(label, idx[:-1]))
            target = Named(one, idx, element, rf"${one.tex} = \operatorname{{onehot}}({label.tex})$, "
                                              f"the target as a one-hot {'matrix' if batched else 'vector'}")
        out.append((softmax, target, scores, label))
    return out


def name_softmax(expr, scores, named):
    """``expr`` with each softmax of ``scores`` written as the entry of ``named`` (ŷ or P).

    The denominator Σ_j e^{s_j} is moved into a sum over the same j that multiplies it by e^{s_j}
    first, so Σ_j U_{p,j} e^{s_j} / Σ_k e^{s_k} becomes Σ_j U_{p,j} ŷ_j.
    """
    def softmax_parts(factor):
        """(the leading indices, the summation's limits) when ``factor`` is 1 / Σ_j e^{s[…, j]}."""
        if not (isinstance(factor, sp.Pow) and factor.exp == -1 and isinstance(factor.base, sp.Sum)):
            return None
        body, limits = factor.base.function, factor.base.limits
        if len(limits) != 1 or not isinstance(body, sp.exp):
            return None
        arg = body.args[0]
        if not (isinstance(arg, sp.Indexed) and arg.base == scores.base and arg.indices[-1] == limits[0][0]):
            return None
        return tuple(arg.indices[:-1])

    def rewrite(mul):
        factors = list(sp.Mul.make_args(mul))
        for k, factor in enumerate(factors):
            lead = softmax_parts(factor)
            if lead is None:
                continue
            rest = factors[:k] + factors[k + 1:]
            for m, other in enumerate(rest):
                if isinstance(other, sp.exp) and isinstance(other.args[0], sp.Indexed) \
                        and other.args[0].base == scores.base and tuple(other.args[0].indices[:-1]) == lead:
                    others = rest[:m] + rest[m + 1:]
                    return sp.Mul(*others) * named.base[lead + (other.args[0].indices[-1],)]
                if isinstance(other, sp.Sum):
                    for j in [limit[0] for limit in other.limits]:
                        inner = [f for f in sp.Mul.make_args(other.function)
                                 if isinstance(f, sp.exp) and f.args[0] == entry_of(scores, lead + (j,))]
                        if inner:
                            body = other.function / inner[0] * named.base[lead + (j,)]
                            others = rest[:m] + rest[m + 1:]
                            return sp.Mul(*others) * sp.Sum(body, *other.limits)
        return mul

    def entry_of(node, idx):
        return node.base[idx]

    previous = None
    while previous != expr:
        previous = expr
        expr = expr.replace(lambda e: isinstance(e, sp.Mul), rewrite)
    return expr


def name_one_hot(expr, label, named):
    """δ(q, o) → y_q and δ(q, y_n) → Y_{n,q}, with ``named`` the one-hot of ``label``."""
    def is_label(a):
        return a == label.base if not label.shape else isinstance(a, sp.Indexed) and a.base == label.base

    def rewrite(delta):
        a, b = delta.args
        if is_label(a):
            a, b = b, a
        if not is_label(b) or is_label(a):
            return delta
        lead = () if not label.shape else tuple(b.indices)
        return named.base[lead + (a,)]

    return expr.replace(lambda e: isinstance(e, sp.KroneckerDelta) and any(is_label(a) for a in e.args), rewrite)


def picked_by_label(expr, label, named, avoid):
    """An entry picked by a label as a sum with the one-hot: U_{p,o} = Σ_j U_{p,j} y_j (so that it
    joins Σ_j U_{p,j} ŷ_j as U(ŷ − y)). Only entries that are factors of a term, not inside a function."""
    def label_position(e):
        if not isinstance(e, sp.Indexed) or e.base == named.base:
            return None
        for k, i in enumerate(e.indices):
            if i == label.base if not label.shape else (isinstance(i, sp.Indexed) and i.base == label.base):
                return k
        return None

    def rewrite_term(term):
        if isinstance(term, sp.Sum):                   # Σ_h … W_{h,k} … → Σ_h Σ_c … W_{h,c} y_c …
            body = sp.Add(*[rewrite_term(t) for t in sp.Add.make_args(term.function)])
            return term if body == term.function else sp.Sum(body, *term.limits)
        factors = list(sp.Mul.make_args(term))
        sums = [f for f in factors if isinstance(f, sp.Sum)]
        if len(sums) == 1 and not any(label_position(f) is not None for f in factors):
            inner = rewrite_term(sums[0])
            if inner != sums[0]:
                return sp.Mul(*[f for f in factors if f is not sums[0]]) * inner
        for k, f in enumerate(factors):
            pos = label_position(f)
            if pos is None:
                continue
            j = fresh_index(named.shape[-1], set(avoid) | {s.name for s in term.free_symbols}, ("j", "k", "l", "m"))
            lead = () if not label.shape else tuple(f.indices[pos].indices)
            picked = f.base[tuple(f.indices[:pos]) + (j,) + tuple(f.indices[pos + 1:])]
            others = sp.Mul(*(factors[:k] + factors[k + 1:]))
            return sp.Sum(others * picked * named.base[lead + (j,)], (j, 0, named.shape[-1] - 1))
        return term

    return sp.Add(*[rewrite_term(t) for t in sp.Add.make_args(expr)])


def one_minus_tanh_squared(expr):
    """−(t − 1)(t + 1) → 1 − t² for t = tanh(a), the derivative of tanh as courses write it.

    >>> a = sp.Symbol('a')
    >>> one_minus_tanh_squared(sp.Mul(-2, sp.tanh(a) - 1, sp.tanh(a) + 1, sp.Symbol('g'), evaluate=False))
    2*g*(1 - tanh(a)**2)
    """
    def rewrite(mul):
        factors = list(sp.Mul.make_args(mul))
        for t in {f for factor in factors if isinstance(factor, sp.Add) for f in factor.args
                  if isinstance(f, sp.tanh)}:
            if (t - 1) in factors and (t + 1) in factors:
                rest = list(factors)
                rest.remove(t - 1)
                rest.remove(t + 1)
                coeff, others = sp.Mul(*rest).as_coeff_Mul()
                return sp.Mul(-coeff, others, 1 - t ** 2)
        return mul
    return expr.replace(lambda e: isinstance(e, sp.Mul), rewrite)


def merge_sums(expr):
    """Σ_{h,c} A + Σ_{h,j} B → Σ_{h,j} (A + B) (bound indices renamed by their ranges), the merged
    body factored: U(ŷ − y) needs Σ_j U_{p,j} ŷ_j − Σ_c U_{p,c} y_c as one sum. Sums whose ranges
    cannot be matched one to one are left alone."""
    if not isinstance(expr, sp.Add):
        return expr
    groups, rest = {}, []
    for term in expr.args:
        while isinstance(term, sp.Sum) and isinstance(term.function, sp.Sum):     # Σ_h Σ_c f → Σ_{c,h} f
            term = sp.Sum(term.function.function, *term.function.limits, *term.limits)
        if isinstance(term, sp.Sum):
            key = tuple(sorted((str(lo), str(hi)) for _, lo, hi in term.limits))
            if len(set(key)) == len(key):
                groups.setdefault(key, []).append(term)
                continue
        rest.append(term)
    out = list(rest)
    for members in groups.values():
        first = members[0]
        by_range = {(str(lo), str(hi)): var for var, lo, hi in first.limits}
        bodies = [first.function]
        for other in members[1:]:
            renames = {var: by_range[(str(lo), str(hi))] for var, lo, hi in other.limits}
            clash = set(renames.values()) & (other.function.free_symbols - set(renames))
            if clash:
                out.append(other)
                continue
            bodies.append(other.function.xreplace(renames))
        body = sp.Add(*bodies)
        if len(bodies) > 1:
            factored = sp.factor(body)
            body = factored if sp.count_ops(factored) <= sp.count_ops(body) else body
        out.append(sp.Sum(body, *first.limits))
    return sp.Add(*out)


def course_signs(expr, predictions=()):
    """Each difference in a product written the way round a course writes it, the signs moved to
    the coefficient: (a − 1) → −(1 − a) (a constant first, as in σ(1 − σ)), (y − ŷ) → −(ŷ − y)
    (the prediction first; ``predictions`` are the IndexedBases of the named softmaxes).

    >>> a, y, q, j = sp.IndexedBase('a'), sp.IndexedBase('y'), sp.IndexedBase('q'), sp.Symbol('j')
    >>> course_signs((a[j] - 1) * (y[j] - q[j]) * a[j], predictions=(q,))
    (1 - a[j])*(q[j] - y[j])*a[j]
    """
    def wrong_way(f):
        if not isinstance(f, sp.Add):
            return False
        constant = sum(t for t in f.args if t.is_number)
        if constant != 0:
            return constant < 0 and all(t.could_extract_minus_sign() is False for t in f.args if not t.is_number)
        for t in f.args:
            base = t.base if isinstance(t, sp.Indexed) else (-t).base if isinstance(-t, sp.Indexed) else None
            if base is not None and any(base == p or getattr(base, "label", None) == p for p in predictions):
                return t.could_extract_minus_sign()
        return False

    def rewrite(mul):
        factors = list(sp.Mul.make_args(mul))
        flips = [k for k, f in enumerate(factors) if wrong_way(f)]
        if not flips:
            return mul
        for k in flips:
            factors[k] = sp.Add(*[-t for t in factors[k].args])
        sign = -1 if len(flips) % 2 else 1
        return sp.Mul(sign, *factors)
    return expr.replace(lambda e: isinstance(e, sp.Mul), rewrite)


@dataclass(frozen=True)
class Standardization:
    """A layer x̂[k] = (x[k] − μ[k_P]) / s(k_P): x centred by its mean μ over the axes Q (the others,
    P, index μ) and divided by a scale s that depends on k_P only. Batch norm of one feature
    (P = ()), of N × C (P = (1,): a mean per channel), layer norm (P = the leading axes)."""
    xhat: object            # the layer x̂
    x: object               # x's IndexedBase
    mean: object            # the layer μ (rank len(P))
    scale: object           # s as an expression in ``free_kept``
    kept: tuple             # P: the axes of x that index μ, in order
    free_kept: tuple        # the indices the scale is written in (x̂'s own, at P)

    @property
    def summed(self):
        return tuple(a for a in range(self.xhat.rank) if a not in self.kept)

    def count(self):
        return sp.Mul(*[self.xhat.shape[a] for a in self.summed])

    def scale_at(self, idx_kept):
        return self.scale.xreplace(dict(zip(self.free_kept, idx_kept)))

    def mean_at(self, idx_kept):
        return self.mean.base[tuple(idx_kept)] if idx_kept else self.mean.base


def _sum_limits(expr):
    """(body, [(var, lo, hi)]) of nested sums Σ_a Σ_b … f, outermost first."""
    limits = []
    while isinstance(expr, sp.Sum):
        limits += list(expr.limits)
        expr = expr.function
    return expr, limits


def _summed_entry(s, base, kept_axes, shape):
    """The kept indices when ``s`` is Σ over the other axes of base[…], each over its whole range
    (the summation indices exactly the entry's indices at those axes), else None."""
    body, limits = _sum_limits(s)
    if not (isinstance(body, sp.Indexed) and body.base == base) or len(limits) != len(shape) - len(kept_axes):
        return None
    summed_axes = [a for a in range(len(shape)) if a not in kept_axes]
    by_var = {var: (lo, hi) for var, lo, hi in limits}
    for a in summed_axes:
        var = body.indices[a]
        if var not in by_var or by_var[var][0] != 0 or sp.simplify(by_var[var][1] - (shape[a] - 1)) != 0:
            return None
    kept = tuple(body.indices[a] for a in kept_axes)
    if any(set(by_var) & sp.sympify(k).free_symbols for k in kept) or len(set(body.indices[a] for a in summed_axes)) \
            != len(summed_axes):
        return None
    return kept


def _standardizations(layers):
    """[Standardization] for each layer x̂[k] = (x[k] − μ[k_P]) / s(k_P) whose μ is a layer that is
    the mean of x over the other axes (Σ x / their count): batch norm's x̂, a z-score."""
    out = []
    for layer in layers.values():
        if getattr(layer, "rank", 0) < 1 or not getattr(layer, "is_layer", False):
            continue
        k = tuple(make_index(f"k{a}" if layer.rank > 1 else "k", n) for a, n in enumerate(layer.shape))
        try:
            definition = layer.element(k, expand=False)
        except Exception:         # a layer that cannot give its entry unexpanded has no such form
            continue
        centred = [f for f in sp.Mul.make_args(definition) if isinstance(f, sp.Add)
                   and any(isinstance(t, sp.Indexed) and t.indices == k for t in f.args)]
        if len(centred) != 1:
            continue
        denominator = 1 / sp.Mul(*[f for f in sp.Mul.make_args(definition) if f is not centred[0]])
        terms = centred[0].args
        entries = [t for t in terms if isinstance(t, sp.Indexed) and t.indices == k]
        if len(entries) != 1 or len(terms) != 2:
            continue
        x_entry = entries[0]
        (centre,) = [t for t in terms if t is not x_entry]
        centre = -centre
        base = centre.base if isinstance(centre, sp.Indexed) else centre
        mean = next((m for m in layers.values() if getattr(m, "is_layer", False) and m.base == base), None)
        if mean is None:
            continue
        idx_kept = tuple(centre.indices) if isinstance(centre, sp.Indexed) else ()
        if len(set(idx_kept)) != len(idx_kept) or not all(i in k for i in idx_kept) or \
                list(idx_kept) != sorted(idx_kept, key=k.index):
            continue
        kept = tuple(k.index(i) for i in idx_kept)
        if not denominator.free_symbols & set(k) <= set(idx_kept):
            continue
        j = mean.free_indices() if mean.rank else ()
        m_num, m_den = sp.fraction(sp.together(mean.element(j, expand=False)))
        shape = tuple(x_entry.base.shape) if x_entry.base.shape is not None else tuple(layer.shape)
        summed_kept = _summed_entry(m_num, x_entry.base, kept, shape)
        count = sp.Mul(*[shape[a] for a in range(len(shape)) if a not in kept])
        if summed_kept is None or tuple(summed_kept) != tuple(j) or sp.simplify(m_den - count) != 0:
            continue
        out.append(Standardization(layer, x_entry.base, mean, denominator, kept, idx_kept))
    return out


class _Opaque:
    """The square of a standardization's scale, s² = σ² + ε, held as one positive symbol S[k_P] while
    the sums are rewritten (σ² is written S − ε), so that simplify cannot spread ε's digits over the
    form (100√10 / √(100000 σ² + 1) instead of 1/√(σ² + 1/100000)); calling it puts σ² + ε back."""

    def __init__(self, st, variance, rest):
        self.st, self.variance, self.rest = st, variance, rest
        self.base = sp.IndexedBase(sp.Dummy("S", positive=True))

    def entry(self, kept):
        return self.base[tuple(kept)] if kept else self.base.label

    def scale(self, kept):
        return sp.sqrt(self.entry(kept)) if self.variance is not None else self.st.scale_at(kept)

    def hide(self, expr):
        if self.variance is None:
            return expr
        if isinstance(self.variance, sp.IndexedBase):
            return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == self.variance,
                                lambda e: self.entry(e.indices) - self.rest)
        return expr.xreplace({self.variance: self.entry(()) - self.rest})

    def __call__(self, expr):
        if self.variance is None:
            return expr
        if isinstance(self.variance, sp.IndexedBase):
            return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == self.base,
                                lambda e: self.variance[e.indices] + self.rest)
        return expr.xreplace({self.base.label: self.variance + self.rest})


def _opaque_square(expr, st):
    """(``expr`` with σ²[k_P] written S[k_P] − ε, where s(k_P)² = σ²[k_P] + ε, and the _Opaque that
    undoes it); nothing is hidden unless the scale is that square root, σ² the entry of a layer indexed
    by k_P, and ε a constant."""
    scale, nothing = st.scale, (expr, _Opaque(st, None, None))
    if not (isinstance(scale, sp.Pow) and scale.exp == sp.S.Half and isinstance(scale.base, sp.Add)):
        return nothing
    entries = [t for t in scale.base.args if (isinstance(t, sp.Indexed) and t.indices == st.free_kept)
               or (not st.free_kept and isinstance(t, sp.Symbol) and t.is_real and not isinstance(t, sp.Idx))]
    if len(entries) != 1:
        return nothing
    rest = scale.base - entries[0]
    if rest.free_symbols & set(st.free_kept) or rest.has(sp.Indexed):
        return nothing
    opaque = _Opaque(st, entries[0].base if isinstance(entries[0], sp.Indexed) else entries[0], rest)
    return opaque.hide(expr), opaque


def standardized(expr, layers):
    """``expr`` written through each standardized layer x̂ = (x − μ)/s (``_standardizations``):
    Σ_Q x = n μ, then x[k] = μ[k_P] + s(k_P) x̂[k], then Σ_Q x̂ = 0, so batch norm's gradient reads
    (γ/(N s)) (N g − Σ_n g_n − x̂ Σ_n g_n x̂_n) instead of a polynomial in x up to N⁻⁴.
    Returns (expr, [the layers x̂ used])."""
    used = []
    for st in _standardizations(layers):
        if not expr.has(st.x):
            continue
        shape, n = tuple(st.xhat.shape), st.count()

        def totals(base, value):
            def match(s):
                return isinstance(s, sp.Sum) and _summed_entry(s, base, st.kept, shape) is not None
            return lambda e: e.replace(match, lambda s: value(_summed_entry(s, base, st.kept, shape)))

        squared, back = _opaque_square(expr, st)
        new = pull_out_of_sums(sp.expand(squared))
        new = totals(st.x, lambda kept: n * st.mean_at(kept))(new)
        new = new.replace(lambda s: isinstance(s, sp.Indexed) and s.base == st.x,
                          lambda s: st.mean_at([s.indices[a] for a in st.kept])
                          + back.scale([s.indices[a] for a in st.kept]) * st.xhat.base[s.indices])
        new = pull_out_of_sums(sp.expand(new))
        new = totals(st.xhat.base, lambda kept: sp.S.Zero)(new)
        new = pull_out_of_sums(sp.expand(sp.simplify(sp.together(new))))
        if new.has(st.x):
            continue
        new = back(new)
        expr = _common_out_front(new)
        used.append(st.xhat)
    return expr, used


def _common_out_front(expr):
    """c · (t₁ + t₂ + …) with c the product of the factors every term shares and the terms' numbers
    made whole: γ/(N s) · (N g_p − Σ g − x̂_p Σ g x̂)."""
    terms = sp.Add.make_args(sp.expand(expr))
    if len(terms) < 2:
        return expr
    factored = sp.factor_terms(sp.Add(*terms))
    sums = [a for a in sp.Mul.make_args(factored) if isinstance(a, sp.Add)]
    if len(sums) != 1:
        return expr
    inside = sums[0]
    outside = sp.Mul(*[a for a in sp.Mul.make_args(factored) if a is not inside])
    num, den = sp.fraction(sp.together(inside))
    if den.free_symbols and not num.is_Add:
        return expr
    # the denominator of the terms goes out front too: (1/N)(N g − …)
    return sp.Mul(outside / den, sp.expand(num), evaluate=False) if den != 1 else sp.Mul(outside, inside,
                                                                                          evaluate=False)


def named_mask(expr, free, columns, leaves, taken):
    """``expr`` = c · Σ_n A_{n,p} M_{n,q} with M a mask (it holds steps 𝟙[· > 0]): the gradient of a
    hinge through a linear map, written c Aᵀ M as CS231n writes the SVM's ∂L/∂W = (1/N) Xᵀ M.
    Returns (the expression with M named, Named M) or None. ``free`` = (p, q), ``columns`` the range
    of q, ``leaves`` the names A may have (the declared tensors); M takes a name the question leaves free.

    >>> from symderive.indices import make_index
    >>> X, S = sp.IndexedBase('X'), sp.IndexedBase('S')
    >>> n, p, q = make_index('n', 4), make_index('p', 3), make_index('q', 2)
    >>> e = sp.Sum(sp.Heaviside(S[n, q], 0) * X[n, p], (n, 0, 3)) / 4
    >>> new, mask = named_mask(e, (p, q), 2, {'X'}, {'X', 'S'})
    >>> new, mask.element
    (Sum(M[n, q]*X[n, p], (n, 0, 3))/4, Heaviside(S[n, q], 0))
    """
    if len(free) != 2 or not expr.has(sp.Heaviside):
        return None
    p, q = free
    rows, parts, outside = None, [], []     # rows: (A, n, lo, hi) of the first term; parts: M's terms
    for term in _distributed(expr):
        factors = sp.Mul.make_args(term)
        sums = [f for f in factors if isinstance(f, sp.Sum)]
        sign = sp.Mul(*[f for f in factors if not isinstance(f, sp.Sum)])
        if len(sums) != 1 or sign.has(sp.Indexed, p, q):
            if term.has(sp.Heaviside):
                return None
            outside.append(term)                # 2λW beside the hinge's gradient: a term of its own
            continue
        rest = sums[0]
        for k, (var, lo, hi) in enumerate(rest.limits):
            picked = [f for f in sp.Mul.make_args(rest.function) if isinstance(f, sp.Indexed)
                      and f.indices == (var, p) and str(f.base.label) in leaves]
            if len(picked) != 1:
                continue
            a = picked[0]
            if rows is None:
                rows = (a.base, var, lo, hi)
            if a.base != rows[0] or (lo, hi) != rows[2:]:
                return None
            inner = (rest.function / a).xreplace({var: rows[1]})
            others = tuple((v, l, h) for v, l, h in rest.limits[:k] + rest.limits[k + 1:])
            inner_sum = sp.Sum(inner, *others) if others else inner
            if p in inner_sum.free_symbols:
                return None
            parts.append(sign * inner_sum)
            break
        else:
            return None
    if not parts or not sp.Add(*parts).has(sp.Heaviside):
        return None
    coeff, element = _common_scalar(sp.Add(*parts))
    base, n, lo, hi = rows
    mask = Tensor(_free_name(("M", "Mask"), taken), (hi - lo + 1, columns))
    named = Named(mask, (n, q), element,
                  rf"${mask.tex}$ is the mask of the margins: each entry the steps $\mathbf{{1}}\{{\cdot > 0\}}$ "
                  "of the terms that reach it", defined=True)
    return coeff * sp.Sum(base[n, p] * mask.base[n, q], (n, lo, hi)) + sp.Add(*outside), named


def _distributed(expr):
    """The terms of ``expr`` with products of a sum multiplied out, sums (Σ) left whole.

    >>> a, b, c, n = sp.symbols('a b c n')
    >>> _distributed(2 * c + (sp.Sum(a, (a, 0, n)) - b) / n)
    [2*c, Sum(a, (a, 0, n))/n, -b/n]
    """
    out = []
    for term in sp.Add.make_args(expr):
        adds = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Add)]
        if len(adds) == 1:
            rest = term / adds[0]
            out.extend(_distributed(sp.Add(*[rest * t for t in adds[0].args])))
        else:
            out.append(term)
    return out


def _common_scalar(expr):
    """(c, e / c) with c the factor free of indices and sums that every term of ``expr`` shares (1/N).

    >>> n = sp.Symbol('n'); x = sp.IndexedBase('x')
    >>> _common_scalar(x[n] / n + 2 * x[1] / n)
    (1/n, 2*x[1] + x[n])
    """
    factored = sp.factor_terms(expr)
    coeff = sp.Mul(*[f for f in sp.Mul.make_args(factored) if not f.has(sp.Indexed, sp.Sum)])
    return coeff, sp.expand(expr / coeff) if coeff != 1 else expr


def sigmoid_derivative(expr, layers):
    """σ(z)(1 − σ(z)) → σ'(z), as courses name a sigmoid layer's derivative (δ₁ = δ₂W₂ᵀ ⊙ σ'(z₁)):
    a_h (1 − a_h) for a layer a = sigmoid(z) of ``layers`` ({name: Layer}), and σ(e)(1 − σ(e)) written out.

    >>> z = sp.IndexedBase('z'); h = sp.Symbol('h')
    >>> sigmoid_derivative(3 * sigmoid(z[h]) * (1 - sigmoid(z[h])), {})
    3*sigmoid_prime(z[h])
    """
    from .functions import sigmoid_prime
    outputs = {layer.base: layer for layer in layers.values()
               if getattr(layer, "kind", None) == "sigmoid" and getattr(layer, "rank", 0) >= 1}

    def argument(f):
        """z when ``f`` is σ(z) or the entry a_h of a layer a = σ(z) (z at h), else None."""
        if isinstance(f, sigmoid):
            return f.args[0]
        if isinstance(f, sp.Indexed) and f.base in outputs:
            return outputs[f.base].definition(tuple(f.indices)).args[0]
        return None

    def rewrite(mul):
        factors = list(sp.Mul.make_args(mul))
        for k, f in enumerate(factors):
            z = argument(f)
            if z is None or (1 - f) not in factors:
                continue
            rest = factors[:k] + factors[k + 1:]
            rest.remove(1 - f)
            return sp.Mul(*rest) * sigmoid_prime(z)
        return mul
    return expr.replace(lambda e: isinstance(e, sp.Mul), rewrite)


# Backward passes of layer kinds ------------------------------------------------------------

@dataclass(frozen=True)
class BackwardForm:
    """∂L/∂wrt through one layer as a course writes its backward pass: the intermediates it names,
    in order (each may use the ones before it: dP, then D, then dS), and the gradient's entry at the
    free indices in their terms. The layer kind's ``backward_form`` rule builds it; the ask converts
    each to matrix notation and checks the gradient against the element formula it derived."""
    named: tuple
    gradient: sp.Expr
    layer: object = None          # the layer whose backward pass it is (set by layer_backward, loss_backward)


def free_name(candidates, taken):
    """The first of ``candidates`` not in ``taken`` (then marked taken), or the first with underscores.

    >>> free_name(("P", "A"), {"P"})
    'A'
    """
    return _free_name(candidates, taken)


def layer_backward(of, wrt, upstream, free, taken):
    """The course's backward pass of the layer ``of`` to its input ``wrt`` with the upstream gradient
    ``upstream`` (a Tensor shaped like ``of``), from the rule its kind registers, or None when the kind
    has none or the rule does not apply (``wrt`` not one of its inputs, leading axes it does not cover)."""
    from .layers.registry import KINDS
    kind = KINDS.get(getattr(of, "kind", None))
    rule = getattr(kind, "backward_form", None)
    if rule is None or not of.is_layer:
        return None
    form = rule(of, wrt, upstream, tuple(free), set(taken))
    return None if form is None else replace(form, layer=of)


def loss_backward(of, wrt, free, taken):
    """For a scalar loss ``of`` and ``wrt`` an input of a layer Y below it whose kind has a backward
    rule: that rule's backward pass with the upstream gradient named G = ∂of/∂Y (its entry derived by
    the engine, one more intermediate), or None. Another path from ``wrt`` to the loss is not looked
    for here: the form is checked against the element formula, which has every path."""
    from .derivative import derivative
    from .layers.registry import KINDS
    if of.shape or not of.is_layer:
        return None
    taken = set(taken) | {i.name for i in free}
    for layer in of.layer_inputs().values():
        rule = getattr(KINDS.get(getattr(layer, "kind", None)), "backward_form", None)
        if rule is None or wrt.name not in set(layer.leaves()) | set(layer.layer_inputs()):
            continue
        name = _free_name(("G", "dY", "dO"), taken)
        upstream = Tensor(name, layer.shape)
        form = rule(layer, wrt, upstream, tuple(free), set(taken))
        if form is None:
            taken.discard(name)
            continue
        d = derivative(of, layer, taken)
        named = Named(upstream, d.wrt_idx, d.value,
                      rf"${upstream.tex} = \partial {of.tex}/\partial {layer.tex}$, the upstream gradient")
        return BackwardForm((named,) + tuple(form.named), form.gradient, layer)
    return None
