"""Run helpers: a bilevel run in a run directory, checkpointed to SQLite, resumable after a kill."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph

from bilevel.config import RunConfig
from bilevel.graphs.context import Context, ProgressFn
from bilevel.graphs.outer import build_bilevel_graph
from bilevel.graphs.setup import claim_run_dir
from bilevel.ledger import LEDGER_FILE, Ledger
from bilevel.objectives import make_objective
from bilevel.report import open_ledger, summary_of
from bilevel.sandbox.pool import SandboxPool

CHECKPOINT_FILE = "checkpoints.sqlite"
THREAD_ID = "run"


def build_graph(checkpointer: Any = None) -> CompiledStateGraph:
    """The compiled bilevel graph. Input: RunConfig fields plus run_dir; context: a Context."""
    return build_bilevel_graph().compile(checkpointer=checkpointer, name="bilevel")


def default_run_dir(config: RunConfig) -> Path:
    slug = config.objective.replace(":", "-")
    return Path("runs") / f"{config.arm}-{slug}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def graph_config(config: RunConfig) -> dict[str, Any]:
    steps = 8 * (config.iterations + config.cycles) + 100  # supersteps per iteration, with margin
    return {"configurable": {"thread_id": THREAD_ID}, "recursion_limit": steps}


async def arun(
    config: RunConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: ProgressFn | None = None,
    pool: SandboxPool | None = None,
) -> dict[str, Any]:
    """Run (or resume) to completion and return the summary that `bilevel show --json` prints."""
    make_objective(config.objective, **config.objective_options)  # fail fast on a bad name
    run_dir = Path(run_dir or default_run_dir(config)).resolve()
    ledger = Ledger(run_dir / LEDGER_FILE)
    claim_run_dir(ledger, config)  # before any work: refuse another run's directory
    own_pool = pool is None
    pool = pool or SandboxPool()
    context = Context(pool=pool, progress=progress, ledgers={str(run_dir): ledger})
    try:
        await pool.start()
        async with AsyncSqliteSaver.from_conn_string(str(run_dir / CHECKPOINT_FILE)) as saver:
            graph = build_graph(saver)
            cfg = graph_config(config)
            # durability="sync": each step's checkpoint is on disk before the next step starts,
            # so a SIGKILL resumes mid-cycle instead of replaying the cycle (and its LLM calls).
            snapshot = await graph.aget_state(cfg)
            if resume and snapshot.values and not snapshot.next:
                pass  # finished already
            elif resume and snapshot.values:
                await graph.ainvoke(None, cfg, context=context, durability="sync")
            else:
                payload = {**config.model_dump(), "run_dir": str(run_dir)}
                await graph.ainvoke(payload, cfg, context=context, durability="sync")
        ledger.set_meta("finished", True)
        return summary_of(ledger)
    finally:
        context.close()
        if own_pool:
            await pool.close()


async def aresume(run_dir: str | Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    ledger = open_ledger(run_dir)
    try:
        config = RunConfig(**ledger.get_meta("config"))
    finally:
        ledger.close()
    return await arun(config, run_dir, resume=True, progress=progress)


def run(config: RunConfig, run_dir: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(arun(config, run_dir, **kwargs))
