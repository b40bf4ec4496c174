"""The wheel: built once, installed into one fresh venv, used from a folder without problems/.

Then omegaconf 2.3 (which pins antlr 4.9) is installed beside it: pip check stays clean
and problem files' LaTeX is still read. Packages come from pip's cache or the configured
index; the fresh venv does not get torch. Skipped when the wheel cannot be built or
installed offline-like (no index reachable).
"""
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "problems").glob("*.yaml"))


def run(cmd, cwd=None, check=True):
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and done.returncode:
        raise AssertionError(f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", base / "dist", ROOT])
    wheel = next((base / "dist").glob("symderive-*.whl"))
    venv.create(base / "venv", with_pip=True)
    bin_ = base / "venv" / "bin"
    installed = run([bin_ / "pip", "install", "-q", wheel], check=False)
    if installed.returncode:
        pytest.skip(f"cannot install the wheel's dependencies here: {installed.stderr[-300:]}")
    work = base / "elsewhere"
    work.mkdir()
    return bin_, work


def test_wheel_solves_the_bundled_examples_from_any_folder(env):
    bin_, work = env
    done = run([bin_ / "symderive", "--no-pdf"], cwd=work)
    assert "bundled examples" in done.stderr
    assert sorted(p.stem for p in (work / "output").glob("*.tex")) == [n[:-5] for n in EXAMPLES]
    assert run([bin_ / "symderive", "--version"], cwd=work).stdout.strip() == "symderive 0.1.0"
    assert "usage: symderive" in run([bin_ / "symderive", "--help"], cwd=work).stdout
    run([bin_ / "symderive", "examples", "mine"], cwd=work)
    assert sorted(os.listdir(work / "mine")) == EXAMPLES
    assert run([bin_ / "symderive", "examples", "mine"], cwd=work, check=False).returncode == 2  # never overwrites


READ_BOTH = ("from sympy.parsing.latex import parse_latex as sympy_latex\n"
             "from symderive.expressions import Scope\nfrom symderive.latex_input import parse_latex\n"
             "print(sympy_latex(r'\\frac{a}{b}'), parse_latex(r'$-\\ln \\frac{1}{4}$', Scope()))")


def test_sympy_parse_latex_works_beside_symderive(env):
    """SymPy's parse_latex needs antlr 4.11 exactly; symderive's reader accepts 4.9.3 to 4.13."""
    bin_, work = env
    run([bin_ / "pip", "install", "-q", "antlr4-python3-runtime==4.11.0"])
    assert run([bin_ / "pip", "check"]).stdout.strip() == "No broken requirements found."
    assert run([bin_ / "python", "-c", READ_BOTH], cwd=work).stdout.split() == ["a/b", "log(4)"]


def test_omegaconf_installs_beside_and_pip_check_is_clean(env):
    bin_, work = env
    run([bin_ / "pip", "install", "-q", "omegaconf==2.3.0"])
    assert run([bin_ / "pip", "check"]).stdout.strip() == "No broken requirements found."
    code = ("import omegaconf, antlr4\n"
            "from symderive.expressions import Scope\nfrom symderive.latex_input import parse_latex\n"
            "print(omegaconf.OmegaConf.create({'a': 1}).a, parse_latex(r'$-\\ln \\frac{1}{4}$', Scope()))")
    assert run([bin_ / "python", "-c", code], cwd=work).stdout.split() == ["1", "log(4)"]
