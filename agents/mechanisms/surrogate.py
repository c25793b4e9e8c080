"""k-nearest-neighbour surrogate ranking of candidates.

Hooks: propose, select.
propose offers a pool of POOL untried one- and two-parameter neighbour moves of the incumbent, so
that select has a real choice even when the researcher makes a single proposal.
Each candidate's full config (incumbent config + its changes) is mapped to the unit cube (log
scale for logfloat, index / len(choices) for categoricals). Its score is the distance-weighted
mean metric of its K nearest ok trials, minus an exploration bonus EXPLORATION x (distance to
the nearest trial) x (metric spread), both signed by direction; the best ctx["picks"] candidates
are evaluated. With fewer than MIN_HISTORY ok trials it keeps the default order. Why it helps:
when the researcher and the tool slot offer more candidates than select may pick, the surrogate
spends evaluations where history predicts gains instead of on the prior's first guess.
"""

import math
import random

K = 5  # neighbours averaged by the surrogate
EXPLORATION = 0.5  # weight of the distance-to-nearest-trial bonus (in metric spreads)
MIN_HISTORY = 5  # fewer ok trials than this: no model, default order
MAX_POINTS = 120  # only the most recent ok trials (keeps select < 5 ms; the model is local)
POOL = 8  # moves proposed per call for the surrogate to rank
PAIR_SHARE = 0.5  # share of the pool that changes two parameters at once (interactions)


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def coord(value, spec):
    """One coordinate in [0, 1]; None when the value does not fit the space."""
    kind = spec.get("type")
    if kind == "categorical":
        choices = spec.get("choices") or []
        return choices.index(value) / len(choices) if value in choices else None
    low, high = spec.get("low"), spec.get("high")
    if not (finite(value) and finite(low) and finite(high)) or high <= low:
        return 0.0 if finite(value) else None
    if kind == "logfloat" and low > 0 and value > 0:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def vector(config, names, specs, memo):
    """Coordinates of a config; memo[name] caches value -> coordinate (values repeat a lot)."""
    out = []
    for name in names:
        value = config.get(name, specs[name].get("default"))
        known = memo[name]
        c = known.get(value)
        if c is None:
            c = coord(value, specs[name])
            c = 0.0 if c is None else c
            known[value] = c
        out.append(c)
    return out


def propose(ctx):
    incumbent = dict((ctx.get("incumbent") or {}).get("config") or {})
    frozen = set(ctx.get("frozen") or [])
    moves = [
        [name, value]
        for name, values in sorted((ctx.get("neighbors") or {}).items())
        if name not in frozen
        for value in values
    ]
    if not moves:
        return []
    tried = set()
    for t in ctx.get("history") or []:
        tried.add(repr(sorted((t.get("config") or {}).items())))
    pool, seen = [], set()
    tries = 0
    while len(pool) < POOL and tries < POOL * 6:
        tries = tries + 1
        size = 2 if random.random() < PAIR_SHARE and len(moves) > 1 else 1
        picked = random.sample(moves, size)
        changes = {}
        for move in picked:
            changes[move[0]] = move[1]
        config = dict(incumbent)
        config.update(changes)
        key = repr(sorted(config.items()))
        if len(changes) == size and key not in tried and key not in seen:
            seen.add(key)
            pool.append(changes)
    return pool


def select(candidates, ctx):
    picks = max(1, ctx.get("picks", 1) or 1)
    n = len(candidates)
    default = list(range(min(n, picks)))
    ok = [
        t for t in ctx.get("history") or [] if t.get("status") == "ok" and finite(t.get("metric"))
    ][-MAX_POINTS:]
    if len(ok) < MIN_HISTORY or n <= picks:
        return default
    specs = ctx.get("space") or {}
    names = list(specs)
    sign = 1.0 if ctx.get("direction", "minimize") == "minimize" else -1.0
    memo = {name: {} for name in names}
    points = [vector(t.get("config") or {}, names, specs, memo) for t in ok]
    metrics = [sign * t.get("metric") for t in ok]
    spread = max(metrics) - min(metrics)
    incumbent = dict((ctx.get("incumbent") or {}).get("config") or {})
    scale = 1.0 / math.sqrt(max(1, len(names)))  # distances stay in [0, 1]
    scored = []
    for index, candidate in enumerate(candidates):
        changes = candidate.get("changes") if isinstance(candidate, dict) else None
        config = dict(incumbent)
        config.update(changes if isinstance(changes, dict) else {})
        x = vector(config, names, specs, memo)
        dists = [math.dist(x, p) * scale for p in points]
        near = sorted(zip(dists, range(len(dists)), strict=True))[: max(1, K)]
        weight, total = 0.0, 0.0
        for item in near:
            w = 1.0 / (item[0] + 1e-6)  # inverse distance: an exact match dominates
            weight = weight + w
            total = total + w * metrics[item[1]]
        predicted = total / weight
        # lower is better after signing; distance from known points earns an exploration bonus
        scored.append([predicted - EXPLORATION * spread * near[0][0], index])
    scored.sort()
    return [item[1] for item in scored[:picks]]
