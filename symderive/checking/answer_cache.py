"""A disk cache of the engine's answers, so that grading the same problem file again (the next batch of
submissions, a re-run after a fix to one answer file) or solving it again (``solve`` on unchanged files)
does not solve its questions again.

Key: SHA-256 of the problem file's bytes, the question id, symderive's version and a digest of the
engine's own source files (a changed rule invalidates every entry, even without a version bump), and the
SymPy and Python versions (pickles are not portable across them). A changed problem file has a new key;
old entries are evicted by the bounds below, oldest first.

Why pickle, and why it is safe here: the cached value is an ``Answer`` holding SymPy expressions
(indexed sums, piecewise, dummies). Writing them as JSON would need a SymPy reader for the way back,
and ``sympify``/``parse_expr`` evaluate Python, which we refuse for anything read from disk; a pickle
restores them (not always node for node: an unevaluated product such as ``ceiling((p - 1)/2)`` comes
back evaluated, ``ceiling(p/2 - 1/2)``; the sheets and JSON print both alike). An answer is stored
as it was pickled, its SymPy values packed (``Answer.PACKED``) until they are read. A pickle is only
unpickled when it is authenticated as written by this cache:

* the folder is ours: created 0700, owned by the current user and not writable by group or others
  (otherwise the cache is not used and a warning says why);
* every entry carries an HMAC-SHA256 over its bytes, keyed by a random secret created with the cache
  (``key``, mode 0600); an entry whose tag does not verify (tampered, truncated, from another cache)
  is deleted and the question is solved again.

Whoever can read the secret can already write to the user's files, so this adds no new trust. The
answers of the questions that failed (a time limit, say) are not cached: they may succeed next time.

Bounds: at most ``MAX_ENTRIES`` files and ``MAX_BYTES`` in total, an entry at most ``MAX_ENTRY_BYTES``.
``--no-cache`` (or ``SYMDERIVE_NO_CACHE=1``) turns it off; ``SYMDERIVE_CACHE_DIR`` moves it (default
``$XDG_CACHE_HOME/symderive/answers``, else ``~/.cache/symderive/answers``).
"""
import hashlib
import hmac
import os
import pickle
import secrets
import stat
import sys
from pathlib import Path

MAX_ENTRIES = 2000
MAX_BYTES = 200 * 2 ** 20
MAX_ENTRY_BYTES = 20 * 2 ** 20
TAG = 32
_ENGINE_DIGEST = None


