"""Fuzzing problem files (hypothesis): the families of hostile and mistaken input of issue 15
and random mutations of the shipped problems only ever give documented outcomes: a one-line
located error (exit 2 for the file, or a failed question), or an answer; never a traceback,
an internal error, a hang, or a silently wrong outcome (a bad condition ignored, a broken
layer unreported). benchmarks/fuzz.py runs the same generators at scale."""
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_problems as hp

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)


def assert_documented(case, tmp_path, limit=60):
    path = tmp_path / "fuzz.yaml"
    path.write_text(case.text)
    start = time.monotonic()
    defects = hp.run_case(case, path, timeout=5)
    assert not defects, (case.family, case.text[:2000], defects)
    assert time.monotonic() - start < limit, (case.family, case.text[:2000], "took too long")


@pytest.mark.parametrize("family", hp.FAMILIES, ids=lambda f: f.__name__)
@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_hostile_families(family, seed, tmp_path_factory):
    assert_documented(family(random.Random(seed)), tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("shipped", hp.SHIPPED, ids=lambda p: p.stem)
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_mutated_shipped_problems(shipped, seed, tmp_path_factory):
    assert_documented(hp.mutation(random.Random(seed), shipped), tmp_path_factory.mktemp("fuzz"))
