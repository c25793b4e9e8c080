"""The outer (bilevel) loop.

setup -> run_inner -> assess -> meta_research -> validate -> adopt/revert -> run_inner ...

A new mechanism goes on probation for one cycle; `assess` then adopts it if that cycle was not
worse than the one before (it improved the incumbent, or improved at least as much as the
previous cycle), and otherwise restores its parent. Every decision lands in the ledger.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from bilevel.agents import meta_researcher
from bilevel.config import InnerParams, RunConfig
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.inner import build_inner_graph, run_trial
from bilevel.graphs.slots import hook_ctx
from bilevel.graphs.state import BilevelState, InputState, Mechanism, OutputState
from bilevel.ledger import Ledger
from bilevel.results import write_results
from bilevel.sandbox.validation import validate_mechanism

META_ARMS = ("params", "mechanism", "full")


class RunDirConflict(ValueError):
    """The run directory holds a different run."""


def default_mechanism() -> Mechanism:
    return {
        "id": "default",
        "name": "default",
        "source": meta_researcher.default_source(),
        "hooks": [],
        "memory": {},
        "parent": None,
        "status": "default",
    }


def claim_run_dir(ledger: Ledger, config: RunConfig) -> None:
    """Record the run's config in its ledger, or refuse a directory that holds another run."""
    mine = config.model_dump()
    theirs = ledger.get_meta("config")
    if theirs is None:
        ledger.set_meta("config", mine)
    elif theirs != mine:
        raise RunDirConflict(
            f"run dir {ledger.path.parent} belongs to another run "
            f"(objective {theirs['objective']}, arm {theirs['arm']}, seed {theirs['seed']}): "
            "resume it with `bilevel resume` or choose another --run-dir"
        )


async def setup(
    state: InputState, runtime: Runtime[Context], config: RunnableConfig
) -> dict[str, Any]:
    """Validate the config, claim the run dir, install the first mechanism, run the baseline."""
    context = context_of(runtime)
    fields = {k: v for k, v in state.items() if k in RunConfig.model_fields and v is not None}
    run_config = RunConfig(**fields)
    thread = (config.get("configurable") or {}).get("thread_id", "default")
    run_dir = str(Path(state.get("run_dir") or Path("runs") / str(thread)).resolve())
    ledger = context.ledger(run_dir)
    claim_run_dir(ledger, run_config)
    cfg = run_config.model_dump()
    objective = context.objective(cfg)
    mechanism = default_mechanism()
    ledger.add_mechanism(mechanism_row(mechanism, "builtin", 0, "", {}, None))
    if run_config.mechanism_source:
        mechanism = await install_user_mechanism(context, ledger, run_config.mechanism_source)
    context.report({"event": "setup", "run_dir": run_dir, "total": run_config.evaluations})
    defaults = objective.space.defaults()
    base_assignment = {
        "trial": 0,
        "config": defaults,
        "changes": {},
        "source": "baseline",
        "description": "baseline",
    }
    partial = {"run_dir": run_dir, "config": cfg, "trace": 0, "cycle_index": 0, "iteration": 0}
    trial = await run_trial(context, partial, base_assignment, defaults, mechanism["id"])
    ledger.set_accepted(0, True, trial["metric"])
    write_results(run_dir, ledger)
    point = {"config": defaults, "metric": trial["metric"], "trial": 0}
    return {
        **partial,
        "next_trial": 1,
        "cycle_iteration": 0,
        "evals_left": run_config.iterations * run_config.slots,
        "baseline": point,
        "incumbent": point,
        "cycle_start_metric": trial["metric"],
        "mechanism": mechanism,
        "previous_mechanism": None,
        "candidate_mechanism": None,
        "inner_params": InnerParams().model_dump(),
        "meta_memory": {},
        "assessment": {},
        "done": False,
    }


async def install_user_mechanism(context: Context, ledger: Ledger, source: str) -> Mechanism:
    """`--mechanism FILE`: validated like generated code; the default stays if it is rejected."""
    report = await validate_mechanism(await context.sandbox(), source)
    mech: Mechanism = {
        "id": "user",
        "name": "user",
        "source": source,
        "hooks": report.hooks,
        "memory": {},
        "parent": "default",
        "status": "installed",
    }
    status = "installed" if report.ok else "rejected"
    ledger.add_mechanism(
        mechanism_row(
            {**mech, "status": status},
            "file",
            0,
            meta_researcher.diff("", source, "default", "user"),
            {},
            report.to_json(),
        )
    )
    return mech if report.ok else default_mechanism()


