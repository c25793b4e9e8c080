"""Orthogonal-array design of experiments around the incumbent.

Hooks: propose.
Takes the FACTORS least-explored non-frozen parameters, gives each two levels (a down and an up
neighbour of the incumbent; for a categorical, the current value and another choice) and walks a
two-level Plackett-Burman array (L4, L8 or L12), ROWS_PER_CALL rows per call, keeping its place
in memory. When all rows are out, it proposes once the combination that the main effects of the
evaluated rows favour, then starts a new design; a new incumbent restarts it. Why it helps: the
prior moves one familiar parameter at a time; an array measures many neglected ones at once.
"""

import math
import random

FACTORS = 7  # parameters per design (at most 11)
ROWS_PER_CALL = 1  # design rows proposed per call (more only pays with parallel evaluations)
LEVEL_STEP = "far"  # "far": the /2 and x2 neighbours; "near": the closest ones below / above
WAIT_CALLS = 3  # calls to wait for the rows' results before abandoning a design


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def same(a, b):
    if a == b:
        return True
    return finite(a) and finite(b) and abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def full_config(ctx):
    config = {}
    for name, spec in (ctx.get("space") or {}).items():
        config[name] = spec.get("default")
    config.update((ctx.get("incumbent") or {}).get("config") or {})
    return config


def array(factors):
    """Rows of '+'/'-' strings: cyclic shifts of a Plackett-Burman generator plus a '-' row."""
    gen = "++-" if factors <= 3 else ("+++-+--" if factors <= 7 else "++-+++---+-")
    n = len(gen)
    rows = ["".join([gen[(j - r) % n] for j in range(factors)]) for r in range(n)]
    return rows + ["-" * factors]


def levels(name, current, values, spec):
    if spec.get("type") == "categorical" or not finite(current):
        return [current, random.choice(values)]
    below = [v for v in values if finite(v) and v < current]
    above = [v for v in values if finite(v) and v > current]
    far = LEVEL_STEP == "far"
    low = (min(below) if far else max(below)) if below else current
    high = (max(above) if far else min(above)) if above else current
    return [low, high]


def new_design(ctx, key):
    space = ctx.get("space") or {}
    neighbors = ctx.get("neighbors") or {}
    history = ctx.get("history") or []
    counts = {}
    for trial in history:
        for name in trial.get("changes") or {}:
            counts[name] = counts.get(name, 0) + 1
    order = []
    for i, name in enumerate(space):
        if name not in (ctx.get("frozen") or []) and neighbors.get(name):
            order.append([counts.get(name, 0), -i, name])  # least explored, then last listed
    order.sort()
    factors = [item[2] for item in order[: max(2, min(FACTORS, 11))]]
    if len(factors) < 2:
        return None
    config = full_config(ctx)
    lv = {}
    for name in factors:
        lv[name] = levels(name, config.get(name), neighbors[name], space[name])
    return {
        "key": key,
        "factors": factors,
        "levels": lv,
        "rows": array(len(factors)),
        "next": 0,
        "start": history[-1].get("trial", -1) if history else -1,
        "waits": 0,
    }


def row_changes(design, row, config):
    changes = {}
    for j, name in enumerate(design["factors"]):
        value = design["levels"][name][1 if row[j] == "+" else 0]
        if not same(value, config.get(name)):
            changes[name] = value
    return changes


def best_combination(ctx, design, config):
    """Main effects of the evaluated rows -> the better level of each factor, or None."""
    sign = 1.0 if ctx.get("direction", "minimize") == "minimize" else -1.0
    later = [t for t in ctx.get("history") or [] if t.get("trial", 1e18) > design["start"]]
    ok = [t for t in later if t.get("status") == "ok" and finite(t.get("metric"))]
    results = []
    for row in design["rows"]:
        target = dict(config)
        target.update(row_changes(design, row, config))
        for trial in ok:
            old = trial.get("config") or {}
            if not [k for k in target if not same(old.get(k), target[k])]:
                results.append([row, sign * trial.get("metric")])
                break
    if len(results) < 2:
        return None
    combo = {}  # lower signed metric is better
    for j, name in enumerate(design["factors"]):
        plus = [r[1] for r in results if r[0][j] == "+"]
        minus = [r[1] for r in results if r[0][j] == "-"]
        if plus and minus:
            pick = 1 if sum(plus) / len(plus) < sum(minus) / len(minus) else 0
            value = design["levels"][name][pick]
            if not same(value, config.get(name)):
                combo[name] = value
    for r in results:
        if row_changes(design, r[0], config) == combo:
            return {}  # the favoured combination was itself a row: nothing new to try
    return combo


def propose(ctx):
    memory = ctx.get("memory") if isinstance(ctx.get("memory"), dict) else {}
    config = full_config(ctx)
    key = "|".join([k + "=" + str(config[k]) for k in sorted(config)])
    design = memory.get("design")
    if not design or design.get("key") != key or design.get("done"):
        # a new incumbent, or a finished design: start afresh
        design = new_design(ctx, key)
        memory["design"] = design
        if design is None:
            return []
    frozen = ctx.get("frozen") or []  # the frozen set may have changed since the design began
    out = []
    while design["next"] < len(design["rows"]) and len(out) < ROWS_PER_CALL:
        changes = row_changes(design, design["rows"][design["next"]], config)
        design["next"] = design["next"] + 1
        out.append({k: v for k, v in changes.items() if k not in frozen})
    if out:
        return [c for c in out if c]
    combo = best_combination(ctx, design, config)
    if combo is None:
        # rows not evaluated yet: wait a few calls, then give up on this design
        design["waits"] = design["waits"] + 1
        design["done"] = design["waits"] > WAIT_CALLS
        return []
    design["done"] = True
    combo = {k: v for k, v in combo.items() if k not in frozen}
    return [combo] if combo else []
