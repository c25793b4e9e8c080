"""Trials in flight: evaluations run as background tasks on the context's executor, so up to
W of them run while the graph goes on proposing; each writes its ledger row when it finishes.

The graph state lists the assignments in flight (a checkpoint holds them); the tasks live in the
runtime context. After a resume the tasks are gone, so `ensure_running` starts again every
assignment in flight that the ledger does not yet hold: a finished trial is never evaluated twice,
an unfinished one is never lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bilevel.config import RunConfig
from bilevel.execution.evaluator import eval_seed
from bilevel.execution.executor import EvalRequest
from bilevel.graphs.context import Context
from bilevel.graphs.state import Assignment
from bilevel.store.ledger import AsyncLedger
from bilevel.store.sources import files_of


async def run_trial(
    context: Context, ledger: AsyncLedger, config: RunConfig, a: Assignment
) -> dict[str, Any]:
    """Evaluate assignment a and append it to the ledger, once: the ledger row is the result."""
    done = await ledger.trial(a["trial"])
    if done is not None:
        if done["config"] != a["config"]:  # the checkpoint and the ledger disagree: never guess
            raise RuntimeError(f"trial {a['trial']} in the ledger differs from its assignment")
        return done
    options = config.objective_options
    if a.get("code") is not None:  # a code edit's source, over the copy, jailed
        files = await asyncio.to_thread(files_of, ledger.sync, a["code"])
        jail = bool(options.get("jail")) or config.jail_edits
        options = {**options, "files": files, "jail": jail}
    request = EvalRequest(
        objective=config.objective,
        options=options,
        config=a["config"],
        seed=eval_seed(
            config.seed, a["trial"], config.seed_per_trial or a["source"] == "baseline-repeat"
        ),
        timeout_s=config.eval_timeout_s,
        trial=a["trial"],
    )
    executor = await context.get_executor()
    ev = await executor.evaluate(request)
    for n, why in enumerate(ev.lost):  # a lost worker is retried, and said so in the ledger
        await ledger.add_note(
            f"trial:{a['trial']}:lost:{n}",
            a["cycle"],
            a["iteration"],
            "worker_lost",
            {"trial": a["trial"], "attempt": n + 1, "error": why},
        )
    result = ev.result
    await ledger.add_trial(
        {
            "trial": a["trial"],
            "trace": a["trace"],
            "cycle": a["cycle"],
            "iteration": a["iteration"],
            "config": a["config"],
            "changes": a["changes"],
            "base": a["base"],
            "source": a["source"],
            "description": a["description"],
            "mechanism": a["mechanism"],
            "metric": result.metric,
            "status": result.status,
            "seconds": round(result.seconds, 6),
            "started": ev.started,
            "finished": ev.finished,
            "worker": ev.where,
            "extra": result.extra,
            "log_tail": result.log_tail[-2000:],
            "accepted": None,
            "incumbent_metric": None,
            "code": a.get("code"),
            "patch": a.get("patch"),
            "hypothesis": a.get("hypothesis", ""),
        }
    )
    context.report(
        {
            "event": "trial",
            "trial": a["trial"],
            "metric": result.metric,
            "status": result.status,
            "warnings": result.extra.get("warnings", []),
        }
    )
    return await ledger.trial(a["trial"])  # type: ignore[return-value]


def ensure_running(
    context: Context, ledger: AsyncLedger, run_dir: str, config: RunConfig, inflight: list
) -> None:
    """A task for every assignment in flight (started now if this process has none)."""
    for a in inflight:
        key = (run_dir, a["trial"])
        if key not in context.evaluations:
            task = asyncio.ensure_future(run_trial(context, ledger, config, a))
            context.evaluations[key] = task


async def finish(
    context: Context, ledger: AsyncLedger, run_dir: str, config: RunConfig, a: Assignment
) -> dict[str, Any]:
    """Wait for assignment a's evaluation; its ledger row."""
    ensure_running(context, ledger, run_dir, config, [a])
    task = context.evaluations[(run_dir, a["trial"])]
    try:
        return await asyncio.shield(task)
    finally:
        if task.done():
            context.evaluations.pop((run_dir, a["trial"]), None)
