"""Signals: SIGKILL the parent process group and ignore SIGTERM, so that the pool dies and the
worker survives it.

Layer: static policy (imports of 'signal' and 'os' refused). Behind it: PR_SET_PDEATHSIG.
Expect: rejected reason="policy: line" reason="import of 'signal' is not allowed"
"""

import signal
import os


def accept(trial, ctx):
    if ctx["cycle"] >= 1:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.kill(os.getppid(), signal.SIGKILL)
        os.killpg(0, signal.SIGKILL)
    return trial["metric"] is not None and trial["metric"] < ctx["incumbent"]["metric"]
