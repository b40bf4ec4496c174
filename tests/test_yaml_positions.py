"""The libyaml-based loader gives what PyYAML's pure-Python loader gives: values, positions of
every string and mapping, and the per-line segments of multi-line scalars (issue 17: the Python
scanner was a quarter of ``list``'s time)."""
from pathlib import Path

import pytest
import yaml

from symderive import yaml_positions
from symderive.yaml_positions import inner_position, load

ROOT = Path(__file__).resolve().parent.parent

DOCUMENTS = [
    "a: >-\n  1 +\n  zz\nb: '2*y'\n",
    "title: Ünïcödé — σ(x)\nq: \"é +\n  ß\"\nr: |\n    αβ\n    γ\n\n    δ\n",
    "a: 'it''s\n   quoted\n\n   twice'\nb: plain\n  continued\n    again\n",
    "x:\r\n  - 'one'\r\n  - >\r\n    two\r\n    three\r\n",
    "m: {k: v, 'l': \"w\", n: [1, 2.5, true, null, '3']}\n",
    "a: &x [p, q]\nb: [*x, *x]\nc: !!str 12\n",
    "t: 'tab\there'\nu: |2\n    indented\n   less\n",
]


def described(value):
    """Every value with its type and position, in document order."""
    if isinstance(value, dict):
        yield ("map", value.line, value.column)
        for key, item in value.items():
            yield from described(key)
            yield from described(item)
    elif isinstance(value, list):
        for item in value:
            yield from described(item)
    else:
        yield (repr(value), type(value).__name__, getattr(value, "line", None), getattr(value, "column", None),
               getattr(value, "segments", None))


@pytest.mark.parametrize("text", DOCUMENTS + [p.read_text(encoding="utf-8")
                                              for p in sorted((ROOT / "problems").glob("*.yaml"))])
def test_libyaml_loader_matches_the_python_loader(text):
    slow = list(described(load(text, loader=yaml_positions._Loader)))
    fast = list(described(yaml.load(text, Loader=yaml_positions._FastLoader)))  # no fallback
    assert fast == slow
    assert any(kind == "Located" for _, kind, *_ in [d for d in slow if len(d) == 5])


def test_libyaml_is_used():
    """PyYAML's wheels ship libyaml; without it the pure-Python loader is used (5x slower)."""
    assert yaml_positions.CParser is not None
    assert yaml_positions._FastLoader is not yaml_positions._Loader


def test_positions_inside_a_multi_line_scalar():
    doc = load("title: T\nexpr: >-\n  a +\n    b * c\n")
    assert inner_position(doc["expr"], 2, 3) == (4, 7)     # 'b' of the second line ('a + b * c')


def test_errors_are_the_python_parsers():
    """libyaml refuses some documents with its own words and positions; they are read again by
    PyYAML's parser so that an error reads the same whichever parser found it."""
    text = "title: " + "[" * 2000 + "\n"
    with pytest.raises(yaml.YAMLError) as info:
        load(text)
    assert info.value.problem == "nested too deeply (more than 100 levels)"
    assert info.value.problem_mark.column == len("title: ") + 99
    with pytest.raises(yaml.YAMLError) as info:
        load("a: [1, 2\nb: 3\n")
    with pytest.raises(yaml.YAMLError) as python:
        load("a: [1, 2\nb: 3\n", loader=yaml_positions._Loader)
    assert str(info.value) == str(python.value)


def test_libyaml_accepts_a_tab_after_a_colon():
    """The one difference found: libyaml reads a tab after ``key:`` as a separator (YAML 1.2
    allows it), where PyYAML's scanner refused the file."""
    assert load("t:\t'tab'\n") == {"t": "tab"}
