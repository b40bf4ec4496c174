"""Settings for the whole test session.

The disk cache of solved answers (symderive/checking/answer_cache.py) is off: a test that solves must
run the engine, and a test that patches the engine must not leave its answers on disk for a later run to
read. A test of the cache turns it on itself (deleting SYMDERIVE_NO_CACHE); what it writes goes to a
folder of this session, removed at the end, never to the user's own cache.
"""
import os
import shutil
import tempfile

_FOLDER = None


def pytest_configure(config):
    global _FOLDER
    _FOLDER = tempfile.mkdtemp(prefix="symderive-test-cache-")
    os.environ["SYMDERIVE_NO_CACHE"] = "1"
    os.environ["SYMDERIVE_CACHE_DIR"] = os.path.join(_FOLDER, "answers")


def pytest_unconfigure(config):
    if _FOLDER:
        shutil.rmtree(_FOLDER, ignore_errors=True)
