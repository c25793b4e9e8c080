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

from bilevel.agents import classical, code_edits, fallback, llm_researcher, researcher
from bilevel.agents.roles import Researcher, ResearchRequest
from bilevel.config import RunConfig
from bilevel.contract import patch_view
from bilevel.graphs.context import Context
from bilevel.graphs.node_run import NodeRun, free_evaluations
from bilevel.graphs.setup import labels
from bilevel.graphs.state import Assignment, InnerState, decided_before, run_config
from bilevel.graphs.trials import ensure_running, finish
from bilevel.objectives import SearchSpace, SpaceError
from bilevel.store.results import write_results
from bilevel.store.sources import (
    ORIGINAL_KEY,
    files_of,
    new_version,
    record_incumbent_source,
)


def check_candidate(
    space: SearchSpace, cand: dict[str, Any], incumbent: dict[str, Any]
) -> dict[str, Any] | str:
    """The candidate with its changes validated (numbers clipped), or why it is rejected."""
    try:
        changes = space.validate_changes(cand["changes"], repair=True)
    except SpaceError as exc:
        return str(exc)
    changes = {k: v for k, v in changes.items() if v != incumbent[k]}
    if not changes and not cand.get("patch"):
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
        if config.code_edits:
            return code_edits.CodeEditResearcher(llm, labels(config)["researcher"])
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
        history=[],
        params=state["inner_params"],
        advice=advice,
        seed=f"{config.seed}:{state['iteration']}",
        running=[a["config"] for a in state["inflight"]],
        free_evaluations=free_evaluations(state),
        evaluated=await run.trial_history.evaluated_before(
            run.ledger, before, state["incumbent"].get("code")
        ),
        code=await code_context(run, state, request_history := await run.history(before)),
    )
    request.history = request_history
    if config.spec.proposer != "researcher":
        request.sampler_state = await read_sampler_state(run.ledger)
    own = await (await researcher_for(run, config)).propose(request)
    for i, (kind, detail) in enumerate(request.notes):
        if kind == "sampler_state":  # CMA-ES's optimizer is kilobytes: a blob, by reference
            blob = await run.ledger.put_blob(json.dumps(detail.pop("attrs"), sort_keys=True))
            detail = {**detail, "blob": blob}
        if kind == "patch_rejected":  # the patch whole, by reference (notes are bounded)
            detail = {**detail, "patch": await run.ledger.put_blob(detail["patch"])}
        key = f"{run.iteration}:{kind}" + (f":{i}" if i else "")
        await run.ledger.add_note(key, run.cycle, run.iteration, kind, detail)
    own = [await stash_patch(run, cand) for cand in own]
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
    running = {researcher.trial_key(a["config"], a.get("code")) for a in state["inflight"]}
    incumbent_code = state["incumbent"].get("code")
    space = run.objective.space

    def unusable(value: Any) -> str | None:  # out-of-space review output falls back
        checked = None if value is None else check_candidate(space, value, incumbent)
        return checked if isinstance(checked, str) else None

    history = run.trial_history
    reviewed = []
    for i, cand in enumerate(state["pending"]):
        out = await run.call("review", [cand, ctx], key=f"review:{i}", check=unusable)
        out = carry_patch(cand, out)
        if out is None:
            await run.ledger.add_note(
                f"{it}:veto:{i}", run.cycle, it, "vetoed", {"candidate": cand}
            )
        else:
            reviewed.append(out)
    fresh = []
    for i, c in enumerate(await keep_valid(run, reviewed, "review")):
        config = {**incumbent, **c["changes"]}
        code = c["patch"]["code"] if c.get("patch") else incumbent_code
        if researcher.trial_key(config, code) in running:
            continue
        seen = await history.evaluated(run.ledger, config, decided_before(state), code)
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
        await history.evaluated_before(run.ledger, decided_before(state), incumbent_code),
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
                    "description": describe(cand, incumbent),
                    "base": incumbent,
                    "mechanism": run.mechanism["id"],
                    "trace": state["trace"],
                    "cycle": run.cycle,
                    "iteration": it,
                    "code": cand["patch"]["code"] if cand.get("patch") else incumbent_code,
                    "patch": cand.get("patch"),
                    "hypothesis": str(cand.get("hypothesis") or "")[:1000],
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
        if trial.get("patch"):
            view["patch"] = patch_view(trial["patch"])
        decider = run.for_trial(a["mechanism"])  # the proposer's accept decides its trial
        ctx = await decider.ctx(incumbent=incumbent, before=a["trial"])
        keep = await decider.call("accept", [view, ctx], key=f"accept:{a['trial']}")
        update.update(decider.update())
        if keep:
            if trial.get("code") != incumbent.get("code"):  # the code changed: say how
                key = f"trial:{a['trial']}:incumbent_source"
                await asyncio.to_thread(record_incumbent_source, run.ledger.sync, trial, key)
            incumbent = {
                "config": trial["config"],
                "metric": trial["metric"],
                "trial": a["trial"],
                "code": trial.get("code"),
            }
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


async def code_context(
    run: NodeRun, state: InnerState, history: list[dict[str, Any]]
) -> code_edits.CodeContext | None:
    """What a --code-edits step patches: the incumbent's source, or the source of the patched
    trial that just crashed (one fix each, as a new trial linked to it)."""
    if not run.config.code_edits:
        return None
    code, repair = state["incumbent"].get("code"), None
    last = history[-1] if history else None
    fixing = {(a.get("patch") or {}).get("repair_of") for a in state["inflight"]}
    if (
        last is not None
        and last.get("patch")
        and last["status"] != "ok"
        and last["patch"]["repair_of"] is None
        and last["trial"] not in fixing
    ):
        incumbent = state["incumbent"]["config"]
        code = last["code"]
        repair = {
            "trial": last["trial"],
            "diff": await run.ledger.blob(last["patch"]["diff"]),
            "log_tail": last["log_tail"],
            "changes": {k: v for k, v in last["config"].items() if v != incumbent.get(k)},
        }
    files = await asyncio.to_thread(files_of, run.ledger.sync, code)
    return code_edits.CodeContext(files, code, sorted(files), repair)


async def stash_patch(run: NodeRun, cand: dict[str, Any]) -> dict[str, Any]:
    """A candidate's patched files stored as a source version; the candidate carries the
    version's patch record instead (small, by reference: state and ctx stay small)."""
    if "files" not in cand:
        return cand
    edit = cand.pop("files")
    record = await asyncio.to_thread(
        new_version, run.ledger.sync, edit["base_code"], edit["files"], edit["repair_of"]
    )
    original = await run.ledger.get_meta(ORIGINAL_KEY)
    return {**cand, "patch": None if record["code"] == original else record}


def carry_patch(cand: dict[str, Any], out: dict[str, Any] | None) -> dict[str, Any] | None:
    """review's output with the candidate's own patch if the hook returned it unchanged: a hook
    may drop a patch (keeping the changes), never alter or forge one."""
    if out is None:
        return None
    mine = cand.get("patch")
    kept = mine is not None and out.get("patch") == mine
    return {**{k: v for k, v in out.items() if k != "patch"}, **({"patch": mine} if kept else {})}


def describe(cand: dict[str, Any], incumbent: dict[str, Any]) -> str:
    """The trial's description: its changes, and its patch's summary."""
    parts = [researcher.describe(cand["changes"], incumbent)]
    if cand.get("patch"):
        parts.append(f"patch {cand['patch']['summary']}")
    return "; ".join(p for p in parts if p)


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
