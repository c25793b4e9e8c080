"""The inner loop: research -> review_select -> collect, for one cycle, over W evaluation slots.

research proposes for the free slots, review_select assigns trials to them (their evaluations
start in the background, graphs/trials.py), and collect decides the oldest trial in flight with
the `accept` hook, then frees its slot. So the researcher works while other slots evaluate, and
the trial order and incumbent updates depend only on the seed and W, never on which evaluation
happened to finish first: trial n is always proposed from the decisions on trials up to n - W.
With W = 1 this is the plain loop: propose, evaluate, accept.

Each slot node dispatches to the mechanism held in state (graphs/slots.py). Trials are written
to the ledger under ids assigned before evaluation, so a resumed run re-uses finished trials.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from bilevel.agents import classical, fallback, llm_researcher, researcher
from bilevel.agents.roles import Researcher, ResearchRequest
from bilevel.config import RunConfig
from bilevel.graphs.context import Context
from bilevel.graphs.setup import labels
from bilevel.graphs.slots import Slots, decided_before, free_slots
from bilevel.graphs.state import Assignment, BilevelState, run_config
from bilevel.graphs.trials import ensure_running, finish
from bilevel.objectives import SearchSpace, SpaceError
from bilevel.store.results import write_results


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


async def researcher_for(slots: Slots, config: RunConfig) -> Researcher:
    """Who proposes: the arm's Optuna sampler, else --researcher (before --llm: the arm says)."""
    proposer = config.spec.proposer
    if proposer != "researcher":
        return classical.OptunaResearcher(proposer)
    if config.researcher == "llm":
        llm = await slots.context.llm(
            "researcher", config.llm, slots.ledger, slots.cycle, slots.iteration, "research"
        )
        return llm_researcher.LLMResearcher(llm, labels(config)["researcher"])
    return researcher.PriorResearcher()


async def research(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The tool slot's `advise` and `propose`, then the researcher's own proposals."""
    slots = await Slots.open(runtime, state)
    ctx = await slots.ctx()
    advice = await slots.call("advise", [ctx], key="advise")
    proposed = await slots.call("propose", [ctx], key="propose")
    config, before = run_config(state), decided_before(state)
    request = ResearchRequest(
        objective=slots.objective,
        incumbent=state["incumbent"],  # type: ignore[arg-type]
        history=await slots.history(before),
        params=state["inner_params"],
        advice=advice,
        seed=f"{config.seed}:{state['iteration']}",
        running=[a["config"] for a in state["inflight"]],
        free_slots=free_slots(state),
        evaluated=await slots.trial_history.evaluated_before(slots.ledger, before),
    )
    own = await (await researcher_for(slots, config)).propose(request)
    for kind, detail in request.notes:
        await slots.ledger.add_note(
            f"{slots.iteration}:{kind}", slots.cycle, slots.iteration, kind, detail
        )
    source = f"mechanism:{slots.mechanism['id']}"
    mechanism_candidates = [{"changes": c, "source": source, "hypothesis": ""} for c in proposed]
    pending = await keep_valid(slots, mechanism_candidates + own, "candidate")
    return {"pending": pending, "mechanism": slots.mechanism, "advice": advice}


async def review_select(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The selection slot's `review` (adjust or veto each candidate), then `select` fills free
    slots; the chosen trials' evaluations start in the background."""
    slots = await Slots.open(runtime, state)
    ctx = await slots.ctx()
    it, incumbent = state["iteration"], state["incumbent"]["config"]
    running = {researcher.canonical(a["config"]) for a in state["inflight"]}
    space = slots.objective.space

    def unusable(value: Any) -> str | None:  # out-of-space review output falls back
        checked = None if value is None else check_candidate(space, value, incumbent)
        return checked if isinstance(checked, str) else None

    history = slots.trial_history
    reviewed = []
    for i, cand in enumerate(state["pending"]):
        out = await slots.call("review", [cand, ctx], key=f"review:{i}", check=unusable)
        if out is None:
            await slots.ledger.add_note(
                f"{it}:veto:{i}", slots.cycle, it, "vetoed", {"candidate": cand}
            )
        else:
            reviewed.append(out)
    fresh = []
    for i, c in enumerate(await keep_valid(slots, reviewed, "review")):
        config = {**incumbent, **c["changes"]}
        if researcher.canonical(config) in running:
            continue
        seen = await history.evaluated(slots.ledger, config, decided_before(state))
        if seen is not None:  # never evaluate a config twice: the ledger has its result
            await slots.ledger.add_note(
                f"{it}:repeat:{i}", slots.cycle, it, "repeated_config",
                {"changes": c["changes"], "source": c["source"], "trial": seen},
            )  # fmt: skip
            continue
        fresh.append(c)
    reviewed = fresh or fallback.propose(
        space,
        incumbent,
        state["inner_params"]["frozen"],
        max(1, free_slots(state)),
        f"{state['config']['seed']}:{it}",
        await history.evaluated_before(slots.ledger, decided_before(state)),
        avoid=[a["config"] for a in state["inflight"]],
    )  # a step never passes without a trial while the space has something new to offer
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
                    "base": incumbent,
                    "mechanism": slots.mechanism["id"],
                    "trace": state["trace"],
                    "cycle": slots.cycle,
                    "iteration": it,
                }
            )
    spent = len(batch)
    if not batch:
        await slots.ledger.add_note(
            f"{it}:empty", slots.cycle, it, "space_exhausted", {"pending": len(state["pending"])}
        )
        if not state["inflight"]:
            spent = 1  # nothing new anywhere and nothing running: the step costs an evaluation
    return {
        "mechanism": slots.mechanism,
        "inflight": state["inflight"] + batch,
        "filling": bool(batch),
        "next_trial": state["next_trial"] + len(batch),
        "evals_left": state["evals_left"] - spent,
        "cycle_decided": state["cycle_decided"] + (spent - len(batch)),
        "pending": [],
    }


