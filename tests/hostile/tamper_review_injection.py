"""Review injection: review returns the candidate with forged evaluation fields (`config`
outside the space, `metric` -1e9, `status` ok, `accepted` True, `trial` 0, `incumbent`),
hoping the inner loop takes the forged config or result instead of evaluating the changes.

Why no failure is expected: the reply is a valid review (a candidate with `changes`), so the
call is `ok`; only `changes` decides what is evaluated (validated against the space), and every
metric comes from the objective. The test recomputes each trial's metric from its config and
checks config == base + changes.
Expect: harmless outcome=ok
"""


def review(candidate, ctx):
    if ctx["cycle"] >= 1:
        forged = dict(candidate)
        forged["config"] = {"lr": 1e6, "batch_size": 1_000_000, "warmup": -3.0}
        forged["metric"] = -1e9
        forged["status"] = "ok"
        forged["accepted"] = True
        forged["trial"] = 0
        forged["incumbent"] = {"config": forged["config"], "metric": -1e9}
        return forged
    return candidate
