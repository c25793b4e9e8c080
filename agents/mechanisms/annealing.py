"""Simulated-annealing acceptance.

Hooks: accept.
A better ok trial is always kept. A worse (or equal) ok trial is kept with probability
exp(-rel_worsening / T), where rel_worsening is the relative change of the metric against the
incumbent and T = T0 * DECAY ** accepted_count (the count lives in memory), so the loop is
loose early and greedy later. Non-ok trials are never kept. Why it helps: strict greedy
acceptance traps the loop in the first basin the prior walks into; a few early sideways or
slightly worse steps let it cross ridges toward a better basin.
"""

import math
import random

T0 = 0.02  # initial temperature: a 2 % worsening is kept with probability 1/e
DECAY = 0.9  # temperature factor per accepted trial
T_MIN = 1e-9  # below this temperature acceptance is plain greedy


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def accept(trial, ctx):
    metric = trial.get("metric")
    if trial.get("status") != "ok" or not finite(metric):
        return False
    memory = ctx.get("memory") if isinstance(ctx.get("memory"), dict) else {}
    count = memory.get("accepted_count", 0)
    incumbent = (ctx.get("incumbent") or {}).get("metric")
    if not finite(incumbent):
        keep = True  # anything that ran beats an incumbent without a metric
    else:
        worse = (
            metric - incumbent
            if ctx.get("direction", "minimize") == "minimize"
            else (incumbent - metric)
        )
        if worse < 0:
            keep = True
        else:
            temperature = T0 * DECAY**count
            rel = worse / max(abs(incumbent), 1e-12)
            keep = temperature > T_MIN and random.random() < math.exp(-rel / temperature)
        memory["last_temperature"] = T0 * DECAY**count
    if keep:
        memory["accepted_count"] = count + 1
    return keep
