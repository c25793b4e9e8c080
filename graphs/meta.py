"""The meta_research node: new inner parameters (params arm) and/or a new mechanism.

The `library` meta-researcher picks and parameterises built-in mechanisms; the `llm` one writes a
mechanism (explore -> critique -> specify -> generate) and repairs it when validation rejects it.
When the LLM fails (no usable reply, budget spent) the offline path takes over for that call, and
the ledger says so.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from bilevel.agents import llm_meta, meta_researcher
from bilevel.agents.llm import BudgetExhausted, LLMFailure
from bilevel.config import LLMSettings
from bilevel.contract import Mechanism, new_mechanism
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.setup import mechanism_row
from bilevel.graphs.state import BilevelState
from bilevel.store.ledger import AsyncLedger

LLM_ERRORS = (LLMFailure, BudgetExhausted, ValueError)


async def meta_research(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["validate", "run_inner"]]:
    context = context_of(runtime)
    ledger = await context.aledger(state["run_dir"])
    cfg, cycle = state["config"], state["cycle_index"]
    current = state["mechanism"]
    current_source = await context.mechanism_source(ledger, current["id"])
    llm = None
    if cfg["meta"] == "llm":
        llm = await context.llm(
            "meta", LLMSettings(**cfg["llm"]), ledger, cycle, state["iteration"], "meta_research"
        )
    repair = state.get("repair")
    if repair and llm is not None:  # a repair round after a validation rejection
        failed = await context.mechanism_source(ledger, repair["id"])
        try:
            source = await llm_meta.repair(
                llm,
                failed,
                repair["reason"],
                current_source,
                state["assessment"],
                cfg["hook_timeout_s"],
            )
        except LLM_ERRORS as exc:
            await note(ledger, state, "llm_fallback", {"step": "repair", "reason": str(exc)})
            return Command(update={"repair": None}, goto="run_inner")
        cand = new_mechanism(
            f"c{cycle}-llm-r{repair['round']}", "llm", "candidate", parent=current["id"]
        )
        diff = meta_researcher.diff(failed, source, repair["id"], cand["id"])
        await ledger.add_mechanism(mechanism_row(cand, source, "llm-repair", cycle, diff, {}, None))
        return Command(update={"candidate_mechanism": cand}, goto="validate")

    update: dict[str, Any] = {}
    if cfg["arm"] in ("params", "full"):
        update["inner_params"] = await new_params(state, context, ledger, llm, current_source)
    if cfg["arm"] in ("mechanism", "full"):
        cand = await write_candidate(state, ledger, llm, update, current_source)
        if cand is not None:
            update["candidate_mechanism"] = cand
            return Command(update=update, goto="validate")
    return Command(update=update, goto="run_inner")


async def note(ledger: AsyncLedger, state: BilevelState, kind: str, detail: Any) -> None:
    cycle = state["cycle_index"]
    await ledger.add_note(
        f"meta:{cycle}:{kind}:{detail.get('step', '')}", cycle, state["iteration"], kind, detail
    )


async def new_params(
    state: BilevelState, context: Context, ledger: AsyncLedger, llm: Any, current_source: str
) -> dict[str, Any]:
    names = context.objective(state["config"]).space.names
    params = None
    if llm is not None:
        try:
            params = await llm_meta.adjust_params(
                llm,
                state["inner_params"],
                current_source,
                state["assessment"],
                names,
                state["config"]["hook_timeout_s"],
            )
        except LLM_ERRORS as exc:
            await note(ledger, state, "llm_fallback", {"step": "params", "reason": str(exc)})
    if params is None:
        params = meta_researcher.adjust_params(state["inner_params"], state["assessment"], names)
    cycle = state["cycle_index"]
    await ledger.add_note(f"params:{cycle}", cycle, state["iteration"], "inner_params", params)
    return params


async def write_candidate(
    state: BilevelState,
    ledger: AsyncLedger,
    llm: Any,
    update: dict[str, Any],
    current_source: str,
) -> Mechanism | None:
    cfg, cycle, current = state["config"], state["cycle_index"], state["mechanism"]
    if llm is not None:
        try:
            source = await llm_meta.generate(
                llm, current_source, state["assessment"], cfg["hook_timeout_s"]
            )
            cand = new_mechanism(f"c{cycle}-llm", "llm", "candidate", parent=current["id"])
            diff = meta_researcher.diff(current_source, source, current["id"], cand["id"])
            await ledger.add_mechanism(mechanism_row(cand, source, "llm", cycle, diff, {}, None))
            return cand
        except LLM_ERRORS as exc:
            await note(ledger, state, "llm_fallback", {"step": "generate", "reason": str(exc)})
    memory = copy.deepcopy(state["meta_memory"])
    choice = meta_researcher.choose_mechanism(
        state["assessment"], memory, current["name"], seed=f"{cfg['seed']}:meta:{cycle}"
    )
    if choice is None:
        return None
    name, values, source = choice
    cand = new_mechanism(f"c{cycle}-{name}", name, "candidate", parent=current["id"])
    memory["params"] = {cand["id"]: values}  # only the candidate's: state stays O(1) in cycles
    diff = meta_researcher.diff(current_source, source, current["id"], cand["id"])
    await ledger.add_mechanism(mechanism_row(cand, source, "library", cycle, diff, values, None))
    update["meta_memory"] = memory
    return cand
