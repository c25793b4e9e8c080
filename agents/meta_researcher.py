"""The offline meta-researchers (no LLM): the `library` mechanism writer and the params adjuster.

`library` picks a mechanism from agents/mechanisms/ by the assessment's symptoms and by what paid
in earlier cycles (UCB over mechanism names), and parameterises it by rewriting its top-level
constants. Its output is source text that goes through the same validation and sandbox as LLM code.
"""

from __future__ import annotations

import ast
import difflib
import math
import random
import re
from importlib import resources
from typing import Any

from bilevel.agents.roles import MetaRequest, Written
from bilevel.config import MAX_FROZEN, MIN_ACTIVE, InnerParams

LABEL = "library (offline meta-researcher: picks and parameterises built-in mechanisms)"
SKIP = {"__init__", "default"}
EXPLORATION = 0.7  # UCB bonus over mechanism names (rewards in units of the best one seen)
UNTRIED = 1.2  # score of a mechanism not tried yet: below a proven one, above a spent one
STALE_PENALTY = 0.5  # the current mechanism, when its cycle gained nothing
# Symptom -> mechanisms that address it, with a bonus for the pick.
SYMPTOMS: dict[str, tuple[str, ...]] = {
    "cold": ("space_filling", "tpe"),  # few trials yet: measure the space
    "fixation": ("diversity", "tpe", "ucb_bandit"),
    "repeats": ("tabu", "diversity", "trust_region"),
    "stuck": ("trust_region", "gp_ei", "tpe", "annealing"),
    "progress": ("gp_ei", "trust_region", "surrogate"),
}
COLD_TRIALS = 16  # a run that has decided fewer trials than this is "cold"
SYMPTOM_BONUS = 0.5
FLAT = 1e-3  # a parameter moving the metric by less than this (relative) is a flat knob


def read_library() -> dict[str, str]:
    """{name: source} of the built-in mechanisms (the default, which defines no hooks, excluded)."""
    folder = resources.files("bilevel.agents.mechanisms")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        stem = entry.name.removesuffix(".py")
        if entry.name.endswith(".py") and stem not in SKIP:
            out[stem] = entry.read_text()
    return out


# Read once at import: the sources are package data, and nodes must not block the event loop.
LIBRARY = read_library()
DEFAULT_SOURCE = (resources.files("bilevel.agents.mechanisms") / "default.py").read_text()


def library() -> dict[str, str]:
    return dict(LIBRARY)


def constants(source: str) -> dict[str, Any]:
    """Top-level `NAME = literal` constants of a mechanism, in order."""
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper()
        ):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def set_constants(source: str, values: dict[str, Any]) -> str:
    for name, value in values.items():
        source = re.sub(rf"^{name}\s*=.*$", f"{name} = {value!r}", source, count=1, flags=re.M)
    return source


def diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(old.splitlines(True), new.splitlines(True), old_name, new_name)
    )


def symptoms(assessment: dict[str, Any]) -> list[str]:
    out = ["cold"] if assessment.get("end_trial", COLD_TRIALS) < COLD_TRIALS else []
    if assessment.get("fixation", 0) > 0.5 or assessment.get("untouched"):
        out.append("fixation")
    if assessment.get("repeat_rate", 0) > 0.2:
        out.append("repeats")
    if assessment.get("accepted", 0) == 0:
        out.append("stuck")
    elif assessment.get("improvement", 0) > 0:
        out.append("progress")
    return out


