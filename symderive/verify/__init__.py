"""Cross-check derived answers against PyTorch autograd, at random float64 inputs.

For every question whose answer is a number, a shape, an element formula, a
Jacobian, a chain-rule gradient or a convolution / backward matrix, the same
computation is built in PyTorch (the torch op each layer kind registers under
``symderive/layers/``, differentiated with ``torch.autograd``), both sides are evaluated at the same
random inputs (seeded per question, reproducible), and the largest absolute and
relative differences are reported. Symbolic sizes are replaced by random small
sizes for which PyTorch accepts the layers. Layer stacks (``network:``) are
built from the torch.nn modules the kinds register; numeric passes are
redone by autograd and ``torch.optim.SGD``; a proved identity has both of its
sides computed in torch. One checker per ask, ``check(job)`` in the ask's own module
``asks/<ask>.py`` (``CHECKS``); an ask without one is reported as not checked, never
passed. ``job`` draws the sizes and values and builds the torch graph; ``formulas``,
``stacks`` and ``numeric`` hold helpers the checkers share; ``report`` is what comes back.

A cross-check is numerical agreement at random points: it never changes an
answer's status. Its report (``CrossCheck``) is stored on the answer as
``answer.cross_check``, printed on the sheet under the status line and in
``--json``.

    from symderive import load_problem
    from symderive.verify import cross_check
    problem = load_problem("problems/nyu-dl-2021-hw3.yaml")
    answers = problem.solve()
    for report in cross_check(problem, answers):
        print(report.question, report.outcome, report.max_rel)

torch is optional (``pip install 'symderive[verify]'``) and imported only when
a cross-check runs.
"""
from .registry import CHECKS, NOTHING_TO_CHECK
from .report import (AGREE, DISAGREE, FORMULA_DRAWS, INSTALL_HINT, MAX_ENTRIES, MAX_ROWS, NEAR_ZERO, NO_COUNTERPART,
                     NOT_CHECKED, NOTHING, SEED, SHAPE_DRAWS, TOLERANCE, CrossCheck, TorchMissing, report_lines,
                     require_torch)
from .run import cross_check

__all__ = ["cross_check", "CrossCheck", "report_lines", "require_torch", "TorchMissing", "CHECKS", "NOTHING_TO_CHECK",
           "AGREE", "DISAGREE", "NO_COUNTERPART", "NOT_CHECKED", "NOTHING", "TOLERANCE", "NEAR_ZERO",
           "MAX_ENTRIES", "MAX_ROWS", "SHAPE_DRAWS", "FORMULA_DRAWS", "SEED", "INSTALL_HINT"]
