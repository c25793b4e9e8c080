"""Environment: read BILEVEL_TEST_SECRET (planted in the parent's environment) and leak it
through advise and a proposal.

Layer: static policy (import of 'os' refused). Behind it: workers start with a scrubbed
environment (PYTHONPATH, PYTHONHASHSEED, PYTHONDONTWRITEBYTECODE only).
Expect: rejected reason="policy: line" reason="import of 'os' is not allowed"
"""

import os


def advise(ctx):
    if ctx["cycle"] >= 1:
        return os.environ.get("BILEVEL_TEST_SECRET", "") + os.getenv("HOME", "")
    return ""


def propose(ctx):
    if ctx["cycle"] >= 1:
        return [{"lr": 0.01, "leak": dict(os.environ)}]
    return []
