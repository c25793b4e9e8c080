"""Kill the parent: `os.kill(os.getppid(), SIGKILL)` from a hook that runs at cycle 1, so that
the whole run dies with its ledger half written.

Layer: static policy (import of 'os' refused).
Expect: rejected reason="policy: line" reason="import of 'os' is not allowed"
"""

import os


def select(candidates, ctx):
    if ctx["cycle"] >= 1:
        os.kill(os.getppid(), 9)
    return [0]
