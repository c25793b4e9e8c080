"""The outer (bilevel) loop.

setup -> run_inner -> assess -> meta_research -> validate -> probation | reject -> run_inner ...

A new mechanism goes on probation for one cycle, sharing it turn about with its parent (odd
iterations are the parent's); `assess` then adopts it if its gain per evaluation on those matched
trials was larger than its parent's (graphs/assessment.adopt_rule; with --gate, credibly larger),
and otherwise restores its parent and the best incumbent found.
Every decision lands in the ledger.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from bilevel.agents import meta_researcher
from bilevel.config import InnerParams
from bilevel.contract import Mechanism, better, with_status
from bilevel.graphs.assessment import (
    adopt_rule,
    assess_cycle,
    best_point,
    gate_evidence,
    mean_gain,
    trial_gains,
)
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.inner import build_inner_graph
from bilevel.graphs.meta import meta_research, said
from bilevel.graphs.node_run import NodeRun
from bilevel.graphs.setup import default_mechanism, setup
from bilevel.graphs.state import BilevelState, InputState, OutputState, decided_before, run_config
from bilevel.sandbox.validation import validate_mechanism
from bilevel.store.results import write_results


async def assess(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["run_inner", "meta_research", "__end__"]]:
    """Measure the cycle, judge a mechanism on probation, route to the next cycle or the end."""
    context = context_of(runtime)
    cfg, cycle = run_config(state), state["cycle_index"]
    ledger, objective = await context.aledger(state["run_dir"]), context.objective(cfg)
    history = context.history(str(ledger.sync.path))
    trace = await history.trials(ledger, state["trace"], decided_before(state))
    stats = await asyncio.to_thread(
        assess_cycle, state, ledger.sync, objective.direction, objective.space.names, trace
    )
    mech = state["mechanism"]
    update: dict[str, Any] = {"assessment": stats}
    decision = None
    if mech["status"] == "probation":
        parent = state["previous_mechanism"] or default_mechanism()
        gain = stats["improvement"]
        gains = {
            who: await asyncio.to_thread(trial_gains, ledger.sync, stats["first_trial"],
                                         stats["end_trial"], objective.direction, m["id"])
            for who, m in (("candidate", mech), ("parent", parent))
        }  # fmt: skip
        per_eval = {who: mean_gain(g) for who, g in gains.items()}
        effect = {"cycle": cycle, "improvement": gain, "gain_per_evaluation": per_eval,
                  "trials": {who: len(g) for who, g in gains.items()}}  # fmt: skip
        if cfg.gate:  # the statistical gate on the same matched trials
            evidence = gate_evidence(gains["candidate"], gains["parent"], cfg.gate_alpha,
                                     cfg.seed * 1000 + cycle)  # fmt: skip
            adopted, effect["gate"] = evidence["adopt"], evidence
            why = (
                f"gate p={evidence['p']:.3g} (alpha {evidence['alpha']:g})"
                if evidence["p"] is not None
                else f"gate: {evidence['reason']}"
            )
        else:
            adopted = adopt_rule(gains["candidate"], gains["parent"])
        why = (why + ", " if cfg.gate else "") + (
            f"gain per evaluation {per_eval['candidate']:.6g} vs parent {parent['id']} "
            f"{per_eval['parent']:.6g} (turn about, {len(gains['candidate'])} and "
            f"{len(gains['parent'])} trials)"
        )
        if not gains["candidate"]:  # no trial of its turns was decided: nothing to adopt on
            adopted, why = False, "no decided trial on its turns"
        verb = "adopt" if adopted else "revert"
        decision = f"{verb} {mech['id']}: {why}"
        verdict = with_status(mech, "adopted" if adopted else "reverted")
        update["decision"] = said(cycle, verdict, why)
        await ledger.set_mechanism_status(mech["id"], verdict["status"], effect)
        memory = copy.deepcopy(state["meta_memory"])
        advantage = (per_eval["candidate"] - per_eval["parent"]) * max(1, stats["trials"])
        meta_researcher.credit(  # paid by what it gained per evaluation over its parent
            memory,
            mech["name"],
            memory.get("params", {}).get(mech["id"], {}),
            meta_researcher.reward(advantage, state["baseline"]["metric"]),
        )
        update["meta_memory"] = memory
        update["mechanism"] = verdict if adopted else parent
        update["previous_mechanism"] = None
        if not adopted:  # the probation may have kept worse trials: go on from the best one
            best = await asyncio.to_thread(
                best_point, ledger.sync, state["trace"], objective.direction
            )
            current = state["incumbent"]["metric"]
            if best is not None and better(best["metric"], current, objective.direction):
                update["incumbent"] = best
    await ledger.add_cycle(
        {
            "cycle": cycle,
            "trace": state["trace"],
            "mechanism": mech["id"],
            "inner_params": state["inner_params"],
            "trials": stats["trials"],
            "accepted": stats["accepted"],
            "start_metric": state["cycle_start_metric"],
            "end_metric": state["incumbent"]["metric"],
            "improvement": stats["improvement"],
            "stats": stats,
            "decision": decision,
        }
    )
    context.report(
        {
            "event": "cycle",
            "cycle": cycle,
            "improvement": stats["improvement"],
            "decision": decision,
        }
    )
    update.update(
        {
            "cycle_index": cycle + 1,
            "cycle_decided": 0,
            "cycle_first_trial": decided_before(state),
            "cycle_start_metric": update.get("incumbent", state["incumbent"])["metric"],
        }
    )
    if state["evals_left"] <= 0 and not state["inflight"]:
        await asyncio.to_thread(write_results, ledger.sync)
        return Command(update={**update, "done": True}, goto=END)
    spec = cfg.spec
    if spec.restarts:
        update["trace"] = state["trace"] + 1  # a fresh history; the best config is kept
        update["inner_params"] = InnerParams().model_dump()
    return Command(update=update, goto="meta_research" if spec.outer else "run_inner")


async def validate(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["probation", "reject", "meta_research"]]:
    """The candidate runs every hook on recorded and synthetic contexts in the sandbox. An LLM
    meta-researcher gets the rejection back for up to `repair_rounds` repair rounds."""
    run = await NodeRun.open(runtime, state)
    cand = dict(state["candidate_mechanism"])  # type: ignore[arg-type]
    report = await validate_mechanism(
        await run.context.sandbox(),
        await run.context.mechanism_source(run.ledger, cand["id"]),
        contexts=[await run.ctx()],
        timeout_s=run.config.hook_timeout_s,
    )
    cand = with_status(cand, "validated" if report.ok else "rejected")
    await run.ledger.set_validation(cand["id"], cand["status"], report.to_json())
    cand["hooks"] = report.hooks
    update: dict[str, Any] = {
        "candidate_mechanism": cand,
        "repair": None,
        "decision": said(state["cycle_index"], cand, report.reason or "passed validation"),
    }
    if report.ok:
        return Command(update=update, goto="probation")
    rounds = (state.get("repair") or {}).get("round", 0)
    if cand["name"] == "llm" and rounds < run.config.llm.repair_rounds:
        update["repair"] = {
            "round": rounds + 1,
            "reason": report.reason,
            "id": cand["id"],
        }
        return Command(update=update, goto="meta_research")
    return Command(update=update, goto="reject")


async def probation(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Install the validated candidate on probation; its parent is kept to revert to. With
    --approve, a person sees the diff and the validation first (a LangGraph interrupt)."""
    ledger = await context_of(runtime).aledger(state["run_dir"])
    validated: Mechanism = state["candidate_mechanism"]  # type: ignore[assignment]
    cand = with_status(validated, "probation")
    if run_config(state).approve:
        rows = await ledger.query(
            "SELECT diff, validation FROM mechanisms WHERE id = ?", (cand["id"],)
        )
        answer = interrupt(
            {
                "mechanism": cand["id"],
                "diff": rows[0]["diff"],
                "validation": json.loads(rows[0]["validation"] or "{}"),
            }
        )
        if str(answer).strip().lower() not in ("y", "yes", "approve", "true"):
            declined = with_status(validated, "declined")
            await ledger.set_mechanism_status(cand["id"], declined["status"])
            reason = f"declined by the approver ({answer!r})"
            cycle = state["cycle_index"]
            return {"candidate_mechanism": None, "decision": said(cycle, declined, reason)}
    await ledger.set_mechanism_status(cand["id"], cand["status"])
    return {
        "previous_mechanism": state["mechanism"],
        "mechanism": cand,
        "candidate_mechanism": None,
        "decision": said(
            state["cycle_index"],
            cand,
            f"on probation for one cycle, turn about with {state['mechanism']['id']}",
        ),
    }


