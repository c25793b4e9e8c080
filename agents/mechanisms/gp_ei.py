"""A Gaussian-process surrogate with expected improvement, over the whole mixed space.

Hooks: propose.
The ok trials (the MAX_POINTS best and most recent) are mapped to the unit cube (log scale for
logfloat; a categorical is its own axis where equal choices are at distance 0, others at 1). A
zero-mean GP on the standardised metric with a squared-exponential kernel is fitted, the length
scale picked from LENGTH x 1, 2, 4 by marginal likelihood. Expected improvement over the best ok
metric is evaluated at RANDOM uniform points and LOCAL perturbations of the best trials, and the
best PROPOSALS untried points are proposed; with fewer than MIN_TRIALS ok trials, none.
Why it helps: the researcher and the grid moves ignore what the trials say between them; a GP
interpolates all of them and EI spends an evaluation where a gain is both likely and large.
"""

import math
import random

MIN_TRIALS = 6  # fewer ok trials than this: no model yet
MAX_POINTS = 40  # trials in the fit (half the best, half the most recent): Cholesky is n^3
LENGTH = 0.15  # shortest length scale tried (unit cube); then 2x and 4x, by marginal likelihood
LENGTH_STEPS = 3
NOISE = 1e-3  # jitter on the kernel's diagonal, in units of the standardised metric
RANDOM = 60  # uniform candidates per call
LOCAL = 60  # candidates near the best trials per call
LOCAL_STEP = 0.08  # their step (unit cube)
PROPOSALS = 1


def numeric(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def encode(config, names, specs):
    out = []
    for name in names:
        spec, value = specs[name], config.get(name, specs[name].get("default"))
        if spec.get("type") == "categorical":
            out.append(("choice", value))  # its own axis: equal or not
            continue
        low, high = spec.get("low"), spec.get("high")
        if not numeric(value) or not high > low:
            out.append(0.5)
        elif spec.get("type") == "logfloat" and low > 0 and value > 0:
            out.append((math.log(value) - math.log(low)) / (math.log(high) - math.log(low)))
        else:
            out.append((value - low) / (high - low))
    return out


def decode(x, names, specs):
    config = {}
    for name, u in zip(names, x, strict=True):
        spec = specs[name]
        if spec.get("type") == "categorical":
            config[name] = u[1]
            continue
        low, high, u = spec.get("low"), spec.get("high"), min(1.0, max(0.0, u))
        if spec.get("type") == "logfloat" and low > 0:
            config[name] = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        elif spec.get("type") == "int":
            config[name] = round(low + u * (high - low))
        else:
            config[name] = low + u * (high - low)
    return config


def kernel(a, b, length):
    d = 0.0
    for x, y in zip(a, b, strict=True):
        if isinstance(x, tuple):
            d = d + (0.0 if x == y else 1.0)
        else:
            d = d + (x - y) * (x - y)
    return math.exp(-0.5 * d / (length * length))


def cholesky(k):
    n = len(k)
    low = [[0.0] * n for row in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = k[i][j] - sum(low[i][m] * low[j][m] for m in range(j))
            if i == j:
                low[i][i] = math.sqrt(max(s, 1e-12))
            else:
                low[i][j] = s / low[j][j]
    return low


def solve(low, y):
    """x with (L L^T) x = y."""
    n = len(y)
    z = [0.0] * n
    for i in range(n):
        z[i] = (y[i] - sum(low[i][m] * z[m] for m in range(i))) / low[i][i]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (z[i] - sum(low[m][i] * x[m] for m in range(i + 1, n))) / low[i][i]
    return x


def fit(points, y, length):
    n = len(points)
    k = [[kernel(points[i], points[j], length) + (NOISE if i == j else 0.0) for j in range(n)]
         for i in range(n)]  # fmt: skip
    low = cholesky(k)
    alpha = solve(low, y)
    fit_term = sum(a * b for a, b in zip(y, alpha, strict=True))
    loglik = -0.5 * fit_term - sum(math.log(low[i][i]) for i in range(n))
    return low, alpha, loglik


def expected_improvement(x, points, low, alpha, length, best):
    ks = [kernel(x, p, length) for p in points]
    mean = sum(a * b for a, b in zip(ks, alpha, strict=True))
    n = len(ks)
    v = [0.0] * n  # L v = ks
    for i in range(n):
        v[i] = (ks[i] - sum(low[i][m] * v[m] for m in range(i))) / low[i][i]
    sd = math.sqrt(max(1e-12, 1.0 + NOISE - sum(t * t for t in v)))
    z = (best - mean) / sd  # minimising the standardised, signed metric
    cdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return (best - mean) * cdf + sd * pdf


def propose(ctx):
    specs = ctx.get("space") or {}
    names = list(specs)
    frozen = set(ctx.get("frozen") or [])
    sign = 1.0 if ctx.get("direction", "minimize") == "minimize" else -1.0
    history = ctx.get("history") or []
    ok = [t for t in history if t.get("status") == "ok" and numeric(t.get("metric"))]
    if len(ok) < MIN_TRIALS or not names:
        return []
    by_metric = sorted(ok, key=lambda t: sign * t.get("metric"))[: MAX_POINTS // 2]
    chosen = {t.get("trial"): t for t in by_metric + ok[-(MAX_POINTS - len(by_metric)) :]}
    trials = list(chosen.values())
    points = [encode(t.get("config") or {}, names, specs) for t in trials]
    raw = [sign * t.get("metric") for t in trials]
    mean = sum(raw) / len(raw)
    sd = math.sqrt(sum((r - mean) ** 2 for r in raw) / len(raw)) or 1.0
    y = [(r - mean) / sd for r in raw]
    best_fit = max(
        (
            fit(points, y, length) + (length,)
            for length in [LENGTH * 2**k for k in range(LENGTH_STEPS)]
        ),
        key=lambda f: f[2],
    )
    low, alpha, loglik, length = best_fit
    best = min(y)
    incumbent = dict((ctx.get("incumbent") or {}).get("config") or {})
    base = encode(incumbent, names, specs)
    tops = [points[i] for i in sorted(range(len(y)), key=lambda i: y[i])[:3]]
    candidates = []
    for i in range(RANDOM + LOCAL):
        if i < RANDOM:
            x = []
            for name, u in zip(names, base, strict=True):
                spec = specs[name]
                if name in frozen:
                    x.append(u)
                elif spec.get("type") == "categorical":
                    x.append(("choice", random.choice(spec.get("choices") or [u[1]])))
                else:
                    x.append(random.random())
        else:
            x = list(random.choice(tops))
            for j, name in enumerate(names):
                if name not in frozen and not isinstance(x[j], tuple) and random.random() < 0.5:
                    x[j] = min(1.0, max(0.0, x[j] + random.gauss(0, LOCAL_STEP)))
        candidates.append(x)
    tried = {repr(sorted((t.get("config") or {}).items())) for t in ctx.get("history") or []}
    scored = []
    for x in candidates:
        config = dict(incumbent)
        for j, name in enumerate(names):  # unmoved axes keep the incumbent's exact value
            if name not in frozen and x[j] != base[j]:
                config[name] = decode([x[j]], [name], specs)[name]
        if repr(sorted(config.items())) in tried:
            continue
        scored.append([expected_improvement(x, points, low, alpha, length, best), config])
    scored.sort(key=lambda item: -item[0])
    out = []
    for ei, config in scored[:PROPOSALS]:  # noqa: B007
        out.append({k: v for k, v in config.items() if v != incumbent.get(k)} or config)
    return out
