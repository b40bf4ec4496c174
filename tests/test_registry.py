"""The layer registry (symderive/layers/) and the function registry (symderive/functions.py):
every rule is checked by looping over the registry, so a kind or a function added there is
tested without editing a table here.

Shapes are compared with what the kind's own torch.nn module computes (when torch is
installed); a missing rule is one error naming the kind and the operation.
"""
import json
import pathlib
import re

import numpy as np
import pytest
import sympy as sp

import symderive as sd
from symderive.expressions import Scope
from symderive.functions import FUNCTIONS, KNOWN_FUNCTIONS
from symderive.layers import (KINDS, MODULES, LayerKind, MissingRule, formula_kind, formula_kinds, register,
                              torch_module)
from symderive.layers.stack import FeatureShape, NetLayer
from symderive.network import CallReader
from symderive.numeric_network import NumericNetwork

DOCS = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "problem-format.md").read_text()


def test_every_kind_has_a_torch_op_or_says_why():
    for name, kind in KINDS.items():
        if kind.formula is not None:
            assert kind.torch is not None or kind.no_torch, f"{name}: index formula without a torch op"
        if kind.module is not None:
            assert kind.torch_module is not None or kind.no_torch, f"{name}: stack entry without a torch.nn module"
            assert kind.torch_module_name, f"{name}: its torch.nn module is not named for reports"
        assert kind.formula is not None or kind.module is not None or kind.torch is not None, name


def test_every_kind_is_documented():
    for name, kind in KINDS.items():
        if kind.formula is not None:
            assert f"`{name}" in DOCS, f"index formula '{name}' is missing from docs/problem-format.md"
        if kind.module is not None:
            assert re.search(rf"\b{kind.module}\b", DOCS), f"stack entry '{kind.module}' is missing from the docs"


def test_every_library_kind_is_a_function_of_the_api():
    for name, kind in formula_kinds().items():
        if kind.library:
            assert callable(getattr(sd, name)) and name in sd.__all__, name
            assert getattr(sd, name).__doc__.startswith(f"{name}(")


def _minimal_call(kind):
    """The kind's call with every required argument 2: Conv2d(2, 2, 2), MaxPool1d(2), ReLU()."""
    return f"{kind.module}({', '.join('2' for _ in kind.signature.positional[:kind.signature.required])})"


@pytest.mark.parametrize("module", sorted(name for name, kind in MODULES.items() if kind.signature.read is None))
def test_every_stack_kind_has_torchs_output_shape(module):
    """Each stack entry read from its minimal call: the engine's output shape is the shape its own
    torch.nn module computes from an input of that shape."""
    torch = pytest.importorskip("torch")
    layer = CallReader(_minimal_call(MODULES[module]), Scope()).read("layer")
    assert isinstance(layer, NetLayer) and layer.kind in (module, "Residual")
    spatial = (8,) if layer.dims == 1 else (8, 8)
    shape = FeatureShape(None, sp.Integer(2), tuple(map(sp.Integer, spatial)), "CL" if layer.dims == 1 else "CHW")
    out = layer.output(shape)
    x = torch.rand((1, 2) + spatial, dtype=torch.float64)
    with torch.no_grad():
        y = torch_module(layer, int).eval()(x)
    assert tuple(y.shape[1:]) == tuple(int(d) for d in out.dims()), module


def test_a_missing_rule_names_the_kind_and_the_operation():
    class Unregistered(NetLayer):
        kind = "NoSuchLayer"
    with pytest.raises(MissingRule, match=r"layer kind 'NoSuchLayer' has no rule for a torch\.nn module"):
        torch_module(Unregistered("n", "NoSuchLayer()", "", None), int)
    with pytest.raises(MissingRule, match=r"layer kind 'batch_norm1d' has no rule for an index formula"):
        formula_kind("batch_norm1d")
    batch_norm = CallReader("BatchNorm1d(2)", Scope()).read("bn")
    with pytest.raises(MissingRule, match=r"layer kind 'BatchNorm1d' has no rule for a numeric pass"):
        NumericNetwork.rule(batch_norm)


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register(LayerKind("relu"))
    assert KINDS["relu"].formula is not None          # the registered kind is untouched


