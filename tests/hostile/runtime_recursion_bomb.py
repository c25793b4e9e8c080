"""Recursion bomb at run time: unbounded mutual recursion in accept from cycle 1 on.

Layer: the interpreter's recursion limit inside the worker (RecursionError -> error outcome);
the default acceptance rule decides.
Expect: runtime outcome=error error="RecursionError"
"""


def ping(n):
    return pong(n + 1)


def pong(n):
    return ping(n + 1)


def accept(trial, ctx):
    if ctx["cycle"] >= 1:
        return ping(0)
    metric, best = trial["metric"], ctx["incumbent"]["metric"]
    return metric is not None and (best is None or metric < best)
