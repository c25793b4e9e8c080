"""Tabu list: no exact repeats, no recently failed moves.

Hooks: review, propose.
review() vetoes a candidate whose full config (incumbent config + its changes) was already
evaluated, and drops from it every move (parameter + direction: up / down, or the categorical
value) that belongs to a trial rejected within the last TENURE trials; a candidate left with
no move is vetoed. propose() adds one non-tabu move on the least-recently-changed parameter when
the last STUCK trials were all rejected. Why it helps: the prior researcher returns to the same
few moves; forbidding them for a while forces the loop elsewhere instead of re-measuring noise.
"""

import math
import random

TENURE = 10  # a move from a rejected trial stays tabu for this many trials
STUCK = 3  # propose an escape move once this many trials in a row were rejected


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def same(a, b):
    if a == b:
        return True
    # numbers computed two ways (0.1 * 2, 0.2) are one value
    return finite(a) and finite(b) and abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def full_config(ctx, changes):
    config = {}
    for name, spec in (ctx.get("space") or {}).items():
        config[name] = spec.get("default")
    config.update((ctx.get("incumbent") or {}).get("config") or {})
    config.update(changes)
    return config


def seen(config, changes, history):
    """Was this full config evaluated before? Changed keys are compared first: early exit."""
    order = list(changes) + [k for k in config if k not in changes]
    for trial in history:
        old = trial.get("config") or {}
        hit = True
        for k in order:
            if not same(old.get(k), config[k]):
                hit = False
                break
        if hit:
            return True
    return False


def move(name, old, new, space):
    """The direction of a change: 'lr:up', 'lr:down', or 'optimizer=sgd'; '' if no change."""
    if (space.get(name) or {}).get("type") == "categorical" or not (finite(old) and finite(new)):
        return name + "=" + str(new)
    if new > old:
        return name + ":up"
    if new < old:
        return name + ":down"
    return ""


def tabu_moves(ctx):
    """Moves of the trials rejected within the last TENURE trials, relative to their incumbent."""
    space = ctx.get("space") or {}
    history = ctx.get("history") or []
    incumbent = full_config({"space": space, "incumbent": ctx.get("baseline")}, {})
    first = len(history) - TENURE
    tabu = {}
    for i, trial in enumerate(history):
        if i >= first and not trial.get("accepted"):
            for name, value in (trial.get("changes") or {}).items():
                m = move(name, incumbent.get(name), value, space)
                if m:
                    tabu[m] = 1
        if trial.get("accepted") and trial.get("config"):
            incumbent = trial.get("config")
    return tabu


def review(candidate, ctx):
    space = ctx.get("space") or {}
    changes = candidate.get("changes") or {}
    incumbent = full_config(ctx, {})
    tabu = tabu_moves(ctx)
    kept = {}
    for name, value in changes.items():
        if move(name, incumbent.get(name), value, space) not in tabu:
            kept[name] = value
    if not kept or seen(full_config(ctx, kept), kept, ctx.get("history") or []):
        return None
    if len(kept) == len(changes):
        return candidate
    out = dict(candidate)
    out["changes"] = kept
    dropped = sorted([k for k in changes if k not in kept])
    out["hypothesis"] = str(candidate.get("hypothesis", "")) + " [tabu dropped: "
    out["hypothesis"] = out["hypothesis"] + ", ".join(dropped) + "]"
    return out


def propose(ctx):
    history = ctx.get("history") or []
    if len(history) < STUCK or [t for t in history[-STUCK:] if t.get("accepted")]:
        return []
    space = ctx.get("space") or {}
    frozen = ctx.get("frozen") or []
    neighbors = ctx.get("neighbors") or {}
    last = {}
    for i, trial in enumerate(history):
        for name in trial.get("changes") or {}:
            last[name] = i
    # least recently changed first; never-changed ones by reverse listing order (most neglected)
    order = []
    for i, name in enumerate(space):
        if name not in frozen and neighbors.get(name):
            order.append([last.get(name, -1), -i, name])
    order.sort()
    incumbent = full_config(ctx, {})
    tabu = tabu_moves(ctx)
    memory = ctx.get("memory")
    if isinstance(memory, dict):
        memory["tabu"] = sorted(tabu)
    for item in order:
        name = item[2]
        values = list(neighbors[name])
        random.shuffle(values)
        for value in values:
            if move(name, incumbent.get(name), value, space) in tabu:
                continue
            if not seen(full_config(ctx, {name: value}), {name: value}, history):
                return [{name: value}]
    return []