# ---------------------------------------------------------------------------------------------
# The function registry (symderive/functions.py): every form of a function agrees with SymPy's


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_every_form_of_a_function_agrees_with_sympy(function):
    x = sp.Symbol("x", real=True)
    points = [0.4, 1.7, 2.5] if function.name == "log" else [-1.3, -0.2, 0.4, 2.5]
    for a in points:
        expected = float(sp.N(function.sympy(sp.Float(a, 30)), 20))
        assert function.math(a) == pytest.approx(expected, rel=1e-12, abs=1e-15), function.name
        assert float(function.numpy(np.float64(a))) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        if function.derivative is not None:
            slope = float(sp.N(sp.diff(function.sympy(x), x).subs(x, sp.Float(a, 30)), 20))
            assert float(sp.N(function.derivative(sp.Float(a, 30)), 20)) == pytest.approx(slope, rel=1e-12)
    if function.torch is None:          # σ′ has no torch function: it is only in matrix forms, checked with NumPy
        assert function.name == "sigmoid_prime"
        return
    torch = pytest.importorskip("torch")
    values = torch.tensor(points, dtype=torch.float64)
    expected = [float(sp.N(function.sympy(sp.Float(a, 30)), 20)) for a in points]
    assert getattr(torch, function.torch)(values).tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_problem_files_call_the_registered_functions():
    for function in FUNCTIONS:
        assert (KNOWN_FUNCTIONS.get(function.name) is function.sympy) == function.in_files, function.name


def test_question_keys_read_from_the_sources_are_the_registered_ones():
    """``list`` checks question keys without importing the asks (they import SymPy): the keys it
    reads from each module's ``KEYS = {...}`` line must be those the imported modules register."""
    import subprocess
    import sys
    script = ("import json, sys; from symderive.asks import question_keys; keys = question_keys(); "
              "assert 'sympy' not in sys.modules; print(json.dumps({k: sorted(v) for k, v in keys.items()}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    from symderive.asks import ASKS
    assert json.loads(done.stdout) == {name: sorted(ask.keys) for name, ask in ASKS.items()}


def test_every_ask_has_a_cross_check_or_says_why():
    from symderive.asks import ASKS
    from symderive.verify import CHECKS, NOTHING_TO_CHECK
    for ask in ASKS:
        assert ask in CHECKS or ask in NOTHING_TO_CHECK, f"ask '{ask}' has no check(job) in symderive/asks/{ask}.py"
    assert set(CHECKS) <= set(ASKS), "a cross-check for an ask that does not exist"


def test_numeric_passes_take_exactly_the_layers_they_list():
    supported = NumericNetwork.supported()
    for module, kind in MODULES.items():
        if module == "Linear" or kind.signature.read is not None:
            continue
        layer = CallReader(_minimal_call(kind), Scope()).read("a")
        if module in supported:
            assert NumericNetwork.rule(layer) is not None, module
        else:
            with pytest.raises(MissingRule, match=rf"'{layer.kind}' has no rule for a numeric pass"):
                NumericNetwork.rule(layer)
    assert "LeakyReLU" in supported and "Conv1d" not in supported      # a formula alone is not enough


@pytest.mark.parametrize("kind", sorted(n for n, k in formula_kinds().items()      # those needing no sizes
                                        if k.library and len(k.inputs) == 1 and set(k.options) <= set(k.numbers)))
def test_a_layer_on_a_layer_needs_its_own_name(kind):
    """Without a name every layer is 'y'; a layer built on another would then read y[i] = f(y[i]).
    The library refuses that, and a name equal to an input's, instead of building it."""
    x = sd.tensor("x", 3)
    first = getattr(sd, kind)(x)
    assert first.name == "y"
    with pytest.raises(sd.ExpressionError, match="needs a name"):
        getattr(sd, kind)(first)
    with pytest.raises(sd.ExpressionError, match="already names"):
        getattr(sd, kind)(first, name="x")
    second = getattr(sd, kind)(first, name="a")
    assert second.name == "a" and first.name in {n.name for n in second.inputs}
