"""Settings for the whole test session.

The disk cache of solved answers (symderive/checking/answer_cache.py) is off: a test that solves must
run the engine, and a test that patches the engine must not leave its answers on disk for a later run to
read. A test of the cache turns it on itself (deleting SYMDERIVE_NO_CACHE); what it writes goes to a
folder of this session, removed at the end, never to the user's own cache.

The engine's in-memory memos (SymPy's cache, which ``cacheit`` memos share, and the engine's own
``functools`` caches) are emptied before and after every test that patches something: a memo filled
before the patch would hide it (the patched rule is never called), and one filled under the patch would
give later tests its results.
"""
import os
import shutil
import sys
import tempfile

import pytest

_FOLDER = None


def pytest_configure(config):
    global _FOLDER
    _FOLDER = tempfile.mkdtemp(prefix="symderive-test-cache-")
    os.environ["SYMDERIVE_NO_CACHE"] = "1"
    os.environ["SYMDERIVE_CACHE_DIR"] = os.path.join(_FOLDER, "answers")


def pytest_unconfigure(config):
    if _FOLDER:
        shutil.rmtree(_FOLDER, ignore_errors=True)


def _clear_memos():
    from sympy.core.cache import clear_cache
    clear_cache()
    for name, module in list(sys.modules.items()):
        if name == "symderive" or name.startswith("symderive."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


@pytest.fixture(autouse=True)
def _memos_apart_from_patches(request):
    patches = "monkeypatch" in request.fixturenames
    if patches:
        _clear_memos()
    yield
    if patches:
        _clear_memos()
