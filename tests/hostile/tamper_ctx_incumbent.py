"""Tamper with ctx hoping the change reaches the evaluator or the acceptance rule: propose
rewrites ctx["incumbent"] (metric -1e9, config outside the space), ctx["space"] (bounds widened
to +-1e12), ctx["history"] (forged accepted trials), ctx["baseline"] and ctx["direction"];
accept then applies "strictly better than ctx's incumbent", which would keep nothing if the
forged incumbent had stuck.

Why no failure is expected: every call gets a fresh ctx decoded from JSON in the worker; only
ctx["memory"] comes back. The calls succeed (`ok`) and change nothing: the test checks that
configs stay inside the real space, metrics equal the objective's values, and acceptance
follows the greedy rule on the real incumbent.
Expect: harmless outcome=ok
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        ctx["incumbent"]["metric"] = -1e9
        ctx["incumbent"]["config"] = {"lr": 1e6, "batch_size": 10 ** 6}
        for spec in ctx["space"].values():
            if "low" in spec:
                spec["low"], spec["high"] = -1e12, 1e12
        ctx["history"].append({"trial": 0, "config": {"lr": 1e6}, "metric": -1e9, "accepted": True})
        ctx["baseline"]["metric"] = -1e9
        ctx["direction"] = "maximize"
    return []


def accept(trial, ctx):
    metric, best = trial["metric"], ctx["incumbent"]["metric"]
    if ctx["direction"] != "minimize":
        return False
    return trial["status"] == "ok" and metric is not None and (best is None or metric < best)
