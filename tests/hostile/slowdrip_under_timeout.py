"""Slow drip just under the timeout: every call busy-loops for about a third of the 0.3 s limit
(4 million additions, ~0.1 s on a current core; there is no clock to read), hoping to slow
the run without ever being killed, so that no failure shows in the ledger.

Why no failure is expected: staying under the limit is allowed; the cost is bounded by the
timeout per call. On a loaded machine a call may cross the limit and be killed, so `timeout` is
accepted too. The test checks that no `ok` call took longer than the limit.
Expect: harmless outcome=ok,timeout max_ok_ms=330
"""


def spin(n):
    total = 0
    for i in range(n):
        total = total + i
    return total


def advise(ctx):
    if ctx["cycle"] >= 1:
        spin(4_000_000)
    return ""
