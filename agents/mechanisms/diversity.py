"""Diversity enforcer: a fixation breaker.

Hooks: propose, review, advise.
Looks at the parameters changed in the last WINDOW trials. When one parameter takes more than
THRESHOLD of the changes, or some non-frozen parameter was not touched at all, propose() changes
the PROPOSALS least-touched parameters to a neighbour value whose full config was never tried;
review() vetoes exact repeats of evaluated configs; advise() names the neglected parameters.
Why it helps: the prior researcher prefers the first-listed parameters and rarely touches the
last ones, so whole directions of the space are never measured.
"""

import math
import random

WINDOW = 10  # recent trials inspected
THRESHOLD = 0.5  # share of changes on one parameter that counts as fixation
PROPOSALS = 1  # candidates per call, one least-touched parameter each
MIN_TRIALS = 3  # no judgement on fewer recent trials than this


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def same(a, b):
    if a == b:
        return True
    return finite(a) and finite(b) and abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def full_config(ctx, changes):
    config = {}
    for name, spec in (ctx.get("space") or {}).items():
        config[name] = spec.get("default")
    config.update((ctx.get("incumbent") or {}).get("config") or {})
    config.update(changes)
    return config


def seen(ctx, changes):
    """Was incumbent + changes evaluated before? Changed keys first, so most trials exit early."""
    config = full_config(ctx, changes)
    order = list(changes) + [k for k in config if k not in changes]
    for trial in ctx.get("history") or []:
        old = trial.get("config") or {}
        hit = True
        for k in order:
            if not same(old.get(k), config[k]):
                hit = False
                break
        if hit:
            return True
    return False


def survey(ctx):
    """(least-touched active params first, most-changed param, its share, neglected params)."""
    history = ctx.get("history") or []
    recent = history[-WINDOW:] if WINDOW > 0 else []
    frozen = ctx.get("frozen") or []
    neighbors = ctx.get("neighbors") or {}
    window, total = {}, {}
    for i, trial in enumerate(history):
        for name in trial.get("changes") or {}:
            total[name] = total.get(name, 0) + 1
            if i >= len(history) - len(recent):
                window[name] = window.get(name, 0) + 1
    order = []
    for i, name in enumerate(ctx.get("space") or {}):
        if name not in frozen and neighbors.get(name):
            order.append([window.get(name, 0), total.get(name, 0), -i, name])
    order.sort()
    active = [item[3] for item in order]
    neglected = [name for name in active if not window.get(name)]
    top, share = "", 0.0
    changes = sum(window.values())
    for name in sorted(window):
        if changes and window[name] / changes > share:
            top, share = name, window[name] / changes
    if len(recent) < MIN_TRIALS:
        return [active, top, share, []]
    return [active, top, share, neglected]


def fixated(info, ctx):
    recent = len((ctx.get("history") or [])[-WINDOW:]) if WINDOW > 0 else 0
    return recent >= MIN_TRIALS and (info[2] > THRESHOLD or bool(info[3]))


def propose(ctx):
    info = survey(ctx)
    if not fixated(info, ctx):
        return []
    neighbors = ctx.get("neighbors") or {}
    out = []
    for name in info[0]:
        if len(out) >= PROPOSALS:
            break
        values = list(neighbors[name])
        random.shuffle(values)
        for value in values:
            if not seen(ctx, {name: value}):
                out.append({name: value})
                break
    return out


def review(candidate, ctx):
    changes = candidate.get("changes") or {}
    if changes and seen(ctx, changes):
        return None
    return candidate


def advise(ctx):
    info = survey(ctx)
    if not fixated(info, ctx):
        return ""
    n = len((ctx.get("history") or [])[-WINDOW:])
    if info[3]:
        text = f"Neglected parameters (unchanged in the last {n} trials): {', '.join(info[3][:8])}."
    else:
        text = f"Least-changed parameters lately: {', '.join(info[0][:3])}."
    if info[2] > THRESHOLD:
        share = round(100 * info[2])
        text = text + f" {info[1]} took {share}% of recent changes; try the neglected ones instead."
    return text
