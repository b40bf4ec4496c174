"""The entry point: each answer's cross-check, with its seed, time limit and errors reported."""
import time
import zlib

import numpy as np

from ..answer import Status
from ..errors import QuestionTimeout, SymderiveError
from ..torch_ops import VerifyError
from ..declared_values import check_at_values
from .job import Job
from .registry import CHECKS, NOTHING_TO_CHECK
from .report import CrossCheck, NOTHING, NOT_CHECKED, SEED, require_torch


def cross_check(problem, answers, seed=SEED, timeout=None):
    """Cross-check each answer of ``problem`` (as returned by ``problem.solve()``) with PyTorch.

    Sets ``answer.cross_check`` on each and returns the reports in the same order.
    Raises ``TorchMissing`` when torch is not installed.
    """
    torch = require_torch()
    from ..timeouts import time_limit
    reports = []
    for answer in answers:
        start = time.perf_counter()
        question_seed = (seed + zlib.crc32(f"{problem.name}/{answer.question_id}".encode())) % 2**32
        try:
            question = problem.question(answer.question_id)
        except KeyError:
            question = None
        try:
            with time_limit(timeout):
                report = _check(problem, question, answer, question_seed)
        except VerifyError as exc:
            report = CrossCheck(answer.question_id, NOT_CHECKED, reason=str(exc))
        except QuestionTimeout:
            report = CrossCheck(answer.question_id, NOT_CHECKED,
                                reason=f"the cross-check took longer than the time limit of {timeout:g} s")
        except SymderiveError as exc:
            report = CrossCheck(answer.question_id, NOT_CHECKED, reason=f"could not rebuild the question: {exc}")
        except Exception as exc:     # a bug in the verifier must not stop the run
            report = CrossCheck(answer.question_id, NOT_CHECKED,
                                reason=f"internal error in the cross-check: {type(exc).__name__}: {exc}")
        report.seed = question_seed
        report.seconds = time.perf_counter() - start
        report.torch_version = torch.__version__.split("+")[0]
        answer.cross_check = report
        reports.append(report)
    return reports


def _check(problem, question, answer, seed):
    if question is None:
        return CrossCheck(answer.question_id, NOT_CHECKED, reason="the question is not in the problem file")
    if answer.status is Status.FAILED:
        return CrossCheck(answer.question_id, NOTHING, reason="the question failed, so there is no answer")
    if question.ask in NOTHING_TO_CHECK:
        return CrossCheck(answer.question_id, NOTHING, reason=NOTHING_TO_CHECK[question.ask])
    checker = CHECKS.get(question.ask)
    if checker is None:
        return CrossCheck(answer.question_id, NOT_CHECKED,
                          reason=f"no cross-check is written for ask '{question.ask}' "
                                 "(a function check(job) in symderive/asks/<ask>.py)")
    job = Job(problem, question, answer, np.random.default_rng(seed))
    check_at_values(job)
    try:
        checker(job)
    except VerifyError as exc:
        if not job.entries:
            raise
        job.compared.append(f"(the ask's own check at random values could not run: {exc})")
    return job.report()
