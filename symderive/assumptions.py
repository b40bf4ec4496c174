"""Facts about tensors that derivations and proofs may use, each with the reason it holds.

Today: facts derived from a layer's definition (the entries of a softmax over a vector sum to 1);
``ask: hessian`` adds the question's declared ``constraints:`` as ``Fact`` s (``ask: prove`` reads
its own constraints). Facts a problem could declare about its inputs (one-hot, positive,
symmetric, detached) would belong here too.
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
