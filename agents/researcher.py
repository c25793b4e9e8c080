"""The `prior` researcher: a seeded, deterministic stand-in for an LLM's priors (no LLM involved).

It behaves like the paper's Level-1 researcher does in practice: a fixed preference order over
parameters (the order the search space lists them, decaying geometrically, flattened by the
temperature), canonical step sizes (x2, /2, +-1, the neighbouring choice) that refine after moves
that did not pay, 1-3 changes per proposal, it keeps a direction that paid and reverses one that
did not, and it never proposes an exact repeat of a config it has already tried.
"""

from __future__ import annotations

import math
import random
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Any

from bilevel.objectives import SearchSpace

if TYPE_CHECKING:
    from bilevel.agents.roles import ResearchRequest
    from bilevel.contract import Candidate

LABEL = "prior (seeded heuristic researcher, no LLM)"
DECAY = math.log(2.0)  # preference weight halves with each place down the list at temperature 1
N_CHANGES = (1, 2, 3)
N_CHANGES_WEIGHTS = (0.6, 0.3, 0.1)
MAX_TRIES = 40
REFINE_AFTER = 2  # changes of a parameter that did not pay before its step size halves (in log2)
MAX_REFINE = 4  # finest step: x2^(1/16), about 4.4%
RECENT = 200  # trials the refinement looks back over


def preference_weights(names: list[str], temperature: float) -> list[float]:
    return [math.exp(-rank * DECAY / temperature) for rank in range(len(names))]


def last_move(history: list[dict[str, Any]], name: str) -> tuple[int, bool] | None:
    """Direction (+1/-1) of the last trial that changed name (among the last RECENT), and
    whether it was kept."""
    for trial in reversed(history[-RECENT:]):
        if name in trial["changes"] and trial.get("base") is not None:
            old, new = trial["base"].get(name), trial["changes"][name]
            if isinstance(old, int | float) and isinstance(new, int | float) and old != new:
                return (1 if new > old else -1), bool(trial["accepted"])
    return None


def failures_since_gain(history: list[dict[str, Any]], name: str) -> int:
    """Trials that changed name and were not kept, since the last kept change of name, among
    the last RECENT trials (so a step costs the same at trial 5,000 as at trial 100)."""
    n = 0
    for trial in reversed(history[-RECENT:]):
        if name in trial["changes"]:
            if trial["accepted"]:
                break
            n += 1
    return n


def step(
    space: SearchSpace, name: str, value: Any, history: list[dict[str, Any]], rng: random.Random
) -> Any:
    """One move of name from value. Numbers move by a factor that starts at x2 / /2 and refines
    (x2^(1/2), x2^(1/4), ...) after every REFINE_AFTER changes of the parameter that did not pay,
    so interior optima between the halving grid's points are reachable; ints move by +-1 or by the
    same factor, at any magnitude."""
    param = space[name]
    if param.kind == "categorical":
        options = param.neighbors(value)
        if not options:
            return value
        i = (param.choices or []).index(value)
        adjacent = [c for c in options if abs((param.choices or []).index(c) - i) == 1]
        return rng.choice(adjacent or options)
    level = min(MAX_REFINE, failures_since_gain(history, name) // REFINE_AFTER)
    factor = 2.0 ** (0.5**level)
    if param.kind == "int":
        d = param.step or 1  # repair snaps the others onto a step or power-of-two grid
        raw = [value - d, value + d, round(value / factor), round(value * factor)]
    elif value == 0:
        raw = [param.low + 0.1 * (param.high - param.low) / 2**level]  # type: ignore[operator]
    else:
        raw = [value / factor, value * factor]
    options = []
    for v in raw:
        clipped = param.repair(v)
        if clipped != value and clipped not in options:
            options.append(clipped)
    if not options:
        return value
    move = last_move(history, name)
    if move is not None:
        direction = move[0] if move[1] else -move[0]
        preferred = [v for v in options if (v - value) * direction > 0]
        if preferred and rng.random() < 0.8:
            options = preferred
    return rng.choice(options)


def describe(changes: dict[str, Any], base: dict[str, Any]) -> str:
    return ", ".join(f"{k} {base[k]!r}->{v!r}" for k, v in changes.items())


def propose(
    space: SearchSpace,
    incumbent: dict[str, Any],
    history: list[dict[str, Any]],
    frozen: list[str],
    temperature: float,
    n: int,
    seed: str,
    avoid: Sequence[dict[str, Any]] = (),
    evaluated: Container[str] | None = None,
) -> list[dict[str, Any]]:
    """n candidates {changes, source, hypothesis}, none repeating a config already tried.

    history: trials of this trace, each with config, changes, accepted and base (the incumbent
    config it was proposed from). avoid: configs being evaluated now (in parallel).
    evaluated: canonical keys of every config the run has evaluated (other traces included); it
    covers history, so given it the step need not scan the whole history.
    """
    rng = random.Random(seed)
    names = [p for p in space.names if p not in frozen] or space.names
    tried = {canonical(c) for c in avoid}
    if evaluated is None:
        evaluated = {canonical(t["config"]) for t in history}
    out: list[dict[str, Any]] = []
    for attempt in range(MAX_TRIES * n):
        if len(out) == n:
            break
        temp = temperature * (1 + attempt // MAX_TRIES)  # flatten when stuck on repeats
        k = min(len(names), rng.choices(N_CHANGES, N_CHANGES_WEIGHTS)[0])
        weights = preference_weights(names, temp)
        chosen: list[str] = []
        while len(chosen) < k:
            name = rng.choices(names, weights)[0]
            if name not in chosen:
                chosen.append(name)
        changes = {name: step(space, name, incumbent[name], history, rng) for name in chosen}
        changes = {k: v for k, v in changes.items() if v != incumbent[k]}
        config = {**incumbent, **changes}
        key = canonical(config)
        if not changes or key in tried or key in evaluated:
            continue
        tried.add(key)
        out.append(
            {
                "changes": changes,
                "source": "prior",
                "hypothesis": f"{describe(changes, incumbent)} should improve the metric",
            }
        )
    return out


def canonical(config: dict[str, Any]) -> str:
    return repr(sorted(config.items()))


def trial_key(config: dict[str, Any], code: str | None = None) -> str:
    """What makes two trials the same: the config, and the source version a code edit ran
    (None: the user's own source)."""
    return canonical(config) if code is None else f"{canonical(config)}@{code}"


class PriorResearcher:
    """The Researcher interface over `propose`."""

    label = LABEL

    async def propose(self, request: ResearchRequest) -> list[Candidate]:
        params = request.params
        return propose(
            request.objective.space,
            request.incumbent["config"],
            request.history,
            params["frozen"],
            params["temperature"],
            max(params["candidates"], request.free_evaluations),
            seed=request.seed,
            avoid=request.running,
            evaluated=request.evaluated,
        )
