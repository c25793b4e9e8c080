"""The inner loop: researcher -> review/select -> evaluate (fan-out) -> accept, for one cycle.

Each slot node dispatches to the mechanism held in state (graphs/slots.py). Trials are written
to the ledger under ids assigned before evaluation, so a resumed run re-uses finished trials.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from bilevel.agents import researcher
from bilevel.agents.evaluator import eval_seed, evaluate
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.slots import call_hook, hook_ctx
from bilevel.graphs.state import Assignment, BilevelState
from bilevel.objectives import SpaceError
from bilevel.results import write_results


def _where(state: BilevelState) -> tuple[int, int]:
    return state["cycle_index"], state["iteration"]


async def research(state: BilevelState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Researcher proposals plus the tool slot's `propose`, checked against the space."""
    context = context_of(runtime)
    ledger, objective = context.ledger(state["run_dir"]), context.objective(state["config"])
    cycle, it = _where(state)
    mech = copy.deepcopy(state["mechanism"])
    timeout = state["config"]["hook_timeout_s"]
    ctx = hook_ctx(state, objective, ledger)
    advice = await call_hook(
        context,
        ledger,
        mech,
        "advise",
        [ctx],
        key=f"{it}:advise",
        cycle=cycle,
        iteration=it,
        timeout_s=timeout,
    )
    proposed = await call_hook(
        context,
        ledger,
        mech,
        "propose",
        [hook_ctx(state, objective, ledger)],
        key=f"{it}:propose",
        cycle=cycle,
        iteration=it,
        timeout_s=timeout,
    )
    params = state["inner_params"]
    history = ledger.trials(trace=state["trace"])
    own = researcher.propose(
        objective.space,
        state["incumbent"]["config"],
        history,
        params["frozen"],
        params["temperature"],
        params["candidates"],
        seed=f"{state['config']['seed']}:{it}",
    )
    mech_candidates = [
        {"changes": c, "source": f"mechanism:{mech['id']}", "hypothesis": ""} for c in proposed
    ]
    pending = []
    for i, cand in enumerate(mech_candidates + own):
        checked = check_candidate(objective.space, cand, state["incumbent"]["config"])
        if isinstance(checked, str):
            ledger.add_note(
                f"{it}:candidate:{i}",
                cycle,
                it,
                "rejected_candidate",
                {"candidate": cand, "reason": checked},
            )
            continue
        pending.append(checked)
    return {"pending": pending, "mechanism": mech, "advice": advice}


def check_candidate(space: Any, cand: dict[str, Any], incumbent: dict[str, Any]) -> Any:
    """The candidate with its changes validated (numbers clipped), or the reason it is rejected."""
    try:
        changes = space.validate_changes(cand["changes"], repair=True)
    except SpaceError as exc:
        return str(exc)
    changes = {k: v for k, v in changes.items() if v != incumbent[k]}
    if not changes:
        return "no change from the incumbent"
    return {**cand, "changes": changes}


async def review_select(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["evaluate", "accept"]]:
    """The selection slot's `review` (adjust or veto each candidate), then `select`."""
    context = context_of(runtime)
    ledger, objective = context.ledger(state["run_dir"]), context.objective(state["config"])
    cycle, it = _where(state)
    mech = copy.deepcopy(state["mechanism"])
    timeout = state["config"]["hook_timeout_s"]
    incumbent = state["incumbent"]["config"]
    reviewed = []
    for i, cand in enumerate(state["pending"]):
        out = await call_hook(
            context,
            ledger,
            mech,
            "review",
            [cand, hook_ctx(state, objective, ledger)],
            key=f"{it}:review:{i}",
            cycle=cycle,
            iteration=it,
            timeout_s=timeout,
        )
        if out is None:
            ledger.add_note(f"{it}:veto:{i}", cycle, it, "vetoed", {"candidate": cand})
            continue
        checked = check_candidate(objective.space, out, incumbent)
        if isinstance(checked, str):
            ledger.add_note(
                f"{it}:review:{i}",
                cycle,
                it,
                "rejected_candidate",
                {"candidate": out, "reason": checked},
            )
            continue
        reviewed.append(checked)
    batch: list[Assignment] = []
    if reviewed:
        picks = await call_hook(
            context,
            ledger,
            mech,
            "select",
            [reviewed, hook_ctx(state, objective, ledger)],
            key=f"{it}:select",
            cycle=cycle,
            iteration=it,
            timeout_s=timeout,
        )
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
        ledger.add_note(
            f"{it}:empty", cycle, it, "no_candidates", {"pending": len(state["pending"])}
        )
    update = {"mechanism": mech, "batch": batch, "next_trial": state["next_trial"] + len(batch)}
    sends = [Send("evaluate", {**state, **update, "assignment": a}) for a in batch]
    return Command(update=update, goto=sends or "accept")


