"""The meta_research node: new inner parameters and/or a new mechanism, as the arm says.

The meta-researcher (agents/roles.py) is the offline library or the LLM, which writes a mechanism
(explore -> critique -> specify -> generate) and repairs it when validation rejects it. When the
LLM fails (no usable reply, budget spent) the library takes over for that call, and the ledger
says so.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from bilevel.agents import meta_researcher
from bilevel.agents.llm_meta import LLMMeta
from bilevel.agents.meta_researcher import LibraryMeta
from bilevel.agents.roles import MetaRequest, MetaResearcher, Written
from bilevel.contract import Mechanism, new_mechanism
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.setup import labels, mechanism_row
from bilevel.graphs.state import BilevelState, Decision, run_config
from bilevel.store.ledger import AsyncLedger


async def meta_researcher_for(
    context: Context, ledger: AsyncLedger, state: BilevelState
) -> MetaResearcher:
    config = run_config(state)
    if config.meta != "llm":
        return LibraryMeta()
    llm = await context.llm(
        "meta", config.llm, ledger, state["cycle_index"], state["iteration"], "meta_research"
    )
    return LLMMeta(llm, labels(config)["meta"])


async def meta_research(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["validate", "run_inner"]]:
    context = context_of(runtime)
    ledger = await context.aledger(state["run_dir"])
    config, cycle, current = run_config(state), state["cycle_index"], state["mechanism"]
    meta = await meta_researcher_for(context, ledger, state)
    request = MetaRequest(
        assessment=state["assessment"],
        inner_params=state["inner_params"],
        current=current,  # type: ignore[arg-type]
        current_source=await context.mechanism_source(ledger, current["id"]),
        names=context.objective(config).space.names,
        memory=copy.deepcopy(state["meta_memory"]),
        seed=f"{config.seed}:meta:{cycle}",
        hook_timeout_s=config.hook_timeout_s,
    )
    repair = state.get("repair")
    if repair and meta.repairs:  # a repair round after a validation rejection
        failed = await context.mechanism_source(ledger, repair["id"])
        written = await meta.repair(request, failed, repair["reason"])
        await write_notes(ledger, state, request)
        if written is None:
            return Command(update={"repair": None}, goto="run_inner")
        cand = await record(ledger, state, written, f"llm-r{repair['round']}", repair["id"], failed)
        decision = said(cycle, cand, f"repair round {repair['round']} of {repair['id']}")
        return Command(update={"candidate_mechanism": cand, "decision": decision}, goto="validate")

    update: dict[str, Any] = {}
    if config.spec.adjusts_params:
        params = await meta.adjust_params(request)
        await write_notes(ledger, state, request)
        await ledger.add_note(f"params:{cycle}", cycle, state["iteration"], "inner_params", params)
        update["inner_params"] = params
    if config.spec.writes_mechanisms:
        written = await meta.write_mechanism(request)
        await write_notes(ledger, state, request)
        if written is not None:
            cand = await record(ledger, state, written, written.name, current["id"],
                                request.current_source)  # fmt: skip
            if written.origin == "library":  # only the candidate's: state stays O(1) in cycles
                update["meta_memory"] = {**request.memory, "params": {cand["id"]: written.values}}
            update["candidate_mechanism"] = cand
            update["decision"] = said(cycle, cand, f"written by {written.origin}: {written.name}")
            return Command(update=update, goto="validate")
        update["decision"] = said(cycle, current, "no new mechanism: the current one stays")
    return Command(update=update, goto="run_inner")


async def record(
    ledger: AsyncLedger,
    state: BilevelState,
    written: Written,
    suffix: str,
    parent_id: str,
    parent_source: str,
) -> Mechanism:
    """The candidate's mechanism record, with its source and diff in the ledger."""
    cycle = state["cycle_index"]
    cand = new_mechanism(f"c{cycle}-{suffix}", written.name, "candidate",
                         parent=state["mechanism"]["id"])  # fmt: skip
    diff = meta_researcher.diff(parent_source, written.source, parent_id, cand["id"])
    await ledger.add_mechanism(
        mechanism_row(cand, written.source, written.origin, cycle, diff, written.values, None)
    )
    return cand


async def write_notes(ledger: AsyncLedger, state: BilevelState, request: MetaRequest) -> None:
    cycle = state["cycle_index"]
    for kind, detail in request.notes:
        await ledger.add_note(
            f"meta:{cycle}:{kind}:{detail.get('step', '')}", cycle, state["iteration"], kind, detail
        )
    request.notes.clear()


def said(cycle: int, mech: Mechanism, reason: str) -> Decision:
    """A decision for the state (Studio shows it): the mechanism, its status, why."""
    return {"cycle": cycle, "mechanism": mech["id"], "status": mech["status"], "reason": reason}
