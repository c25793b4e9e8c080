"""Deeply nested return value: a list nested 100,000 levels, hoping to overflow the parent's
JSON decoder or any recursive code that walks the result.

Layer: the worker's JSON encoder refuses it (RecursionError -> "returned non-JSON value"), so
nothing deep ever leaves the worker.
Expect: runtime outcome=error error="non-JSON"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        nest = []
        for _ in range(100_000):
            nest = [nest]
        return nest
    return []
