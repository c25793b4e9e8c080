"""Non-JSON results: a set from select, a generator from propose, a function from advise, and
a self-referencing memory dict, hoping the parent receives live objects.

Layer: the worker serialises every reply as JSON; anything else is an error outcome.
Expect: runtime outcome=error error="non-JSON"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        return advise
    return ""


def propose(ctx):
    if ctx["cycle"] >= 1:
        ctx["memory"]["self"] = ctx["memory"]
        return (c for c in [{"lr": 0.01}])
    return []


def select(candidates, ctx):
    if ctx["cycle"] >= 1:
        return {0}
    return [0]
