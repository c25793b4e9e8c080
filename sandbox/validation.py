"""Check a mechanism before it is used: policy, hook signatures, and real calls on contexts.

The reason for a rejection is one readable line, because it goes back to the LLM that wrote
the code so that it can repair it.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from bilevel.contract import HOOKS, HookTypeError, build_ctx, check_result
from bilevel.objectives.space import SearchSpace
from bilevel.sandbox.policy import PolicyError, compile_mechanism
from bilevel.sandbox.pool import CallResult, SandboxPool

# The order in which one iteration of the inner loop calls the hooks.
CALL_ORDER = ("advise", "propose", "review", "select", "accept")
ROUNDS = 2  # run each context twice so that memory written by round 1 is read by round 2
PREVIEW_CHARS = 120


@dataclass
class ValidationReport:
    ok: bool
    reason: str | None
    hooks: list[str] = field(default_factory=list)
    checks: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- synthetic contexts ----------------------------------------------------------------------

BASIC_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "logfloat", "default": 0.001, "low": 1e-5, "high": 0.1},
    "dropout": {"type": "float", "default": 0.1, "low": 0.0, "high": 0.5},
}
MIXED_SPACE: dict[str, dict[str, Any]] = {
    **BASIC_SPACE,
    "layers": {"type": "int", "default": 4, "low": 1, "high": 12},
    "optimizer": {"type": "categorical", "default": "adam", "choices": ["adam", "sgd", "lion"]},
}


def _defaults(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: spec.get("default") for name, spec in space.items()}


def _sample(space: dict[str, dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """A one- or two-parameter change drawn from the space."""
    changes: dict[str, Any] = {}
    for name in rng.sample(sorted(space), min(len(space), rng.randint(1, 2))):
        spec = space[name]
        if spec.get("type") == "categorical":
            changes[name] = rng.choice(spec.get("choices") or [spec.get("default")])
        elif spec.get("type") == "int":
            changes[name] = rng.randint(int(spec["low"]), int(spec["high"]))
        else:
            changes[name] = round(rng.uniform(spec["low"], spec["high"]), 6)
    return changes or {"x": 1}


def _history(space: dict[str, Any], n: int, failed: bool, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    trials, best = [], 1.0
    for i in range(n):
        changes = _sample(space, rng)
        status = "crash" if failed else rng.choice(["ok"] * 8 + ["crash", "nan"])
        metric = None if status != "ok" else round(rng.uniform(0.5, 1.5), 4)
        accepted = metric is not None and metric < best
        best = metric if accepted and metric is not None else best
        config = {**_defaults(space), **changes}
        trials.append(
            {"trial": i + 1, "config": config, "changes": changes, "metric": metric,
             "status": status, "accepted": accepted, "source": "prior"}
        )  # fmt: skip
    return trials


def _context(
    space: dict[str, Any], history: list[dict[str, Any]], metric: float | None, **extra: Any
) -> dict[str, Any]:
    best = min((t["metric"] for t in history if t["accepted"]), default=metric)
    config = _defaults(space)
    shape = {"picks": 1, "direction": "minimize", "frozen": [], **extra}
    return build_ctx(
        space=SearchSpace.from_json(space),
        iteration=len(history),
        cycle=0,
        evaluations_left=20,
        seed=7,
        baseline={"config": config, "metric": metric},
        incumbent={"config": config, "metric": best},
        history=history,  # type: ignore[arg-type]
        noise_margin=0.0,
        **shape,
    )  # type: ignore[return-value]


def synthetic_contexts() -> list[tuple[str, dict[str, Any]]]:
    """Named contexts that cover the shapes a mechanism meets in a real run."""
    return [
        ("empty history", _context(BASIC_SPACE, [], 1.0)),
        ("long history", _context(BASIC_SPACE, _history(BASIC_SPACE, 300, False, 1), 1.0)),
        ("all failed", _context(BASIC_SPACE, _history(BASIC_SPACE, 12, True, 2), None)),
        (
            "mixed space",
            _context(
                MIXED_SPACE,
                _history(MIXED_SPACE, 20, False, 3),
                1.0,
                direction="maximize",
                frozen=["optimizer"],
                picks=2,
            ),
        ),  # fmt: skip
    ]


# --- checks ----------------------------------------------------------------------------------


def _signature_problem(hooks: dict[str, list[str]], functions: list[str]) -> str | None:
    for name, params in hooks.items():
        expected = HOOKS[name]
        if len(params) != len(expected) or any(p.startswith("*") for p in params):
            want = ", ".join(expected)
            return (
                f"{name} must take exactly {len(expected)} parameter(s) ({want}), "
                f"but is defined as {name}({', '.join(params)})"
            )
    for func in functions:
        for hook in HOOKS:
            if func != hook and func.lower() == hook:
                return (
                    f"function '{func}' looks like the hook '{hook}' but hook names are "
                    f"lower-case, so it would never be called; rename it to '{hook}'"
                )
    return None


def _preview(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


def _args(hook: str, ctx: dict[str, Any], round_: int) -> list[Any]:
    """The arguments the inner loop would pass to hook, built from ctx's own search space."""
    space = ctx.get("space") or {"x": {"type": "int", "default": 0, "low": 0, "high": 9}}
    rng = random.Random(round_)
    candidates = [
        {"changes": _sample(space, rng), "source": "researcher", "hypothesis": ""} for _ in range(3)
    ]
    if hook == "review":
        return [candidates[0], ctx]
    if hook == "select":
        return [candidates, {**ctx, "picks": 2}]
    if hook == "accept":
        changes = candidates[0]["changes"]
        trial = {"trial": 7, "config": {**_defaults(space), **changes}, "changes": changes,
                 "metric": 1.0, "status": "ok"}  # fmt: skip
        return [trial, ctx]
    return [ctx]