def default_folder():
    if os.environ.get("SYMDERIVE_CACHE_DIR"):
        return Path(os.environ["SYMDERIVE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "symderive" / "answers"


def engine_digest():
    """SHA-256 of the engine's source files (symderive/**/*.py), computed once per process."""
    global _ENGINE_DIGEST
    if _ENGINE_DIGEST is None:
        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        _ENGINE_DIGEST = h.hexdigest()
    return _ENGINE_DIGEST


def run_cache(problem, turned_off, errors):
    """The answer cache of ``problem`` for one run of ``check`` or ``solve`` (None with ``--no-cache``,
    ``turned_off``, or ``SYMDERIVE_NO_CACHE``); a folder that cannot be used safely is one warning line
    on ``errors`` (a rich console), and the run goes on without it."""
    if turned_off or os.environ.get("SYMDERIVE_NO_CACHE"):
        return None
    cache = AnswerCache(problem.path)
    if not cache.enabled:
        errors.print(f"warning: {cache.problem}; solving the questions without it", markup=False)
        return None
    return cache


class AnswerCache:
    """``get(question_id)`` / ``put(question_id, answer)`` for one problem file. ``hits``, ``misses``
    and ``problem`` (why the cache is off, if it is) are kept for the report."""

    def __init__(self, problem_path, folder=None):
        import sympy
        from .. import __version__
        self.hits = self.misses = 0
        self.problem = None
        self._entries = None       # (mtime, bytes, path) of the folder's entries, newest first, once read
        self.folder = Path(folder) if folder is not None else default_folder()
        try:
            data = Path(problem_path).read_bytes()
        except OSError as exc:
            self.folder, self.problem = None, f"cannot read {problem_path}: {exc.strerror}"
            return
        self.file_hash = hashlib.sha256(data).hexdigest()
        self.version = "\0".join([__version__, engine_digest(), sympy.__version__, sys.version.split()[0]])
        try:
            self.secret = self._open_folder()
        except OSError as exc:
            self.folder, self.problem = None, f"answer cache off: {exc}"

    def _open_folder(self):
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.folder.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise OSError(f"{self.folder} is not a private folder of this user")
        key = self.folder / "key"
        try:
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        kinfo = key.lstat()
        if not stat.S_ISREG(kinfo.st_mode) or kinfo.st_uid != os.getuid() or kinfo.st_mode & 0o077:
            raise OSError(f"{key} is not a private file of this user")
        secret = key.read_bytes()
        if len(secret) != 32:
            raise OSError(f"{key} is not a cache key")
        return secret

    @property
    def enabled(self):
        return self.folder is not None

    def _path(self, qid):
        name = hashlib.sha256(f"{self.file_hash}\0{qid}\0{self.version}".encode()).hexdigest()
        return self.folder / f"{name}.answer"

    def get(self, qid):
        """The cached Answer to ``qid``, or None (missing, from another file or engine, or not authentic)."""
        if not self.enabled:
            return None
        path = self._path(qid)
        try:
            if path.stat().st_size > MAX_ENTRY_BYTES + TAG:
                raise ValueError
            blob = path.read_bytes()
        except (OSError, ValueError):
            self.misses += 1
            return None
        tag, payload = blob[:TAG], blob[TAG:]
        if not hmac.compare_digest(tag, hmac.new(self.secret, payload, hashlib.sha256).digest()):
            path.unlink(missing_ok=True)          # tampered or truncated: solve again
            self.misses += 1
            return None
        try:
            # authenticated above: bytes this cache wrote. The answer's SymPy values stay packed until they
            # are read (``Answer.PACKED``), and its Dummy symbols are kept apart from this process's
            answer = pickle.loads(payload)
        except Exception:
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        try:
            os.utime(path)                        # recently used: evicted last
        except OSError:
            pass
        return answer

    def put(self, qid, answer):
        """Store ``answer`` (an Answer that did not fail); an answer that cannot be pickled is not cached."""
        if not self.enabled:
            return
        from ..answer import Status
        if answer.status is Status.FAILED:
            return
        try:
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return
        if len(payload) > MAX_ENTRY_BYTES:
            return
        path = self._path(qid)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(hmac.new(self.secret, payload, hashlib.sha256).digest() + payload)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return
        if self._entries is None:
            self._evict()
        else:      # the folder was read at this cache's first store: the new entry is the newest
            self._entries = [e for e in self._entries if e[2] != path]
            self._entries.insert(0, (0.0, TAG + len(payload), path))
            self._trim()

    def _evict(self):
        """Delete the oldest entries beyond MAX_ENTRIES files or MAX_BYTES in total. The folder is read
        once (19 ms at 2000 entries, which once per store made a cold ``solve`` of 185 questions 3.5 s
        slower); later stores of this cache update the list it read (other processes' stores are
        counted at the next cache's first store)."""
        entries = []
        for p in self.folder.glob("*.answer"):
            try:
                s = p.stat()
            except OSError:
                continue
            entries.append((s.st_mtime, s.st_size, p))
        entries.sort(key=lambda e: e[0], reverse=True)
        self._entries = entries
        self._trim()

    def _trim(self):
        total = 0
        for k, (_, size, p) in enumerate(self._entries):
            total += size
            if k >= MAX_ENTRIES or total > MAX_BYTES:
                for _, _, old in self._entries[k:]:
                    old.unlink(missing_ok=True)
                del self._entries[k:]
                return