def mechanism_row(
    mech: Mechanism,
    origin: str,
    cycle: int,
    diff: str,
    params: dict[str, Any],
    validation: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": mech["id"],
        "name": mech["name"],
        "origin": origin,
        "parent": mech["parent"],
        "cycle": cycle,
        "source": mech["source"],
        "diff": diff,
        "params": params,
        "validation": validation,
        "status": mech["status"],
        "effect": None,
    }


def improvement(start: float | None, end: float | None, direction: str) -> float:
    """How much better end is than start (positive = better)."""
    if end is None:
        return 0.0
    if start is None:
        return abs(end) or 1.0
    return start - end if direction == "minimize" else end - start


def assess_cycle(
    state: BilevelState, ledger: Ledger, direction: str, names: list[str]
) -> dict[str, Any]:
    """Per-cycle improvement, accept rate, repeats, fixation, untouched parameters, hook calls."""
    cycle = state["cycle_index"]
    trace = ledger.trials(trace=state["trace"])
    trials = [t for t in trace if t["cycle"] == cycle and t["trial"] > 0]
    before = {
        repr(sorted(t["config"].items())) for t in trace if t["cycle"] < cycle or t["trial"] == 0
    }
    repeats, seen = 0, set(before)
    for t in trials:
        key = repr(sorted(t["config"].items()))
        repeats += key in seen
        seen.add(key)
    changed = Counter(n for t in trials for n in t["changes"])
    effects: dict[str, list[float]] = {}
    before_metric = None
    for t in trace:  # |metric - incumbent's metric when proposed|, per changed parameter
        if t["cycle"] == cycle and t["status"] == "ok" and before_metric is not None:
            for n in t["changes"]:
                effects.setdefault(n, []).append(abs(t["metric"] - before_metric))
        before_metric = (
            t["incumbent_metric"] if t["incumbent_metric"] is not None else before_metric
        )
    gained = {n for t in trials if t["accepted"] for n in t["changes"]}
    touched = {n for t in trace for n in t["changes"]}
    frozen = set(state["inner_params"]["frozen"])
    calls = ledger.query(
        "SELECT hook, COUNT(*) AS n, SUM(changed) AS changed FROM hook_calls "
        "WHERE cycle = ? GROUP BY hook",
        (cycle,),
    )
    return {
        "cycle": cycle,
        "trials": len(trials),
        "accepted": sum(bool(t["accepted"]) for t in trials),
        "improvement": improvement(
            state["cycle_start_metric"], state["incumbent"]["metric"], direction
        ),
        "repeat_rate": repeats / len(trials) if trials else 0.0,
        "fixation": max(changed.values()) / sum(changed.values()) if changed else 0.0,
        "untouched": [n for n in names if n not in touched and n not in frozen],
        "changed_without_gain": [n for n, c in changed.most_common() if c >= 2 and n not in gained],
        "changed": dict(changed),
        "sensitivity": {n: sum(v) / len(v) for n, v in sorted(effects.items())},
        "metric": state["incumbent"]["metric"],
        "hook_calls": {r["hook"]: {"calls": r["n"], "changed": r["changed"] or 0} for r in calls},
    }


async def assess(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["run_inner", "meta_research", "__end__"]]:
    context = context_of(runtime)
    ledger, objective = context.ledger(state["run_dir"]), context.objective(state["config"])
    cfg, cycle = state["config"], state["cycle_index"]
    stats = assess_cycle(state, ledger, objective.direction, objective.space.names)
    mech = copy.deepcopy(state["mechanism"])
    update: dict[str, Any] = {"assessment": stats}
    decision = None
    if mech["status"] == "probation":
        prev = next((c["improvement"] for c in ledger.cycles() if c["cycle"] == cycle - 1), 0.0)
        gain = stats["improvement"]
        adopted = gain > 0 or gain >= prev
        decision = (
            f"{'adopt' if adopted else 'revert'} {mech['id']}: improvement {gain:.6g} "
            f"vs previous cycle {prev:.6g}"
        )
        effect = {"cycle": cycle, "improvement": gain, "previous_improvement": prev}
        ledger.set_mechanism_status(mech["id"], "adopted" if adopted else "reverted", effect)
        memory = copy.deepcopy(state["meta_memory"])
        scale = abs(state["baseline"]["metric"] or 1.0) or 1.0
        meta_researcher.credit(
            memory, mech["name"], memory.get("params", {}).get(mech["id"], {}), 100.0 * gain / scale
        )
        update["meta_memory"] = memory
        if adopted:
            update["mechanism"] = {**mech, "status": "adopted"}
        else:
            update["mechanism"] = state["previous_mechanism"] or default_mechanism()
        update["previous_mechanism"] = None
    ledger.add_cycle(
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
            "cycle_iteration": 0,
            "cycle_start_metric": state["incumbent"]["metric"],
        }
    )
    if state["evals_left"] <= 0 or state["iteration"] >= cfg["iterations"]:
        write_results(state["run_dir"], ledger)
        return Command(update={**update, "done": True}, goto=END)
    if cfg["arm"] == "restart":
        update["trace"] = state["trace"] + 1  # a fresh history, the best config kept
        update["inner_params"] = InnerParams().model_dump()
    if cfg["arm"] in META_ARMS:
        return Command(update=update, goto="meta_research")
    return Command(update=update, goto="run_inner")


