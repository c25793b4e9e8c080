"""The space-filling fallback: what is evaluated when nobody proposed anything new.

A step whose proposers (researcher, mechanism) offered only configs already evaluated or running
would otherwise pass without a trial. Before giving the step up, this proposer tries local moves
around the incumbent at shrinking scales (1-2 parameters, in the unit cube: log scale for log
parameters, snapped to the space), then uniform points anywhere in the space. Only when all of
those were evaluated too is the space taken as exhausted near the incumbent, and the step costs
its evaluation without a trial.
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from typing import Any

from bilevel.agents.researcher import canonical, describe
from bilevel.objectives import SearchSpace

SOURCE = "fallback"
LOCAL_TRIES = 96  # local moves tried, from scale 1/4 of the range down to 1/4096
UNIFORM_TRIES = 64  # then points drawn uniformly over the space
SCALES = tuple(0.25 * 0.5**k for k in range(11))


def local_move(
    space: SearchSpace,
    names: list[str],
    incumbent: dict[str, Any],
    scale: float,
    rng: random.Random,
) -> dict[str, Any]:
    chosen = rng.sample(names, min(len(names), rng.choice((1, 1, 2))))
    changes = {}
    for name in chosen:
        param = space[name]
        if param.kind == "categorical":
            changes[name] = rng.choice(param.choices or [incumbent[name]])
        else:
            changes[name] = param.from_unit(
                param.unit(incumbent[name]) + rng.uniform(-scale, scale)
            )
    return changes


def propose(
    space: SearchSpace,
    incumbent: dict[str, Any],
    frozen: Sequence[str],
    n: int,
    seed: str,
    evaluated: Container[str],
    avoid: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Up to n candidates {changes, source, hypothesis} whose configs are neither evaluated nor in
    avoid; [] means none was found (the space is exhausted as far as this proposer can tell)."""
    rng = random.Random(f"fallback:{seed}")
    names = [p for p in space.names if p not in frozen] or space.names
    tried = {canonical(c) for c in avoid}
    out: list[dict[str, Any]] = []
    for attempt in range(LOCAL_TRIES + UNIFORM_TRIES):
        if len(out) == n:
            break
        if attempt < LOCAL_TRIES:
            scale = SCALES[attempt * len(SCALES) // LOCAL_TRIES]
            changes = local_move(space, names, incumbent, scale, rng)
        else:
            changes = {name: space[name].from_unit(rng.random()) for name in names}
        changes = {k: v for k, v in changes.items() if v != incumbent[k]}
        key = canonical({**incumbent, **changes})
        if not changes or key in tried or key in evaluated:
            continue
        tried.add(key)
        how = "local move" if attempt < LOCAL_TRIES else "uniform point"
        out.append(
            {
                "changes": changes,
                "source": SOURCE,
                "hypothesis": f"{how}: {describe(changes, incumbent)} (nothing new was proposed)",
            }
        )
    return out
