"""Deep nesting in ctx["memory"]: a list nested 300 levels -- shallow enough for json, deeper
than the checkpoint serializer allows.

Once a containment bug (it killed the run); fixed in contract.check_plain, check_result('review'), Ledger.storable or Param._number.
Expect: runtime outcome=bad_type error="nested deeper"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        nest = []
        for _ in range(300):
            nest = [nest]
        ctx["memory"]["deep"] = nest
    return []
