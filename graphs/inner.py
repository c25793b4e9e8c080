"""The inner loop: research -> review_select -> collect, for one cycle, with W parallel evaluations.

research proposes for the free evaluations, review_select assigns trials to them (their evaluations
start in the background, graphs/trials.py), and collect decides the oldest trial in flight with
the `accept` hook, then frees its place. So the researcher works while other trials evaluate, and
the trial order and incumbent updates depend only on the seed and W, never on which evaluation
happened to finish first: trial n is always proposed from the decisions on trials up to n - W.
With W = 1 this is the plain loop: propose, evaluate, accept.

Each slot node dispatches to the mechanism held in state (graphs/node_run.py). Trials are written
to the ledger under ids assigned before evaluation, so a resumed run re-uses finished trials.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from bilevel.agents import classical, fallback, llm_researcher, researcher
from bilevel.agents.roles import Researcher, ResearchRequest
from bilevel.config import RunConfig
from bilevel.graphs.context import Context
from bilevel.graphs.node_run import NodeRun, free_evaluations
from bilevel.graphs.setup import labels
from bilevel.graphs.state import Assignment, InnerState, decided_before, run_config
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
    run: NodeRun, candidates: list[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    """Candidates inside the space; the others are recorded with their reason, never evaluated."""
    out = []
    for i, cand in enumerate(candidates):
        checked = check_candidate(run.objective.space, cand, run.state["incumbent"]["config"])
        if isinstance(checked, str):
            await run.ledger.add_note(
                f"{run.iteration}:{key}:{i}",
                run.cycle,
                run.iteration,
                "rejected_candidate",
                {"candidate": cand, "reason": checked},
            )
        else:
            out.append(checked)
    return out


async def researcher_for(run: NodeRun, config: RunConfig) -> Researcher:
    """Who proposes: the arm's Optuna sampler, else --researcher (before --llm: the arm says)."""
    proposer = config.spec.proposer
    if proposer != "researcher":
        return classical.OptunaResearcher(proposer)
    if config.researcher == "llm":
        llm = await run.context.llm(
            "researcher", config.llm, run.ledger, run.cycle, run.iteration, "research"
        )
        return llm_researcher.LLMResearcher(llm, labels(config)["researcher"])
    return researcher.PriorResearcher()


async def read_sampler_state(ledger: Any) -> dict[str, dict[str, Any]]:
    """What an Optuna sampler attached to each config it proposed (agents/classical.py)."""
    rows = await ledger.query("SELECT detail FROM notes WHERE kind = 'sampler_state'")
    out = {}
    for row in rows:
        detail = json.loads(row["detail"])
        out[researcher.canonical(detail["config"])] = json.loads(await ledger.blob(detail["blob"]))
    return out


async def research(state: InnerState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The tool slot's `advise` and `propose`, then the researcher's own proposals."""
    run = await NodeRun.open(runtime, state)
    ctx = await run.ctx()
    advice = await run.call("advise", [ctx], key="advise")
    proposed = await run.call("propose", [ctx], key="propose")
    config, before = run_config(state), decided_before(state)
    request = ResearchRequest(
        objective=run.objective,
        incumbent=state["incumbent"],  # type: ignore[arg-type]
        history=await run.history(before),
        params=state["inner_params"],
        advice=advice,
        seed=f"{config.seed}:{state['iteration']}",
        running=[a["config"] for a in state["inflight"]],
        free_evaluations=free_evaluations(state),
        evaluated=await run.trial_history.evaluated_before(run.ledger, before),
    )
    if config.spec.proposer != "researcher":
        request.sampler_state = await read_sampler_state(run.ledger)
    own = await (await researcher_for(run, config)).propose(request)
    for i, (kind, detail) in enumerate(request.notes):
        if kind == "sampler_state":  # CMA-ES's optimizer is kilobytes: a blob, by reference
            blob = await run.ledger.put_blob(json.dumps(detail.pop("attrs"), sort_keys=True))
            detail = {**detail, "blob": blob}
        key = f"{run.iteration}:{kind}" + (f":{i}" if i else "")
        await run.ledger.add_note(key, run.cycle, run.iteration, kind, detail)
    source = f"mechanism:{run.mechanism['id']}"
    mechanism_candidates = [{"changes": c, "source": source, "hypothesis": ""} for c in proposed]
    pending = await keep_valid(run, mechanism_candidates + own, "candidate")
    return {"pending": pending, "advice": advice, **run.update()}


async def review_select(state: InnerState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The selection slot's `review` (adjust or veto each candidate), then `select` fills free
    evaluations; the chosen trials' evaluations start in the background."""
    run = await NodeRun.open(runtime, state)
    ctx = await run.ctx()
    it, incumbent = state["iteration"], state["incumbent"]["config"]
    running = {researcher.canonical(a["config"]) for a in state["inflight"]}
    space = run.objective.space

    def unusable(value: Any) -> str | None:  # out-of-space review output falls back
        checked = None if value is None else check_candidate(space, value, incumbent)
        return checked if isinstance(checked, str) else None

    history = run.trial_history
    reviewed = []
    for i, cand in enumerate(state["pending"]):
        out = await run.call("review", [cand, ctx], key=f"review:{i}", check=unusable)
        if out is None:
            await run.ledger.add_note(
                f"{it}:veto:{i}", run.cycle, it, "vetoed", {"candidate": cand}
            )
        else:
            reviewed.append(out)
    fresh = []
    for i, c in enumerate(await keep_valid(run, reviewed, "review")):
        config = {**incumbent, **c["changes"]}
        if researcher.canonical(config) in running:
            continue
        seen = await history.evaluated(run.ledger, config, decided_before(state))
        if seen is not None:  # never evaluate a config twice: the ledger has its result
            await run.ledger.add_note(
                f"{it}:repeat:{i}", run.cycle, it, "repeated_config",
                {"changes": c["changes"], "source": c["source"], "trial": seen},
            )  # fmt: skip
            continue
        fresh.append(c)
    reviewed = fresh or fallback.propose(
        space,
        incumbent,
        state["inner_params"]["frozen"],
        max(1, free_evaluations(state)),
        f"{state['config']['seed']}:{it}",
        await history.evaluated_before(run.ledger, decided_before(state)),
        avoid=[a["config"] for a in state["inflight"]],
    )  # a step never passes without a trial while the space has something new to offer
    batch: list[Assignment] = []
    if reviewed:
        picks = await run.call("select", [reviewed, ctx], key="select")
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
                    "mechanism": run.mechanism["id"],
                    "trace": state["trace"],
                    "cycle": run.cycle,
                    "iteration": it,
                }
            )
    spent = len(batch)
    if not batch:
        await run.ledger.add_note(
            f"{it}:empty", run.cycle, it, "space_exhausted", {"pending": len(state["pending"])}
        )
        if not state["inflight"]:
            spent = 1  # nothing new anywhere and nothing running: the step costs an evaluation
    return {
        **run.update(),
        "inflight": state["inflight"] + batch,
        "filling": bool(batch),
        "next_trial": state["next_trial"] + len(batch),
        "evals_left": state["evals_left"] - spent,
        "cycle_decided": state["cycle_decided"] + (spent - len(batch)),
        "pending": [],
    }


