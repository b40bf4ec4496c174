"""Facts about tensors that derivations and proofs may use, each with the reason it holds.

Facts derived from a layer's definition (the entries of a softmax over a vector sum to 1);
``ask: hessian`` adds the question's declared ``constraints:`` as ``Fact`` s (``ask: prove`` reads
its own constraints). Facts a problem file declares about a tensor (``TENSOR_FACTS``: one-hot,
rows summing to 1, positive, class labels, detached) are read here too: derivations use
Σ_j y_j = 1 (``rows_sum_to_one``), checks draw values in the declared domain (``domain``), and
``derivative`` refuses to differentiate by labels or a detached tensor. (A symmetric matrix is
declared the same way and handled by ``matrix_functions.symmetric_entries``.)
"""
from dataclasses import dataclass

import sympy as sp

from .indices import make_index
from .simplify import apply_constraints, pull_out_of_sums, tidy


@dataclass(frozen=True)
class Fact:
    """``lhs = rhs`` for every value of the inputs; ``why`` says how it follows (LaTeX allowed)."""
    lhs: sp.Expr
    rhs: sp.Expr
    why: str


def derived_facts(layers):
    """Facts that follow from the definitions of ``layers`` ({name: Layer}).

    A softmax q over a vector gives Σ_j q_j = Σ_j e^{z_j} / Σ_k e^{z_k} = 1.

    >>> import symderive as sd
    >>> q = sd.softmax(sd.tensor('z', 3), name='q')
    >>> [(f.lhs, f.rhs) for f in derived_facts({'q': q})]
    [(Sum(q[j], (j, 0, 2)), 1)]
    """
    facts = []
    for name, layer in layers.items():
        if getattr(layer, "kind", None) == "softmax" and layer.rank == 1:
            j = make_index("j", layer.shape[0])
            z = layer.z.tex if hasattr(layer.z, "tex") else layer.z.name
            facts.append(Fact(sp.Sum(layer.base[j], (j, 0, layer.shape[0] - 1)), sp.S.One,
                              rf"$\sum_j {layer.tex}_j = \sum_j e^{{{z}_j}} / \sum_k e^{{{z}_k}} = 1$ "
                              f"({name} is a softmax)"))
    return facts


def use_facts(expr, facts):
    """(new expression, the facts used): factors pulled out of sums, then each fact's sum replaced."""
    if not facts:
        return expr, []
    pulled = pull_out_of_sums(expr)
    used = []
    for fact in facts:
        new = apply_constraints(pulled, [(fact.lhs, fact.rhs)])
        if new != pulled:
            used.append(fact)
            pulled = new
    return (tidy(pulled), used) if used else (expr, [])


# Facts a problem file declares about a tensor ------------------------------------------

#: What each key a tensor's mapping may carry declares (``y: {shape: [V], one_hot: true}``).
TENSOR_FACTS = {
    "one_hot": "entries 0 or 1 with a single 1 along the last axis, so each row sums to 1",
    "sums_to_one": "entries along the last axis sum to 1 (a probability vector per row)",
    "positive": "every entry is > 0",
    "labels": "class indices 0..C−1, whole numbers that select entries (give C)",
    "detached": "a constant for differentiation: no gradient flows to it, as torch's .detach()",
}


def read_tensor_facts(name, spec, dims, where):
    """{fact: value} declared in a tensor's mapping, checked; ``where`` gives the error's position.

    >>> read_tensor_facts('y', {'shape': [3], 'one_hot': True}, [3], lambda: (0, 0))
    {'one_hot': True}
    """
    from .errors import ExpressionError, ShapeError
    facts = {}
    for key in TENSOR_FACTS:
        if key not in spec:
            continue
        value = spec[key]
        if key == "labels":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ExpressionError(f"tensor '{name}': labels gives the number of classes, e.g. labels: C",
                                      *where())
            facts[key] = value
            continue
        if not isinstance(value, bool):
            raise ExpressionError(f"tensor '{name}': {key} is true or false", *where())
        if value:
            facts[key] = True
    if ("one_hot" in facts or "sums_to_one" in facts) and not dims:
        raise ShapeError(f"tensor '{name}': a scalar cannot be one-hot or sum to 1 (it needs an axis)", *where())
    if "labels" in facts and len(facts) > 1:
        raise ExpressionError(f"tensor '{name}': labels (class indices) cannot also be "
                              f"{', '.join(k for k in facts if k != 'labels')}", *where())
    if "one_hot" in facts and "sums_to_one" in facts:
        del facts["sums_to_one"]                 # implied
    return facts


def tensor_facts(tensor):
    """The facts declared about ``tensor`` ({} for a layer or an undeclared tensor)."""
    return getattr(tensor, "facts", None) or {}


def domain(tensor, sizes_of=None):
    """How random values for ``tensor`` are drawn in checks: ("labels", C), ("one_hot",),
    ("simplex",), ("positive",) or None."""
    facts = tensor_facts(tensor)
    if "labels" in facts:
        return ("labels", sizes_of(facts["labels"]) if sizes_of else facts["labels"])
    for key, drawn in (("one_hot", ("one_hot",)), ("sums_to_one", ("simplex",)), ("positive", ("positive",))):
        if key in facts:
            return drawn
    return None


def rows_sum_to_one(expr, tensors):
    """(expr, [Fact]) with each Σ_j y[…, j] over the whole last axis of a tensor declared one-hot
    or summing to 1 replaced by 1 (factors free of j are pulled out of sums first)."""
    bases = {t.base: t for t in tensors if {"one_hot", "sums_to_one"} & set(tensor_facts(t)) and t.shape}
    if not bases:
        return expr, []
    used = {}

    def is_row_sum(e):
        if not isinstance(e, sp.Sum) or len(e.limits) != 1:
            return False
        j, lo, hi = e.limits[0]
        body = e.function
        if not (isinstance(body, sp.Indexed) and body.base in bases and body.indices[-1] == j):
            return False
        t = bases[body.base]
        return lo == 0 and sp.simplify(hi - (t.shape[-1] - 1)) == 0 and \
            not any(j in sp.sympify(i).free_symbols for i in body.indices[:-1])

    def one(e):
        t = bases[e.function.base]
        kind = "one-hot" if "one_hot" in tensor_facts(t) else "declared to sum to 1"
        used[t.name] = Fact(e, sp.S.One, rf"$\sum_j {t.tex}_j = 1$ (${t.tex}$ is {kind})")
        return sp.S.One

    pulled = pull_out_of_sums(expr)
    new = pulled.replace(is_row_sum, one)
    return (tidy(new), list(used.values())) if used else (expr, [])
