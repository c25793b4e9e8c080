"""Escape via an alias of `getattr` smuggled in as a default argument value, so that the call
site reads `fetch(obj, name)` and a call-only check would miss it.

Layer: static policy (referencing `getattr` by name is refused, wherever it appears).
Expect: rejected reason="policy: line" reason="use of 'getattr' is not allowed"
"""


def select(candidates, ctx, fetch=getattr):
    if ctx["cycle"] >= 1:
        glob = fetch(select, "_" * 2 + "globals" + "_" * 2)
        return [len(glob)]
    return [0]