async def evaluate_trial(payload: dict[str, Any], runtime: Runtime[Context]) -> dict[str, Any]:
    """Evaluate one assignment unless the ledger already holds it (a resumed run)."""
    await run_trial(
        context_of(runtime),
        payload,
        payload["assignment"],
        base=payload["incumbent"]["config"],
        mechanism_id=payload["mechanism"]["id"],
    )
    return {}


async def run_trial(
    context: Context, state: dict[str, Any], a: Assignment, base: dict[str, Any], mechanism_id: str
) -> dict[str, Any]:
    """Evaluate assignment a and append it to the ledger, once: the ledger row is the result."""
    ledger = context.ledger(state["run_dir"])
    done = ledger.trial(a["trial"])
    if done is not None:
        return done
    config = state["config"]
    objective = context.objective(config)
    result = await evaluate(
        objective,
        a["config"],
        config.get("objective_options", {}),
        eval_seed(config["seed"], a["trial"]),
    )
    ledger.add_trial(
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
    return ledger.trial(a["trial"])  # type: ignore[return-value]


async def accept(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["research", "__end__"]]:
    """The selection slot's `accept`, trial by trial in id order; then loop or end the cycle."""
    context = context_of(runtime)
    ledger, objective = context.ledger(state["run_dir"]), context.objective(state["config"])
    cycle, it = _where(state)
    mech = copy.deepcopy(state["mechanism"])
    incumbent = dict(state["incumbent"])
    seen: list[dict[str, Any]] = []
    for a in sorted(state["batch"], key=lambda a: a["trial"]):
        trial = ledger.trial(a["trial"])
        assert trial is not None, f"trial {a['trial']} was not evaluated"
        view = {k: trial[k] for k in ("trial", "config", "changes", "metric", "status")}
        ctx = hook_ctx({**state, "incumbent": incumbent}, objective, ledger, extra_history=seen)
        keep = await call_hook(
            context,
            ledger,
            mech,
            "accept",
            [view, ctx],
            key=f"{it}:accept:{a['trial']}",
            cycle=cycle,
            iteration=it,
            timeout_s=state["config"]["hook_timeout_s"],
        )
        if keep:
            incumbent = {
                "config": trial["config"],
                "metric": trial["metric"],
                "trial": trial["trial"],
            }
        ledger.set_accepted(trial["trial"], keep, incumbent["metric"])
        seen.append({**view, "accepted": keep})
    write_results(state["run_dir"], ledger)
    evals_left = state["evals_left"] - len(state["batch"])
    cycle_iteration = state["cycle_iteration"] + 1
    context.report(
        {
            "event": "iteration",
            "iteration": it + 1,
            "cycle": cycle,
            "incumbent": incumbent["metric"],
            "evals_left": evals_left,
            "mechanism": mech["id"],
        }
    )
    update = {
        "mechanism": mech,
        "incumbent": incumbent,
        "evals_left": evals_left,
        "cycle_iteration": cycle_iteration,
        "iteration": it + 1,
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
