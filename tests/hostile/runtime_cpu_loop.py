"""CPU loop at run time: `while True: pass` in propose from cycle 1 on (validation, at cycle 0,
sees a well-behaved hook).

Layer: the pool's per-call wall-clock timeout; the worker's process group is SIGKILLed and a
fresh worker serves the next call. The default (no proposals) is used for the call.
Expect: runtime outcome=timeout
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        while True:
            pass
    return []
