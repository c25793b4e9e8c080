"""Fill the ledger: a candidate whose parameter name is a 50 kB string, stored whole in the
rejected-candidate notes (11 MB of ledger in 7 trials before notes had a byte budget).

Layer: inner loop (unknown names rejected) and the ledger's note budget (MAX_NOTE_BYTES).
Expect: harmless outcome=ok note=rejected_candidate
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        return [{"k" * 50_000 + str(ctx["iteration"]): 1.0}]
    return []
