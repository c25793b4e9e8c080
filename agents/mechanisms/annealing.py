"""Simulated-annealing acceptance, scaled by the metric's observed spread.

Hooks: accept.
A better ok trial is always kept. A worse (or equal) ok trial is kept with probability
exp(-worsening / (T x spread)), where spread is the standard deviation of the last WINDOW ok
metrics (so the temperature means the same on any objective, whatever the metric's magnitude)
and T = T0 * DECAY ** kept_worse (the count lives in memory): loose early, greedy later, and at
most MAX_WORSE worse trials kept in a run. Non-ok trials are never kept. Why it helps: strict
greedy acceptance traps the loop in the first basin the researcher walks into; a few sideways or
slightly worse steps, small against what the trials have shown, let it cross ridges.
"""

import math
import random

T0 = 0.1  # a worsening of 0.1 spread is kept with probability 1/e at first
DECAY = 0.7  # temperature factor per worse trial kept
WINDOW = 20  # recent ok metrics whose standard deviation is the spread
MIN_SPREAD_TRIALS = 4  # fewer ok trials than this: no spread yet, greedy
MAX_WORSE = 6  # worse trials kept in a whole run


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def spread(ctx):
    metrics = [
        t.get("metric")
        for t in (ctx.get("history") or [])
        if t.get("status") == "ok" and finite(t.get("metric"))
    ][-WINDOW:]
    if len(metrics) < MIN_SPREAD_TRIALS:
        return 0.0
    mean = sum(metrics) / len(metrics)
    return math.sqrt(sum((m - mean) ** 2 for m in metrics) / (len(metrics) - 1))


def accept(trial, ctx):
    metric = trial.get("metric")
    if trial.get("status") != "ok" or not finite(metric):
        return False
    memory = ctx.get("memory") if isinstance(ctx.get("memory"), dict) else {}
    incumbent = (ctx.get("incumbent") or {}).get("metric")
    if not finite(incumbent):
        return True  # anything that ran beats an incumbent without a metric
    sign = 1.0 if ctx.get("direction", "minimize") == "minimize" else -1.0
    worse = sign * (metric - incumbent)
    if worse < 0:
        return True
    kept = memory.get("kept_worse", 0)
    scale = spread(ctx)
    temperature = T0 * DECAY**kept
    memory["last_temperature"] = temperature
    if kept >= MAX_WORSE or scale <= 0 or worse == 0:
        return False
    keep = random.random() < math.exp(-worse / (temperature * scale))
    if keep:
        memory["kept_worse"] = kept + 1
    return keep