async def meta_research(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["validate", "run_inner"]]:
    """params: adjust the inner loop's knobs; mechanism: pick and parameterise a new mechanism."""
    context = context_of(runtime)
    ledger, objective = context.ledger(state["run_dir"]), context.objective(state["config"])
    cfg, cycle, stats = state["config"], state["cycle_index"], state["assessment"]
    update: dict[str, Any] = {}
    if cfg["arm"] in ("params", "full"):
        update["inner_params"] = meta_researcher.adjust_params(
            state["inner_params"], stats, objective.space.names
        )
        ledger.add_note(
            f"params:{cycle}", cycle, state["iteration"], "inner_params", update["inner_params"]
        )
    if cfg["arm"] in ("mechanism", "full"):
        memory = copy.deepcopy(state["meta_memory"])
        current = state["mechanism"]
        choice = meta_researcher.choose_mechanism(
            stats, memory, current["name"], seed=f"{cfg['seed']}:meta:{cycle}"
        )
        if choice is not None:
            name, values, source = choice
            cand: Mechanism = {
                "id": f"c{cycle}-{name}",
                "name": name,
                "source": source,
                "hooks": [],
                "memory": {},
                "parent": current["id"],
                "status": "candidate",
            }
            memory.setdefault("params", {})[cand["id"]] = values
            ledger.add_mechanism(
                mechanism_row(
                    cand,
                    "library",
                    cycle,
                    meta_researcher.diff(current["source"], source, current["id"], cand["id"]),
                    values,
                    None,
                )
            )
            update.update({"candidate_mechanism": cand, "meta_memory": memory})
            return Command(update=update, goto="validate")
    return Command(update=update, goto="run_inner")


async def validate(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["adopt", "revert"]]:
    """The candidate runs every hook on recorded and synthetic contexts in the sandbox."""
    context = context_of(runtime)
    ledger, objective = context.ledger(state["run_dir"]), context.objective(state["config"])
    cand = dict(state["candidate_mechanism"])  # type: ignore[arg-type]
    recorded = hook_ctx(state, objective, ledger)
    report = await validate_mechanism(
        await context.sandbox(),
        cand["source"],
        contexts=[recorded],
        timeout_s=state["config"]["hook_timeout_s"],
    )
    ledger.set_validation(cand["id"], "validated" if report.ok else "rejected", report.to_json())
    cand["hooks"] = report.hooks
    return Command(update={"candidate_mechanism": cand}, goto="adopt" if report.ok else "revert")


async def adopt(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Install the validated candidate on probation; its parent is kept to revert to."""
    ledger = context_of(runtime).ledger(state["run_dir"])
    cand = {**state["candidate_mechanism"], "status": "probation"}  # type: ignore[dict-item]
    ledger.set_mechanism_status(cand["id"], "probation")
    return {
        "previous_mechanism": state["mechanism"],
        "mechanism": cand,
        "candidate_mechanism": None,
    }


async def revert(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """The candidate failed validation: it never reaches the inner loop; the current one stays."""
    return {"candidate_mechanism": None}


def build_bilevel_graph() -> StateGraph:
    builder = StateGraph(
        BilevelState, input_schema=InputState, output_schema=OutputState, context_schema=Context
    )
    builder.add_node("setup", setup)
    builder.add_node("run_inner", build_inner_graph().compile())
    builder.add_node("assess", assess)
    builder.add_node("meta_research", meta_research)
    builder.add_node("validate", validate)
    builder.add_node("adopt", adopt)
    builder.add_node("revert", revert)
    builder.add_edge(START, "setup")
    builder.add_edge("setup", "run_inner")
    builder.add_edge("run_inner", "assess")
    builder.add_edge("adopt", "run_inner")
    builder.add_edge("revert", "run_inner")
    return builder
