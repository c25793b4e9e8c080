"""`sys.modules`: every module the worker has loaded, including os and the sandbox's own
policy module, whose allow-list the attack tries to widen for later mechanisms.

Layer: static policy (import of 'sys' refused).
Expect: rejected reason="policy: line" reason="import of 'sys' is not allowed"
"""

import sys


def advise(ctx):
    if ctx["cycle"] >= 1:
        policy = sys.modules["bilevel.sandbox.policy"]
        policy.ALLOWED_MODULES = frozenset({"os", "sys"})
        return sys.modules["os"].environ.get("BILEVEL_TEST_SECRET", "")
    return ""
