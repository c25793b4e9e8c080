"""A lone surrogate in ctx["memory"] (as key and value): fine for json, not for UTF-8.

Once a containment bug (it killed the run); fixed in contract.check_plain, check_result('review'), Ledger.storable or Param._number.
Expect: runtime outcome=bad_type error="UTF-8"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        ctx["memory"]["k" + chr(0xDC00)] = chr(0xD800)
    return []