async def reject(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The candidate failed validation: it never reaches the inner loop; the current one stays.
    The meta-researcher is told why, so it does not propose the same thing again."""
    cand = state["candidate_mechanism"]
    ledger = await context_of(runtime).aledger(state["run_dir"])
    rows = await ledger.query("SELECT validation FROM mechanisms WHERE id = ?", (cand["id"],))
    reason = json.loads(rows[0]["validation"] or "{}").get("reason") if rows else None
    memory = copy.deepcopy(state["meta_memory"])
    reason = reason or "rejected by validation"
    meta_researcher.reject(memory, cand["name"], reason)
    return {
        "candidate_mechanism": None,
        "meta_memory": memory,
        "decision": said(state["cycle_index"], cand, reason),
    }


def build_loop(
    setup_node: Any, assess_node: Any, context_schema: type | None = Context
) -> StateGraph:
    """The spine every run graph shares: setup -> run_inner -> assess (which routes on).
    context_schema: None for a server (`langgraph dev`), which passes no Context and builds a
    JSON schema of it; a Context holds runtime objects (graphs/context.py)."""
    builder = StateGraph(
        BilevelState,
        input_schema=InputState,
        output_schema=OutputState,
        context_schema=context_schema,
    )
    builder.add_node("setup", setup_node)
    builder.add_node("run_inner", build_inner_graph(context_schema).compile())
    builder.add_node("assess", assess_node)
    builder.add_edge(START, "setup")
    builder.add_edge("setup", "run_inner")
    builder.add_edge("run_inner", "assess")
    return builder


def build_bilevel_graph(context_schema: type | None = Context) -> StateGraph:
    builder = build_loop(setup, assess, context_schema)
    builder.add_node("meta_research", meta_research)
    builder.add_node("validate", validate)
    builder.add_node("probation", probation)
    builder.add_node("reject", reject)
    builder.add_edge("probation", "run_inner")
    builder.add_edge("reject", "run_inner")
    return builder
