"""A space-filling design: Latin hypercube points over the active parameters, one per call.

Hooks: propose.
On its first call it lays out a Latin hypercube of DESIGN points over the parameters that are
not frozen (each parameter's range cut into DESIGN strata, log scale for logfloat, each stratum
used once, in a random pairing; a categorical cycles through its choices), kept in memory, and
proposes the next unevaluated point of it per call until the design is spent; then nothing. The
other parameters stay at the incumbent's values. Why it helps: a search that starts from the
baseline and moves by small steps measures one corner of the space; a design spread evenly over
every range tells the researcher and the model-based mechanisms where the good regions are.
"""

import math
import random

DESIGN = 10  # points in the design
PROPOSALS = 1  # design points per call


def in_range(spec, u):
    kind, low, high = spec.get("type"), spec.get("low"), spec.get("high")
    if kind == "categorical":
        choices = spec.get("choices") or [spec.get("default")]
        return choices[int(u * len(choices)) % len(choices)]
    if kind == "logfloat":
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    if kind == "int":
        return int(round(low + u * (high - low)))
    return low + u * (high - low)


def layout(specs, names):
    columns = {}
    for name in names:
        strata = list(range(DESIGN))
        random.shuffle(strata)
        columns[name] = [(s + random.random()) / DESIGN for s in strata]
    return [{n: in_range(specs[n], columns[n][i]) for n in names} for i in range(DESIGN)]


def propose(ctx):
    memory = ctx.get("memory") if isinstance(ctx.get("memory"), dict) else {}
    specs = ctx.get("space") or {}
    names = [n for n in specs if n not in set(ctx.get("frozen") or [])]
    if not names:
        return []
    if "design" not in memory:
        memory["design"], memory["next"] = layout(specs, names), 0
    out = []
    while memory["next"] < len(memory["design"]) and len(out) < PROPOSALS:
        out.append(memory["design"][memory["next"]])
        memory["next"] = memory["next"] + 1
    return out