def _call_problem(hook: str, name: str, result: CallResult, args: list[Any]) -> str | None:
    where = f"on context '{name}'"
    if result.outcome == "timeout":
        return f"{hook} did not finish {where}: {result.error}"
    if result.outcome == "error":
        return f"{hook} raised {where}: {result.error}"
    if result.outcome == "too_large":
        return f"{hook} returned too much data {where}: {result.error}"
    if result.outcome != "ok":
        return f"{hook} failed ({result.outcome}) {where}: {result.error}"
    try:
        check_result(hook, result.value, args)
    except HookTypeError as exc:
        return f"{hook} returned {_preview(result.value)} {where}: {exc}"
    if result.memory is not None and not isinstance(result.memory, dict):
        return f"{hook} left ctx['memory'] as a non-dict {where}"
    return None


async def validate_mechanism(
    pool: SandboxPool,
    source: str,
    contexts: list[dict[str, Any]] | None = None,
    timeout_s: float = 1.0,
) -> ValidationReport:
    """Accept source only if every hook it defines behaves on recorded and synthetic contexts."""
    try:
        compile_mechanism(source)  # compiling runs nothing, so it is safe in this process
    except PolicyError as exc:
        return ValidationReport(False, f"policy: {exc}")
    info = await pool.inspect(source, timeout_s=timeout_s)
    if not info.ok:
        return ValidationReport(False, f"loading the mechanism failed: {info.error}")
    defined = [hook for hook in CALL_ORDER if hook in info.hooks]
    problem = _signature_problem(info.hooks, info.functions)
    if problem or not defined:
        return ValidationReport(problem is None, problem, defined)

    named = [(f"recorded {i + 1}", ctx) for i, ctx in enumerate(contexts or [])]
    checks = 0
    for name, base in named + synthetic_contexts():
        memory = base.get("memory") or {}
        for round_ in range(ROUNDS):
            for hook in defined:
                ctx = {**base, "memory": memory, "iteration": base.get("iteration", 0) + round_}
                args = _args(hook, ctx, round_)
                seed = int(base.get("seed") or 0) + round_
                result = await pool.call(source, hook, args, seed=seed, timeout_s=timeout_s)
                checks += 1
                problem = _call_problem(hook, name, result, args)
                if problem:
                    return ValidationReport(False, problem, defined, checks)
                if isinstance(result.memory, dict):
                    memory = result.memory
    return ValidationReport(True, None, defined, checks)
