"""A trust-region local search around the incumbent that grows on success and shrinks on failure.

Hooks: propose.
The region is a box of side LENGTH (unit cube: log scale for logfloat, a categorical changes with
probability LENGTH) centred on the incumbent. Each call proposes PROPOSALS points drawn in the box,
each moving a random subset of about DIMS_SHARE of the active parameters (at least one). memory
keeps the side and the run of successes and failures of its own proposals (a success: the trial
became the incumbent): SUCCESSES in a row double the side (up to LENGTH_MAX), FAILURES in a row
halve it, and below LENGTH_MIN it restarts at LENGTH. Why it helps: the researcher's x2 / /2
steps cannot land between grid points; a shrinking region keeps refining toward an interior
optimum, and growing it again after a success keeps the steps large while they pay (TuRBO).
"""

import math
import random

LENGTH = 0.2  # initial and restart side of the box
LENGTH_MIN = 0.005
LENGTH_MAX = 0.8
SUCCESSES = 2  # successes in a row that double the side
FAILURES = 4  # failures in a row that halve it
DIMS_SHARE = 0.3  # share of the active parameters one proposal moves
PROPOSALS = 1


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def unit_of(value, spec):
    low, high = spec.get("low"), spec.get("high")
    if not (is_number(value) and is_number(low) and is_number(high)) or high <= low:
        return None
    if spec.get("type") == "logfloat" and low > 0 and value > 0:
        return math.log(value / low) / math.log(high / low)
    return (value - low) / (high - low)


def value_of(u, spec):
    low, high = spec.get("low"), spec.get("high")
    u = max(0.0, min(1.0, u))
    if spec.get("type") == "logfloat":
        return low * math.exp(u * math.log(high / low))
    if spec.get("type") == "int":
        return round(low + u * (high - low))
    return low + u * (high - low)


def update_side(memory, history):
    """Score the trials of this mechanism's own earlier proposals that were decided since."""
    mine = memory.get("pending") or []
    side = memory.get("side", LENGTH)
    left = []
    decided = {repr(sorted((t.get("config") or {}).items())): t for t in history[-50:]}
    for key in mine:
        t = decided.get(key)
        if t is None:
            left.append(key)
        elif t.get("accepted"):
            memory["wins"], memory["losses"] = memory.get("wins", 0) + 1, 0
        else:
            memory["losses"], memory["wins"] = memory.get("losses", 0) + 1, 0
    if memory.get("wins", 0) >= SUCCESSES:
        side, memory["wins"] = min(LENGTH_MAX, side * 2), 0
    if memory.get("losses", 0) >= FAILURES:
        side, memory["losses"] = side / 2, 0
    if side < LENGTH_MIN:
        side = LENGTH  # converged: start a fresh, larger region around the incumbent
    memory["side"], memory["pending"] = side, left[-20:]
    return side


def propose(ctx):
    memory = ctx.get("memory") if isinstance(ctx.get("memory"), dict) else {}
    specs = ctx.get("space") or {}
    frozen = set(ctx.get("frozen") or [])
    active = [n for n in specs if n not in frozen]
    if not active:
        return []
    history = ctx.get("history") or []
    side = update_side(memory, history)
    incumbent = dict((ctx.get("incumbent") or {}).get("config") or {})
    tried = {repr(sorted((t.get("config") or {}).items())) for t in history}
    out = []
    for attempt in range(PROPOSALS * 10):  # noqa: B007
        if len(out) >= PROPOSALS:
            break
        k = max(1, min(len(active), round(DIMS_SHARE * len(active) * random.random() * 2)))
        changes = {}
        for name in random.sample(active, k):
            spec, value = specs[name], incumbent.get(name, specs[name].get("default"))
            if spec.get("type") == "categorical":
                choices = [c for c in spec.get("choices") or [] if c != value]
                if choices and random.random() < max(side, 0.2):
                    changes[name] = random.choice(choices)
                continue
            u = unit_of(value, spec)
            if u is None:
                continue
            new = value_of(u + random.uniform(-side, side) / 2, spec)
            if new != value:
                changes[name] = new
        config = dict(incumbent)
        config.update(changes)
        key = repr(sorted(config.items()))
        if changes and key not in tried:
            tried.add(key)
            memory["pending"] = (memory.get("pending") or []) + [key]
            out.append(changes)
    return out
