"""Slow drip just over the timeout: every call from cycle 1 on counts for ~0.6 s (a bit more
than the 0.3 s limit) and then returns a valid, changed answer, hoping a late answer is still
read and used.

Layer: the pool's wall-clock timeout: the worker is killed before it answers; a late reply can
never be mistaken for the next call's (the worker is gone).
Expect: runtime outcome=timeout
"""


def spin(n):
    total = 0
    for i in range(n):
        total = total + i
    return total


def propose(ctx):
    if ctx["cycle"] >= 1:
        spin(24_000_000)
        return [{"lr": 0.0001}]
    return []
