"""A cache for the assumptions SymPy deduces for every ``Indexed`` it builds.

``Indexed.__new__`` gives each new entry x[i, j] its base's assumptions by running SymPy's
whole inference (``StdFactKB(base.assumptions0)``, 0.1-0.2 ms) although the outcome depends
only on that dict. Every ``xreplace``, substitution and rebuild of a tree makes new entries:
nyu24-1.2.2f built 12,145 of them, and the deduction was about 11 % of its profile (see
docs/performance.md). The cache keeps one deduced knowledge base per distinct assumptions dict
and gives each entry its own copy, so entries still record facts they learn later in their own
dict, and every entry gets exactly what SymPy's own ``IndexedBase._set_assumptions`` gives it.
"""
from sympy.core.assumptions import StdFactKB
from sympy.core.logic import fuzzy_bool
from sympy.tensor.indexed import IndexedBase

#: distinct assumptions dicts (frozen) -> their deduced facts; real runs see a few dozen.
_DEDUCED = {}
_LIMIT = 4096
SYMPY_SET_ASSUMPTIONS = IndexedBase._set_assumptions


def set_assumptions(obj, assumptions):
    """``IndexedBase._set_assumptions`` with the deduction cached (same result, same side effect
    on ``assumptions``).

    >>> import sympy as sp
    >>> x = sp.IndexedBase("x", real=True)
    >>> entry = x[sp.Symbol("i")]
    >>> entry.is_real, entry.is_complex, entry.is_integer
    (True, True, None)
    """
    generator = assumptions.copy()
    assumptions["commutative"] = fuzzy_bool(assumptions.get("commutative", True))
    key = frozenset(assumptions.items())
    known = _DEDUCED.get(key)
    if known is None:
        if len(_DEDUCED) >= _LIMIT:
            _DEDUCED.clear()
        known = _DEDUCED[key] = StdFactKB(assumptions)
    facts = StdFactKB()                   # empty: no deduction
    dict.update(facts, known)
    facts._generator = generator          # as SymPy sets it (sympy issue 8873)
    obj._assumptions = facts


def install():
    IndexedBase._set_assumptions = staticmethod(set_assumptions)
