"""Huge return value at run time: 16 proposals of 5 MB each (80 MB of JSON), hoping to exhaust
the parent's memory or stall its reader.

Layer: the pool's reply size limit: the reader stops at 1 MB, the worker is killed (too_large).
Expect: runtime outcome=too_large
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        block = "9" * 5_000_000
        return [{"lr": 0.01, "pad": block} for _ in range(16)]
    return []
