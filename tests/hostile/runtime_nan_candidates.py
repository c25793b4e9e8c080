"""NaN and infinities: proposals with lr = nan / inf / -inf (NaN compares false with every
bound, so a naive range check would let it through to the objective).

Layer: the contract's result check (JSON scalars must be finite): bad_type, default used.
Expect: runtime outcome=bad_type error="non-finite|JSON scalars"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        nan = float("nan")
        inf = float("inf")
        return [{"lr": nan}, {"batch_size": inf}, {"warmup": -inf}]
    return []
