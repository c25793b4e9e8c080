"""Misbehaves from the first call: select returns out-of-range, negative and duplicate
indices, hoping the inner loop trusts the mechanism's indices.

Layer: validation's real calls on synthetic contexts (check_result on every reply).
Expect: rejected reason="select returned" reason="select indices must be integers"
"""


def select(candidates, ctx):
    return [len(candidates) + 5, -1, 0, 0]
