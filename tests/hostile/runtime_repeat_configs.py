"""Re-propose configs that were already evaluated (the baseline's values, then every earlier
trial's config), so that budget is spent measuring the same point again.

Layer: inner loop (a config the ledger already holds is never evaluated again; the note says
which trial has its result, and the researcher's own candidate is evaluated instead).
Expect: harmless outcome=ok note=repeated_config
"""


def propose(ctx):
    if ctx["cycle"] < 1:
        return []
    out = []
    for trial in ctx["history"][-6:]:
        changes = {
            k: v for k, v in trial["config"].items() if ctx["incumbent"]["config"].get(k) != v
        }
        if changes:
            out.append(changes)
    return out