def perturb(values: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Halve or double one numeric constant (ints stay ints, at least 1)."""
    numeric = [
        k for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if not numeric:
        return values
    name = rng.choice(numeric)
    factor = rng.choice((0.5, 2.0))
    value = values[name]
    new = max(1, round(value * factor)) if isinstance(value, int) else round(value * factor, 6)
    return {**values, name: new}


def choose_mechanism(
    assessment: dict[str, Any], memory: dict[str, Any], current: str, seed: str
) -> tuple[str, dict[str, Any], str] | None:
    """(name, constants, source) of the next mechanism to try, or None to keep the current one.

    memory: {"stats": {name: {"n": int, "reward": float, "best": {constants}}}, "pulls": int}
    """
    rng = random.Random(seed)
    lib = library()
    stats = memory.setdefault("stats", {})
    total = sum(s["n"] for s in stats.values()) + 1
    seen = symptoms(assessment)
    bonus_for = {m for s in seen for m in SYMPTOMS[s]}
    # Rewards are in units of the largest single reward seen, so a mechanism's mean decays as its
    # cycles stop paying, whatever the objective's scale; an untried one scores UNTRIED.
    scale = max([s.get("best_reward") or 0.0 for s in stats.values()] + [0.0]) or 1.0
    scores = {}
    rejected = memory.get("rejected", {})
    for name in (n for n in lib if n not in rejected):
        s = stats.get(name)
        ucb = (
            s["reward"] / s["n"] / scale + EXPLORATION * math.sqrt(math.log(total) / s["n"])
            if s
            else UNTRIED
        )
        if name == current and "stuck" in seen:  # it stopped paying: try something else
            ucb -= STALE_PENALTY
        scores[name] = ucb + (SYMPTOM_BONUS if name in bonus_for else 0.0) + rng.random() * 1e-3
    if not scores:
        return None
    name = max(scores, key=scores.__getitem__)
    base = constants(lib[name])
    known = stats.get(name, {}).get("best")
    values = perturb(known, rng) if known else base
    source = set_constants(lib[name], values)
    if name == current and known == values:
        return None
    return name, values, source


def reject(memory: dict[str, Any], name: str, reason: str) -> None:
    """Validation refused this mechanism: remember why, and do not offer it again this run."""
    memory.setdefault("rejected", {})[name] = reason


def reward(gain: float, baseline_metric: float | None) -> float:
    """A cycle's improvement as a percentage of the baseline metric: comparable across
    objectives (what the bandit over mechanisms and the mechanism library both score)."""
    return 100.0 * gain / (abs(baseline_metric or 1.0) or 1.0)


def credit(memory: dict[str, Any], name: str, values: dict[str, Any], reward: float) -> None:
    """Record what a mechanism's probation cycle earned; remember its best constants."""
    s = memory.setdefault("stats", {}).setdefault(
        name, {"n": 0, "reward": 0.0, "best": None, "best_reward": None}
    )
    s["n"] += 1
    s["reward"] += reward
    if s["best_reward"] is None or reward > s["best_reward"]:
        s["best"], s["best_reward"] = values, reward


def adjust_params(
    params: dict[str, Any], assessment: dict[str, Any], names: list[str]
) -> dict[str, Any]:
    """The `params` arm: freeze what did not pay, flatten preferences when fixated."""
    p = InnerParams(**params)
    # Freeze only flat knobs, whose changes made no measurable difference: a parameter whose
    # changes moved the metric matters, and may just need to move together with another one
    # (freezing it would block that for good).
    flat = FLAT * abs(assessment.get("metric") or 1.0)
    fruitless = [
        n
        for n, effect in assessment.get("sensitivity", {}).items()
        if n not in p.frozen and effect <= flat and assessment.get("changed", {}).get(n, 0) >= 2
    ]
    room = min(MAX_FROZEN - len(p.frozen), len(names) - MIN_ACTIVE - len(p.frozen))
    p.frozen = p.frozen + fruitless[: max(0, min(2, room))]
    if assessment.get("accepted", 0) == 0 and len(p.frozen) >= 2:
        p.frozen = p.frozen[2:]  # nothing paid: release the oldest frozen ones
    if assessment.get("fixation", 0) > 0.5 or assessment.get("untouched"):
        p.temperature = min(8.0, p.temperature * 2)
        p.strategy = "explore: try parameters not changed recently: " + ", ".join(
            assessment.get("untouched", [])[:4]
        )
    elif assessment.get("improvement", 0) > 0:
        p.strategy = "exploit: refine the parameters that improved the metric"
    if assessment.get("repeat_rate", 0) > 0.2:
        p.candidates = min(3, p.candidates + 1)
    return p.model_dump()


class LibraryMeta:
    """The MetaResearcher interface over the library: offline, no repair rounds."""

    label = LABEL
    repairs = False

    async def adjust_params(self, request: MetaRequest) -> dict[str, Any]:
        return adjust_params(request.inner_params, request.assessment, request.names)

    async def write_mechanism(self, request: MetaRequest) -> Written | None:
        choice = choose_mechanism(
            request.assessment, request.memory, request.current["name"], seed=request.seed
        )
        if choice is None:
            return None
        name, values, source = choice
        return Written(name, source, "library", values)

    async def repair(self, request: MetaRequest, failed: str, reason: str) -> Written | None:
        return None