async def collect(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["research", "collect", "__end__"]]:
    """Fill free slots first; once none is worth filling, wait for the oldest trial in flight
    and decide it with the `accept` hook. End the cycle after `cycle` x W decisions."""
    slots = await Slots.open(runtime, state)
    run_dir, config = state["run_dir"], slots.config
    ensure_running(slots.context, slots.ledger, run_dir, config, state["inflight"])
    update: dict[str, Any] = {"iteration": state["iteration"] + 1, "filling": False}
    if state["filling"] and free_slots(state) > 0:
        return Command(update=update, goto="research")
    incumbent = dict(state["incumbent"])
    inflight = list(state["inflight"])
    if inflight:
        a = inflight.pop(0)
        trial = await finish(slots.context, slots.ledger, run_dir, config, a)
        view = {k: trial[k] for k in ("trial", "config", "changes", "metric", "status")}
        ctx = await slots.ctx(incumbent=incumbent, before=a["trial"])
        keep = await slots.call("accept", [view, ctx], key=f"accept:{a['trial']}")
        if keep:
            incumbent = {"config": trial["config"], "metric": trial["metric"], "trial": a["trial"]}
        await slots.ledger.set_accepted(a["trial"], keep, incumbent["metric"])
        await asyncio.to_thread(write_results, slots.ledger.sync)
        update["cycle_decided"] = state["cycle_decided"] + 1
    decided = update.get("cycle_decided", state["cycle_decided"])
    slots.context.report(
        {
            "event": "iteration",
            "iteration": state["iteration"] + 1,
            "cycle": slots.cycle,
            "incumbent": incumbent["metric"],
            "evals_left": state["evals_left"] + len(inflight),
            "mechanism": slots.mechanism["id"],
        }
    )
    update.update({"mechanism": slots.mechanism, "incumbent": incumbent, "inflight": inflight})
    run_over = state["evals_left"] <= 0 and not inflight
    if run_over or decided >= config.cycle * config.slots:
        goto = END
    else:
        goto = "research" if state["evals_left"] > 0 else "collect"
    return Command(update=update, goto=goto)


def start(state: BilevelState) -> Literal["research", "collect"]:
    """A cycle begins by filling free slots, or, with none free, by waiting for the oldest."""
    return "research" if free_slots(state) > 0 else "collect"


def build_inner_graph() -> StateGraph:
    builder = StateGraph(BilevelState, context_schema=Context)
    builder.add_node("research", research)
    builder.add_node("review_select", review_select)
    builder.add_node("collect", collect)
    builder.add_conditional_edges(START, start)
    builder.add_edge("research", "review_select")
    builder.add_edge("review_select", "collect")
    return builder
