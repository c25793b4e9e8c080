"""A TPE-style proposer: where good trials are dense and bad ones are not, anywhere in the space.

Hooks: propose.
The ok trials are split at the GAMMA quantile of the metric into good and bad. Each parameter
gets two Parzen densities over its unit interval (log scale for logfloat; a Gaussian kernel per
trial with a bandwidth that shrinks with the number of trials; smoothed counts for categoricals),
l(x) from the good trials and g(x) from the bad ones. SAMPLES points are drawn from l (a good
trial, each active parameter moved by its kernel) and the PROPOSALS with the largest
l(x) / g(x) that were not evaluated are proposed. With fewer than MIN_TRIALS ok trials it
proposes nothing. Why it helps: the researcher's steps only reach values near the incumbent; a
density ratio over the whole mixed space proposes values from every region that has paid, in
every parameter at once, as Optuna's TPE does.
"""

import math
import random

GAMMA = 0.25  # share of ok trials counted as good
MIN_TRIALS = 8  # fewer ok trials than this: no model yet
SAMPLES = 48  # draws from the good density per call
PROPOSALS = 1  # candidates per call
PRIOR_WEIGHT = 1.0  # weight of a flat prior in every density (keeps g(x) > 0)
MAX_TRIALS = 300  # only the most recent ok trials (bounds the time per call)


def usable(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def to_unit(value, spec):
    kind = spec.get("type")
    if kind == "categorical":
        choices = spec.get("choices") or []
        return choices.index(value) if value in choices else 0
    low, high = spec.get("low"), spec.get("high")
    if not (usable(value) and usable(low) and usable(high)) or high <= low:
        return 0.5
    if kind == "logfloat" and low > 0 and value > 0:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def from_unit(u, spec):
    kind = spec.get("type")
    if kind == "categorical":
        return (spec.get("choices") or [spec.get("default")])[u]
    low, high = spec.get("low"), spec.get("high")
    u = min(1.0, max(0.0, u))
    if kind == "logfloat" and low > 0:
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    value = low + u * (high - low)
    return round(value) if kind == "int" else value


def density(u, points, width, spec):
    """A Parzen density at u (a unit position, or a choice index) from the points."""
    if spec.get("type") == "categorical":
        k = max(1, len(spec.get("choices") or []))
        return (sum(1 for p in points if p == u) + PRIOR_WEIGHT / k) / (len(points) + PRIOR_WEIGHT)
    total = PRIOR_WEIGHT  # the flat prior on [0, 1]
    for p in points:
        z = (u - p) / width
        total = total + math.exp(-0.5 * z * z) / (width * 2.5066282746)
    return total / (len(points) + PRIOR_WEIGHT)


def propose(ctx):
    specs = ctx.get("space") or {}
    frozen = set(ctx.get("frozen") or [])
    names = [n for n in specs if n not in frozen] or list(specs)
    sign = 1.0 if ctx.get("direction", "minimize") == "minimize" else -1.0
    ok = [
        t for t in ctx.get("history") or [] if t.get("status") == "ok" and usable(t.get("metric"))
    ][-MAX_TRIALS:]
    if len(ok) < MIN_TRIALS or not names:
        return []
    ranked = sorted(ok, key=lambda t: sign * t.get("metric"))
    cut = max(1, int(math.ceil(GAMMA * len(ranked))))
    good, bad = ranked[:cut], ranked[cut:]
    width = max(0.02, 0.5 * len(ok) ** -0.25)  # a Scott-like shrinking bandwidth
    columns = {}
    for name in names:
        spec = specs[name]
        g = [to_unit((t.get("config") or {}).get(name, spec.get("default")), spec) for t in good]
        b = [to_unit((t.get("config") or {}).get(name, spec.get("default")), spec) for t in bad]
        columns[name] = [g, b]
    incumbent = dict((ctx.get("incumbent") or {}).get("config") or {})
    tried = {repr(sorted((t.get("config") or {}).items())) for t in ctx.get("history") or []}
    scored = []
    for draw in range(SAMPLES):  # noqa: B007
        anchor = random.choice(good).get("config") or {}
        changes, score = {}, 0.0
        for name in names:
            spec, (g, b) = specs[name], columns[name]
            if spec.get("type") == "categorical":
                k = len(spec.get("choices") or [1])
                keep = random.random() > 0.2
                u = to_unit(anchor.get(name), spec) if keep else random.randrange(k)
            else:
                u = to_unit(anchor.get(name, spec.get("default")), spec) + random.gauss(0, width)
                u = min(1.0, max(0.0, u))
            score = (
                score + math.log(density(u, g, width, spec)) - math.log(density(u, b, width, spec))
            )
            changes[name] = from_unit(u, spec)
        config = dict(incumbent)
        config.update(changes)
        if repr(sorted(config.items())) not in tried:
            scored.append([score, changes])
    scored.sort(key=lambda item: -item[0])
    out = []
    for ratio, changes in scored[:PROPOSALS]:  # noqa: B007
        out.append({k: v for k, v in changes.items() if v != incumbent.get(k)} or changes)
    return out
