"""The inner loop: researcher -> review/select -> evaluate (fan-out) -> accept, for one cycle.

Each slot node dispatches to the mechanism held in state (graphs/slots.py). Trials are written
to the ledger under ids assigned before evaluation, so a resumed run re-uses finished trials.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from bilevel.agents import llm_researcher, researcher
from bilevel.agents.evaluator import eval_seed, evaluate
from bilevel.config import LLMSettings
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.slots import Slots
from bilevel.graphs.state import Assignment, BilevelState
from bilevel.ledger import AsyncLedger
from bilevel.objectives import SearchSpace, SpaceError
from bilevel.results import write_results


def check_candidate(
    space: SearchSpace, cand: dict[str, Any], incumbent: dict[str, Any]
) -> dict[str, Any] | str:
    """The candidate with its changes validated (numbers clipped), or why it is rejected."""
    try:
        changes = space.validate_changes(cand["changes"], repair=True)
    except SpaceError as exc:
        return str(exc)
    changes = {k: v for k, v in changes.items() if v != incumbent[k]}
    if not changes:
        return "no change from the incumbent"
    return {**cand, "changes": changes}


async def keep_valid(
    slots: Slots, candidates: list[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    """Candidates inside the space; the others are recorded with their reason, never evaluated."""
    out = []
    for i, cand in enumerate(candidates):
        checked = check_candidate(slots.objective.space, cand, slots.state["incumbent"]["config"])
        if isinstance(checked, str):
            await slots.ledger.add_note(
                f"{slots.iteration}:{key}:{i}",
                slots.cycle,
                slots.iteration,
                "rejected_candidate",
                {"candidate": cand, "reason": checked},
            )
        else:
            out.append(checked)
    return out


async def research(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The tool slot's `advise` and `propose`, then the researcher's own proposals."""
    slots = await Slots.open(runtime, state)
    ctx = await slots.ctx()
    advice = await slots.call("advise", [ctx], key="advise")
    proposed = await slots.call("propose", [ctx], key="propose")
    params = state["inner_params"]
    history = await slots.ledger.trials(trace=state["trace"], before=state["next_trial"])
    seed = f"{state['config']['seed']}:{state['iteration']}"
    if state["config"]["researcher"] == "llm":
        settings = LLMSettings(**state["config"]["llm"])
        llm = await slots.context.llm(
            "researcher", settings, slots.ledger, slots.cycle, slots.iteration, "research"
        )
        own, fallback_reason = await llm_researcher.propose(
            llm, slots.objective, state["incumbent"], history, params, advice, seed
        )
        if fallback_reason is not None:  # the prior researcher proposed this step instead
            await slots.ledger.add_note(
                f"{slots.iteration}:llm_fallback",
                slots.cycle,
                slots.iteration,
                "llm_fallback",
                {"reason": fallback_reason},
            )
    else:
        own = researcher.propose(
            slots.objective.space,
            state["incumbent"]["config"],
            history,
            params["frozen"],
            params["temperature"],
            params["candidates"],
            seed=seed,
        )
    source = f"mechanism:{slots.mechanism['id']}"
    mechanism_candidates = [{"changes": c, "source": source, "hypothesis": ""} for c in proposed]
    pending = await keep_valid(slots, mechanism_candidates + own, "candidate")
    return {"pending": pending, "mechanism": slots.mechanism, "advice": advice}


async def review_select(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["evaluate", "accept"]]:
    """The selection slot's `review` (adjust or veto each candidate), then `select`."""
    slots = await Slots.open(runtime, state)
    ctx = await slots.ctx()
    it, incumbent = state["iteration"], state["incumbent"]["config"]
    reviewed = []
    for i, cand in enumerate(state["pending"]):
        out = await slots.call("review", [cand, ctx], key=f"review:{i}")
        if out is None:
            await slots.ledger.add_note(
                f"{it}:veto:{i}", slots.cycle, it, "vetoed", {"candidate": cand}
            )
        else:
            reviewed.append(out)
    reviewed = await keep_valid(slots, reviewed, "review")
    batch: list[Assignment] = []
    if reviewed:
        picks = await slots.call("select", [reviewed, ctx], key="select")
        for n, i in enumerate(picks):
            cand = reviewed[i]
            batch.append(
                {
                    "trial": state["next_trial"] + n,
                    "config": {**incumbent, **cand["changes"]},
                    "changes": cand["changes"],
                    "source": cand["source"],
                    "description": researcher.describe(cand["changes"], incumbent),
                }
            )
    else:
        await slots.ledger.add_note(
            f"{it}:empty", slots.cycle, it, "no_candidates", {"pending": len(state["pending"])}
        )
    update = {
        "mechanism": slots.mechanism,
        "batch": batch,
        "next_trial": state["next_trial"] + len(batch),
    }
    sends = [Send("evaluate", {**state, **update, "assignment": a}) for a in batch]
    return Command(update=update, goto=sends or "accept")


