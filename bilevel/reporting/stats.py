"""The statistics the bench and its plots report: bootstrap intervals and paired tests."""

from __future__ import annotations

import itertools
import random
import statistics

BOOTSTRAP = 4000
MAX_EXACT = 16  # seeds up to which the permutation test enumerates every sign flip


def bootstrap_ci(values: list[float], seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP))
    return means[int(0.025 * BOOTSTRAP)], means[int(0.975 * BOOTSTRAP) - 1]


def paired(diffs: list[float], seed: int = 0) -> dict[str, float | int | None]:
    """Mean of paired differences, effect size d_z (mean / sd; None when all differences are
    equal), two-sided sign-flip permutation p-value."""
    n = len(diffs)
    if n == 0:
        return {"n": 0, "mean_diff": None, "d_z": None, "p": None}
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else 0.0
    d_z = mean / sd if sd > 0 else None  # undefined without spread
    observed = abs(sum(diffs))
    if n <= MAX_EXACT:
        flips = itertools.product((1, -1), repeat=n)
        sums = [abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) for signs in flips]
    else:
        rng = random.Random(seed)
        sums = [abs(sum(rng.choice((1, -1)) * d for d in diffs)) for _ in range(20000)]
    p = sum(s >= observed - 1e-12 for s in sums) / len(sums)
    return {"n": n, "mean_diff": mean, "d_z": d_z, "p": p}
