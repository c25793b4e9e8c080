"""UCB1 bandit over parameters.

Hooks: propose.
Every non-frozen parameter is an arm. Each past trial that changed a parameter is a pull of
that arm; its reward is the trial's relative improvement over the incumbent of that time,
squashed into [0, 1] by tanh (0.5 = no change, failed trials earn 0). propose() changes the
parameter(s) with the highest UCB1 score to a neighbour value not yet tried from the current
incumbent, on every EVERY-th iteration. Why it helps: the prior researcher keeps pulling
the first-listed parameters whether or not they pay; UCB1 plays every arm once, then returns
to those whose changes paid off.
"""

import math
import random

EXPLORATION = 1.0  # weight of the UCB1 confidence bonus
PROPOSALS = 1  # candidates per call, each on a different parameter
EVERY = 2  # propose on every EVERY-th iteration; the researcher's own proposal runs in between
SCALE = 0.01  # relative improvement that earns reward 0.88 (0.5 + 0.5 * tanh(1))


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def move(name, value):
    """'name=value' with numbers printed alike (8 and 8.0, 0.1 * 2 and 0.2 are one move)."""
    if finite(value):
        return f"{name}={value:.10g}"
    return name + "=" + str(value)


def reward(trial, incumbent, direction):
    metric = trial.get("metric")
    if trial.get("status") != "ok" or not finite(metric):
        return 0.0
    if not finite(incumbent):
        return 1.0  # the first working config is an improvement over nothing
    gain = incumbent - metric if direction == "minimize" else metric - incumbent
    return 0.5 + 0.5 * math.tanh(gain / max(abs(incumbent), 1e-12) / SCALE)


def arm_stats(ctx):
    """{param: [pulls, total reward]}, replaying history to know the incumbent of each time."""
    direction = ctx.get("direction", "minimize")
    incumbent = (ctx.get("baseline") or {}).get("metric")
    stats = {}
    for trial in ctx.get("history") or []:
        r = reward(trial, incumbent, direction)
        for name in trial.get("changes") or {}:
            s = stats.get(name)
            if s is None:
                s = [0, 0.0]
                stats[name] = s
            s[0] = s[0] + 1
            s[1] = s[1] + r
        if trial.get("accepted") and finite(trial.get("metric")):
            incumbent = trial.get("metric")
    return stats


def tried_here(ctx):
    """'name=value' moves already tried since the incumbent was last replaced."""
    history = ctx.get("history") or []
    start = 0
    for i in range(len(history) - 1, -1, -1):
        if history[i].get("accepted"):
            start = i + 1
            break
    tried = {}
    for trial in history[start:]:
        for name, value in (trial.get("changes") or {}).items():
            tried[move(name, value)] = 1
    return tried


def propose(ctx):
    if ctx.get("iteration", 0) % max(1, EVERY):
        return []
    frozen = ctx.get("frozen") or []
    neighbors = ctx.get("neighbors") or {}
    stats = arm_stats(ctx)
    total = 0
    for s in stats.values():
        total = total + s[0]
    log_total = math.log(max(total, 1))
    scored = []
    for i, name in enumerate(ctx.get("space") or {}):
        if name in frozen or not neighbors.get(name):
            continue
        s = stats.get(name)
        if not s:
            # unplayed arms first; among them the last-listed, which the prior neglects most
            score = 1e9 + i
        else:
            score = s[1] / s[0] + EXPLORATION * math.sqrt(2.0 * log_total / s[0])
        scored.append([score, i, name])
    scored.sort(reverse=True)
    tried = tried_here(ctx)
    out = []
    for item in scored:
        if len(out) >= PROPOSALS:
            break
        name = item[2]
        fresh = [v for v in neighbors[name] if move(name, v) not in tried]
        if fresh:
            out.append({name: random.choice(fresh)})
    memory = ctx.get("memory")
    if isinstance(memory, dict):
        # kept for the ledger / the meta-researcher: what the bandit currently believes
        arms = {}
        for name, s in stats.items():
            arms[name] = [s[0], round(s[1] / s[0], 4)]
        memory["arms"] = arms
    return out
