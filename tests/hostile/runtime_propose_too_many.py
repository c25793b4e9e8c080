"""Flooding the evaluator: 17 proposals (one over the contract's maximum), each a full config,
hoping to spend the budget on the mechanism's candidates.

Layer: the contract's result check (at most 16): bad_type, no proposals used.
Expect: runtime outcome=bad_type error="at most 16"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        return [{"lr": 0.001 * (i + 1)} for i in range(17)]
    return []