async def collect(
    state: InnerState, runtime: Runtime[Context]
) -> Command[Literal["research", "collect", "__end__"]]:
    """Fill free evaluations first; once none is worth filling, wait for the oldest trial in flight
    and decide it with the `accept` hook. End the cycle after `cycle` x W decisions."""
    run = await NodeRun.open(runtime, state)
    run_dir, config = state["run_dir"], run.config
    ensure_running(run.context, run.ledger, run_dir, config, state["inflight"])
    update: dict[str, Any] = {"iteration": state["iteration"] + 1, "filling": False}
    if state["filling"] and free_evaluations(state) > 0:
        return Command(update=update, goto="research")
    incumbent = dict(state["incumbent"])
    inflight = list(state["inflight"])
    if inflight:
        a = inflight.pop(0)
        trial = await finish(run.context, run.ledger, run_dir, config, a)
        view = {k: trial[k] for k in ("trial", "config", "changes", "metric", "status")}
        decider = run.for_trial(a["mechanism"])  # the proposer's accept decides its trial
        ctx = await decider.ctx(incumbent=incumbent, before=a["trial"])
        keep = await decider.call("accept", [view, ctx], key=f"accept:{a['trial']}")
        update.update(decider.update())
        if keep:
            incumbent = {"config": trial["config"], "metric": trial["metric"], "trial": a["trial"]}
        await run.ledger.set_accepted(a["trial"], keep, incumbent["metric"])
        await asyncio.to_thread(write_results, run.ledger.sync)
        update["cycle_decided"] = state["cycle_decided"] + 1
    decided = update.get("cycle_decided", state["cycle_decided"])
    run.context.report(
        {
            "event": "iteration",
            "iteration": state["iteration"] + 1,
            "cycle": run.cycle,
            "incumbent": incumbent["metric"],
            "evals_left": state["evals_left"] + len(inflight),
            "mechanism": run.mechanism["id"],
        }
    )
    update.update({"incumbent": incumbent, "inflight": inflight})
    run_over = state["evals_left"] <= 0 and not inflight
    if run_over or decided >= config.cycle_length * config.parallel:
        goto = END
    else:
        goto = "research" if state["evals_left"] > 0 else "collect"
    return Command(update=update, goto=goto)


def start(state: InnerState) -> Literal["research", "collect"]:
    """A cycle begins by filling free evaluations, or, with none free, by waiting for the oldest."""
    return "research" if free_evaluations(state) > 0 else "collect"


def build_inner_graph(context_schema: type | None = Context) -> StateGraph:
    builder = StateGraph(InnerState, context_schema=context_schema)
    builder.add_node("research", research)
    builder.add_node("review_select", review_select)
    builder.add_node("collect", collect)
    builder.add_conditional_edges(START, start)
    builder.add_edge("research", "review_select")
    builder.add_edge("review_select", "collect")
    return builder
