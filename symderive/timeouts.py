"""A wall-clock limit for one question, so a pathological expression cannot hang a run.

Uses SIGALRM, which interrupts pure-Python work such as SymPy's. The alarm raises
``_Expired``, a ``BaseException``: SymPy has ``except Exception:`` blocks that would
swallow an ordinary exception and carry on computing (seen: a 2 s limit that ran 124 s).
The alarm also repeats every second until the block ends, in case one is swallowed
anyway. Outside the main thread (where signals cannot be set) there is no limit.
"""
import contextlib
import signal
import threading

from .errors import QuestionTimeout

#: Seconds allowed per checked answer (``check``); here, not in the grading modules, so that
#: the argument parser can show it without importing them.
CHECK_TIMEOUT = 20.0


class _Expired(BaseException):
    """Raised by the alarm; turned into ``QuestionTimeout`` where the limit was set."""


@contextlib.contextmanager
def time_limit(seconds):
    if not seconds or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise _Expired()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    except _Expired:
        raise QuestionTimeout(f"no answer within the time limit of {seconds:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
