"""An integer beyond 64 bits in ctx["memory"] (10**100): valid JSON, accepted by the pool,
stored in graph state.

Once a containment bug (it killed the run); fixed in contract.check_plain, check_result('review'), Ledger.storable or Param._number.
Expect: runtime outcome=bad_type error="64 bits"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        ctx["memory"]["big"] = 10 ** 100
    return []
