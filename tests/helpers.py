"""Shared by the test modules: running the CLI, and comparing arrays with a reference."""
import re
import subprocess
import sys
import zlib
from fractions import Fraction

import numpy as np

#: The CLI makes PDFs by default when TeX is installed; tests that only need .tex skip it.
NO_PDF = ["--no-pdf"]


def run_cli(args, cwd, timeout=300):
    """``python -m symderive ARGS`` in ``cwd``, output captured."""
    return subprocess.run([sys.executable, "-m", "symderive", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def assert_close(actual, expected, what="", tol=1e-9):
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != reference {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


def rng_for(name):
    """A generator seeded from a test's name: reproducible and different per test."""
    return np.random.default_rng(zlib.crc32(name.encode()))


# Counterexamples as printed: "Counterexample: N = 2, x = 1, p[1] = 4/7, ...: lhs = a, rhs = b."
COUNTEREXAMPLE = re.compile(r"Counterexample: (?P<point>.*): lhs = (?P<lhs>\S+), rhs = (?P<rhs>\S+?)\.?$")
ASSIGNMENT = re.compile(r"([A-Za-z]\w*(?:\[[^\]]*\])?) = (-?\d+(?:/\d+)?)")


def parse_counterexample(detail):
    """({name or entry: Fraction}, reported lhs, reported rhs) from an answer's detail."""
    match = COUNTEREXAMPLE.search(detail)
    assert match, f"no counterexample in {detail!r}"
    point = {name: Fraction(value) for name, value in ASSIGNMENT.findall(match.group("point"))}
    return point, float(match.group("lhs")), float(match.group("rhs"))


# ---------------------------------------------------------------------------------------------
# A layer's formulas evaluated by SymPy at given values, for comparisons with torch autograd


def sympy_number(expr, values, indices=None):
    """``expr`` as a float: index symbols (by name) from ``indices``, entries of tensors from
    ``values`` (name -> NumPy array; a scalar tensor is a 0-d array). Evaluated by SymPy itself
    (sums written out, entries substituted until none is left), not by symderive's evaluators.
    An index read from a tensor (z[n, y[n]]) is substituted first, then the entry it selects."""
    import sympy as sp
    expr = sp.sympify(expr)
    if indices:
        expr = expr.xreplace({s: sp.Integer(indices[s.name]) for s in expr.free_symbols
                              if s.name in indices and not isinstance(s, sp.Indexed)})
    expr = expr.doit()
    for _ in range(4):
        entries = {}
        for atom in expr.atoms(sp.Indexed):
            if all(i.is_Integer for i in atom.indices):
                array = np.asarray(values[atom.base.label.name])
                at = tuple(int(i) for i in atom.indices)
                inside = all(0 <= i < n for i, n in zip(at, array.shape))
                entries[atom] = _exact(array[at]) if inside else sp.S.Zero
        scalars = {s: _exact(values[s.name]) for s in expr.free_symbols
                   if isinstance(s, sp.Symbol) and s.name in values and np.ndim(values[s.name]) == 0}
        expr = expr.xreplace({**entries, **scalars}).doit()
        if not expr.atoms(sp.Indexed):
            break
    return float(sp.N(expr, 30))


def _exact(value):
    """A whole number (a label) as a SymPy Integer, so that it can index; others as 30-digit Floats."""
    import sympy as sp
    value = float(value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value, 30)


def result(answer, kind):
    """The first result of ``kind`` (a ``Kind``) in ``answer``."""
    return next(r for r in answer.results if r.kind is kind)


def derivative_question(problem, answer, qid):
    """(question, declarations, of, wrt, element result, its free indices) of a solved derivative question:
    what the form tests rebuild a course form from."""
    from symderive.answer import Kind
    question = next(q for q in problem.questions if q.id == qid)
    decls = problem.declarations(question)
    of, wrt = decls.lookup(question.spec["of"]), decls.lookup(question.spec["wrt"])
    element = result(answer, Kind.ELEMENT)
    return question, decls, of, wrt, element, tuple(i for _, i in element.axes)
