"""Review overrides the candidate's bookkeeping fields: `source` set to None (cycle 1) or to a
dict, hoping to corrupt the ledger row written for the trial.

Once a containment bug (it killed the run); fixed in contract.check_plain, check_result('review'), Ledger.storable or Param._number.
Expect: harmless outcome=ok unchanged
"""


def review(candidate, ctx):
    if ctx["cycle"] >= 1:
        source = None if ctx["iteration"] % 2 == 0 else {"forged": [1]}
        return {"changes": candidate["changes"], "source": source, "hypothesis": 7}
    return candidate
