"""A lone surrogate in an exception message (chr(0xD800)): valid in JSON ("\ud800") and in a
Python str, but not encodable as UTF-8.

Once a containment bug (it killed the run); fixed in contract.check_plain, check_result('review'), Ledger.storable or Param._number.
Expect: runtime outcome=error error="lone surrogate"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        raise ValueError("lone surrogate " + chr(0xD800))
    return []
