"""A huge integer in a proposal: batch_size = 10**400 (valid JSON, under Python's 4300-digit
limit), hoping to crash the parent when it range-checks the candidate.

Once a containment bug (it killed the run); fixed in contract.check_plain, check_result('review'), Ledger.storable or Param._number.
Expect: runtime outcome=bad_type error="64 bits"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        return [{"batch_size": 10 ** 400}, {"lr": 10 ** 400}]
    return []
