"""Which function cross-checks which ask: each checker registers itself with ``@checks``."""



#: ask -> its cross-check, filled in by the ``@checks("<ask>")`` decorators of this package's modules.
CHECKS = {}

#: ask -> why it has nothing to compare numerically.
NOTHING_TO_CHECK = {
    "text": "authored text",
}


def checks(ask):
    """Register the decorated function as the cross-check of ``ask``."""
    def register(function):
        if ask in CHECKS:
            raise ValueError(f"ask '{ask}' has two cross-checks")
        CHECKS[ask] = function
        return function
    return register
