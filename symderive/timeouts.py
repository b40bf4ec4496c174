"""A wall-clock limit for one question, so a pathological expression cannot hang a run.

Uses SIGALRM, which interrupts pure-Python work such as SymPy's; outside the
main thread (where signals cannot be set) the question runs without a limit.
"""
import contextlib
import signal
import threading

from .errors import QuestionTimeout


@contextlib.contextmanager
def time_limit(seconds):
    if not seconds or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise QuestionTimeout(f"no answer within the time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
