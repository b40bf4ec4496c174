"""Which function cross-checks which ask: each ask's own module defines ``check(job)``
(or says why there is nothing to compare, ``NOTHING_TO_CHECK``), so adding an ask is one file."""
from ..asks import ASKS

#: ask -> its cross-check, the ``check`` function of ``asks/<ask>.py``.
CHECKS = {name: ask.check for name, ask in ASKS.items() if ask.check is not None}

#: ask -> why it has nothing to compare numerically (``NOTHING_TO_CHECK`` of its module).
NOTHING_TO_CHECK = {name: ask.nothing_to_check for name, ask in ASKS.items() if ask.nothing_to_check}
