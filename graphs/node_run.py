"""Slot dispatch: build a hook's ctx, call the mechanism held in state, fall back, record.

Every call of a hook the mechanism defines is recorded in the ledger with its outcome, its time,
and whether its result differed from what the default would have done (`changed`): a mechanism
"was used" only when its calls changed what was evaluated or kept.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

from bilevel.contract import (
    Ctx,
    HookTypeError,
    Mechanism,
    build_ctx,
    call_default,
    check_plain,
    check_result,
    history_entry,
)
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.history import TrialHistory
from bilevel.graphs.state import InnerState, Point, decided_before, run_config
from bilevel.objectives import Objective
from bilevel.store.ledger import AsyncLedger

HISTORY_LIMIT = 500  # trials of the current trace a hook sees (most recent)
Check = Callable[[Any], "str | None"]


def free_evaluations(state: InnerState) -> int:
    """Parallel evaluations not in use, counting only evaluations the budget still allows."""
    return max(0, min(run_config(state).parallel - len(state["inflight"]), state["evals_left"]))


def in_turn(state: InnerState, proposer: str | None = None) -> str:
    """The state key of the mechanism whose hooks this step calls. A mechanism on probation
    shares its cycle with its parent, turn about by iteration (odd iterations: the parent), so
    the two are compared on matched trials -- the same phase of the run, the same incumbents.
    proposer: deciding a trial, the id of the mechanism that proposed it (its accept decides)."""
    parent, mech = state.get("previous_mechanism"), state["mechanism"]
    if parent is None or mech["status"] != "probation":
        return "mechanism"
    if proposer is not None:
        return "previous_mechanism" if proposer == parent["id"] else "mechanism"
    return "previous_mechanism" if state["iteration"] % 2 else "mechanism"


def call_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big")


class NodeRun:
    """One node execution's view of the run: its ledger, objective and mechanism (a copy whose
    memory the hooks update; the node returns it as its state update)."""

    def __init__(
        self, context: Context, ledger: AsyncLedger, objective: Objective, state: InnerState
    ) -> None:
        self.context, self.ledger, self.objective, self.state = context, ledger, objective, state
        self.key = in_turn(state)
        self.mechanism: Mechanism = copy.deepcopy(state[self.key])  # type: ignore[literal-required]
        self.config = run_config(state)
        self.cycle, self.iteration = state["cycle_index"], state["iteration"]

    async def history(self, before: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Decided trials of the current trace with ids below before (oldest first)."""
        return await self.trial_history.trials(self.ledger, self.state["trace"], before, limit)

    def update(self) -> dict[str, Any]:
        """The node's state update for the mechanism it used (its memory may have changed)."""
        return {self.key: self.mechanism}

    def for_trial(self, proposer: str) -> NodeRun:
        """The same node, calling the hooks of the mechanism that proposed a trial."""
        key = in_turn(self.state, proposer)
        if key == self.key:
            return self
        other = copy.copy(self)
        other.key, other.mechanism = key, copy.deepcopy(self.state[key])  # type: ignore[literal-required]
        return other

    @property
    def trial_history(self) -> TrialHistory:
        return self.context.history(str(self.ledger.sync.path))

    @classmethod
    async def open(cls, runtime: Any, state: InnerState) -> NodeRun:
        context = context_of(runtime)
        ledger = await context.aledger(state["run_dir"])
        return cls(context, ledger, context.objective(run_config(state)), state)

    async def ctx(
        self,
        incumbent: Point | None = None,
        before: int | None = None,
    ) -> Ctx:
        """The JSON ctx every hook receives (see bilevel.contract).

        History holds the trace's trials with ids below `before` (default: every decided trial):
        a replayed node must not see trials that its first execution went on to record.
        """
        state = self.state
        incumbent = incumbent or state["incumbent"]
        trials = await self.history(before or decided_before(state), HISTORY_LIMIT)
        history = [history_entry(t) for t in trials]
        return build_ctx(
            space=self.objective.space,
            iteration=state["iteration"],
            cycle=state["cycle_index"],
            evaluations_left=state["evals_left"],
            picks=max(1, free_evaluations(state)),
            seed=self.config.seed,
            direction=self.objective.direction,  # type: ignore[arg-type]
            baseline=state["baseline"],
            incumbent=incumbent,
            history=history[-HISTORY_LIMIT:],
            frozen=state["inner_params"].get("frozen", []),
            noise_margin=state.get("noise_margin", 0.0),
        )

    async def call(self, hook: str, args: list[Any], key: str, check: Check | None = None) -> Any:
        """Run one hook of the mechanism; on any failure use the default, and record the call.

        args ends with ctx, whose memory becomes the mechanism's own for the call. check: a
        reason why a well-typed result is still unusable here (e.g. a reviewed candidate
        outside the space), which makes the call fall back to the default too.
        """
        mech = self.mechanism
        default = call_default(hook, args)
        if hook not in mech["hooks"]:
            return default
        key = f"{self.iteration}:{key}"
        memory = await self.context.mechanism_memory(self.ledger, mech["memory_ref"])
        args[-1]["memory"] = memory
        pool = await self.context.sandbox()
        result = await pool.call(
            await self.context.mechanism_source(self.ledger, mech["id"]),
            hook,
            args,
            seed=call_seed(args[-1]["seed"], key),
            timeout_s=self.config.hook_timeout_s,
        )
        outcome, error, value = result.outcome, result.error, default
        if outcome == "ok":
            try:
                check_plain(result.value)
                check_plain(result.memory)  # memory goes into the ledger (state holds its hash)
                value = check_result(hook, result.value, args)
                if isinstance(result.memory, dict) and result.memory != memory:
                    mech["memory_ref"] = await self.context.store_memory(self.ledger, result.memory)
                unusable = check(value) if check is not None else None
                if unusable is not None:
                    outcome, error, value = "bad_value", unusable, default
            except HookTypeError as exc:
                outcome, error, value = "bad_type", str(exc), default
        await self.ledger.add_hook_call(
            {
                "key": key,
                "mechanism": mech["id"],
                "hook": hook,
                "cycle": self.cycle,
                "iteration": self.iteration,
                "outcome": outcome,
                "changed": int(value != default),
                "error": (error or "")[:500] or None,
                "ms": round(result.ms, 3),
            }
        )
        return value
