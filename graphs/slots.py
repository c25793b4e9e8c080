"""Slot dispatch: build a hook's ctx, call the mechanism held in state, fall back, record.

Every call of a hook the mechanism defines is recorded in the ledger with its outcome, its time,
and whether its result differed from what the default would have done (`changed`): a mechanism
"was used" only when its calls changed what was evaluated or kept.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from bilevel.contract import HookTypeError, call_default, check_result
from bilevel.graphs.context import Context
from bilevel.graphs.state import BilevelState, Mechanism
from bilevel.ledger import Ledger
from bilevel.objectives import Objective

HISTORY_LIMIT = 500  # trials of the current trace a hook sees (most recent)


def hook_ctx(
    state: BilevelState,
    objective: Objective,
    ledger: Ledger,
    extra_history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON ctx every hook receives (see bilevel.contract)."""
    config = state["config"]
    history = [
        {
            "trial": t["trial"],
            "config": t["config"],
            "changes": t["changes"],
            "metric": t["metric"],
            "status": t["status"],
            "accepted": bool(t["accepted"]),
        }
        for t in ledger.trials(trace=state["trace"], limit=HISTORY_LIMIT)
        if t["accepted"] is not None
    ] + (extra_history or [])
    incumbent = state["incumbent"]
    return {
        "iteration": state["iteration"],
        "cycle": state["cycle_index"],
        "evaluations_left": state["evals_left"],
        "slots": min(config["slots"], max(1, state["evals_left"])),
        "seed": config["seed"],
        "direction": objective.direction,
        "space": objective.space.to_json(),
        "baseline": {"config": state["baseline"]["config"], "metric": state["baseline"]["metric"]},
        "incumbent": {"config": incumbent["config"], "metric": incumbent["metric"]},
        "history": history[-HISTORY_LIMIT:],
        "frozen": list(state["inner_params"].get("frozen", [])),
        "neighbors": objective.space.neighbors(incumbent["config"]),
        "memory": {},
    }


def call_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big")


async def call_hook(
    context: Context,
    ledger: Ledger,
    mechanism: Mechanism,
    hook: str,
    args: list[Any],
    *,
    key: str,
    cycle: int,
    iteration: int,
    timeout_s: float,
) -> Any:
    """Run one hook of the mechanism; on any failure use the default. Mutates mechanism memory.

    args ends with ctx; its memory is replaced by the mechanism's own before the call.
    """
    default = call_default(hook, copy.deepcopy(args))
    if hook not in mechanism["hooks"]:
        return default
    args[-1]["memory"] = mechanism["memory"]
    pool = await context.sandbox()
    result = await pool.call(
        mechanism["source"], hook, args, seed=call_seed(args[-1]["seed"], key), timeout_s=timeout_s
    )
    outcome, error, value = result.outcome, result.error, default
    if outcome == "ok":
        try:
            value = check_result(hook, result.value, args)
            if isinstance(result.memory, dict):
                mechanism["memory"] = result.memory
        except HookTypeError as exc:
            outcome, error, value = "bad_type", str(exc), default
    ledger.add_hook_call(
        {
            "key": key,
            "mechanism": mechanism["id"],
            "hook": hook,
            "cycle": cycle,
            "iteration": iteration,
            "outcome": outcome,
            "changed": int(value != default),
            "error": (error or "")[:500] or None,
            "ms": round(result.ms, 3),
        }
    )
    return value
