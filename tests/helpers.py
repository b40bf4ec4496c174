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