async def evaluate_trial(payload: dict[str, Any], runtime: Runtime[Context]) -> dict[str, Any]:
    """Evaluate one assignment unless the ledger already holds it (a resumed run)."""
    context = context_of(runtime)
    ledger = await context.aledger(payload["run_dir"])
    await run_trial(
        context,
        ledger,
        payload,
        payload["assignment"],
        base=payload["incumbent"]["config"],
        mechanism_id=payload["mechanism"]["id"],
    )
    return {}


async def run_trial(
    context: Context,
    ledger: AsyncLedger,
    state: dict[str, Any],
    a: Assignment,
    base: dict[str, Any],
    mechanism_id: str,
) -> dict[str, Any]:
    """Evaluate assignment a and append it to the ledger, once: the ledger row is the result."""
    done = await ledger.trial(a["trial"])
    if done is not None:
        if done["config"] != a["config"]:  # the checkpoint and the ledger disagree: never guess
            raise RuntimeError(f"trial {a['trial']} in the ledger differs from its assignment")
        return done
    config = state["config"]
    result = await evaluate(
        context.objective(config),
        a["config"],
        config.get("objective_options", {}),
        eval_seed(config["seed"], a["trial"]),
    )
    await ledger.add_trial(
        {
            "trial": a["trial"],
            "trace": state.get("trace", 0),
            "cycle": state.get("cycle_index", 0),
            "iteration": state.get("iteration", 0),
            "config": a["config"],
            "changes": a["changes"],
            "base": base,
            "source": a["source"],
            "description": a["description"],
            "mechanism": mechanism_id,
            "metric": result.metric,
            "status": result.status,
            "seconds": round(result.seconds, 6),
            "extra": result.extra,
            "log_tail": result.log_tail[-2000:],
            "accepted": None,
            "incumbent_metric": None,
        }
    )
    context.report(
        {"event": "trial", "trial": a["trial"], "metric": result.metric, "status": result.status}
    )
    return await ledger.trial(a["trial"])


async def accept(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["research", "__end__"]]:
    """The selection slot's `accept`, trial by trial in id order; then loop or end the cycle."""
    slots = await Slots.open(runtime, state)
    incumbent = dict(state["incumbent"])
    seen: list[dict[str, Any]] = []
    first = min((a["trial"] for a in state["batch"]), default=state["next_trial"])
    for a in sorted(state["batch"], key=lambda a: a["trial"]):
        trial = await slots.ledger.trial(a["trial"])
        view = {k: trial[k] for k in ("trial", "config", "changes", "metric", "status")}
        ctx = await slots.ctx(incumbent=incumbent, extra_history=seen, before=first)
        keep = await slots.call("accept", [view, ctx], key=f"accept:{a['trial']}")
        if keep:
            incumbent = {
                "config": trial["config"],
                "metric": trial["metric"],
                "trial": trial["trial"],
            }
        await slots.ledger.set_accepted(trial["trial"], keep, incumbent["metric"])
        seen.append({**view, "accepted": keep, "source": trial["source"]})
    await asyncio.to_thread(write_results, state["run_dir"], slots.ledger.sync)
    evals_left = state["evals_left"] - len(state["batch"])
    cycle_iteration = state["cycle_iteration"] + 1
    slots.context.report(
        {
            "event": "iteration",
            "iteration": state["iteration"] + 1,
            "cycle": slots.cycle,
            "incumbent": incumbent["metric"],
            "evals_left": evals_left,
            "mechanism": slots.mechanism["id"],
        }
    )
    update = {
        "mechanism": slots.mechanism,
        "incumbent": incumbent,
        "evals_left": evals_left,
        "cycle_iteration": cycle_iteration,
        "iteration": state["iteration"] + 1,
        "batch": [],
        "pending": [],
    }
    more = cycle_iteration < state["config"]["cycle"] and evals_left > 0
    return Command(update=update, goto="research" if more else END)


def build_inner_graph() -> StateGraph:
    builder = StateGraph(BilevelState, context_schema=Context)
    builder.add_node("research", research)
    builder.add_node("review_select", review_select)
    builder.add_node("evaluate", evaluate_trial)
    builder.add_node("accept", accept)
    builder.add_edge(START, "research")
    builder.add_edge("research", "review_select")
    builder.add_edge("evaluate", "accept")
    return builder
