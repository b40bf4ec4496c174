"""The cached deduction of an Indexed's assumptions gives exactly what SymPy's own does."""
import itertools

import sympy as sp

from symderive import indexed_facts
from symderive.tensors import Tensor   # noqa: F401  (the engine installs the cache on import)

ASSUMPTIONS = [{}, {"real": True}, {"positive": True}, {"integer": True, "nonnegative": True},
               {"real": False}, {"commutative": False}, {"negative": True, "finite": True}]


def with_sympys_own(build):
    saved = sp.IndexedBase._set_assumptions
    sp.IndexedBase._set_assumptions = staticmethod(indexed_facts.SYMPY_SET_ASSUMPTIONS)
    try:
        return build()
    finally:
        sp.IndexedBase._set_assumptions = saved


def test_the_cache_is_installed():
    assert sp.IndexedBase._set_assumptions is indexed_facts.set_assumptions


def test_same_facts_as_sympy():
    i, j = sp.symbols("i j", integer=True)
    for n, facts in enumerate(ASSUMPTIONS):
        def build():
            base = sp.IndexedBase(f"b{n}", **facts)
            return base, base[i, j], base[i + 1]
        ours, theirs = build(), with_sympys_own(build)
        for a, b in zip(ours, theirs):
            assert dict(a._assumptions) == dict(b._assumptions), facts
            assert a._assumptions._generator == b._assumptions._generator
            assert a.assumptions0 == b.assumptions0
            for fact in ("real", "positive", "integer", "zero", "finite", "commutative", "extended_real"):
                assert getattr(a, f"is_{fact}") == getattr(b, f"is_{fact}"), (facts, fact)


def test_entries_do_not_share_what_they_learn():
    """SymPy stores facts it works out later in the entry's own dict: a shared dict would leak
    one entry's facts to the next."""
    x = sp.IndexedBase("x_shared", real=True)
    first, second = x[sp.Symbol("p")], x[sp.Symbol("q")]
    assert first._assumptions is not second._assumptions
    assert x[sp.Symbol("r")]._assumptions.get("prime") is None        # real alone does not decide it
    first._assumptions["prime"] = False            # as SymPy's _ask records a fact it works out
    assert x[sp.Symbol("r")]._assumptions.get("prime") is None
    assert second._assumptions.get("prime") is None


def test_all_combinations_of_sign_facts_agree():
    for facts in itertools.product((True, False, None), repeat=2):
        given = {k: v for k, v in zip(("positive", "integer"), facts) if v is not None}
        build = lambda: sp.IndexedBase("z", **given)[sp.Symbol("k")]   # noqa: E731
        assert dict(build()._assumptions) == dict(with_sympys_own(build)._assumptions), given
