"""Run helpers: a bilevel run in a run directory, checkpointed to SQLite, resumable after a kill."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from bilevel.agents import classical
from bilevel.config import RunConfig
from bilevel.execution.executor import Executor
from bilevel.graphs.context import ChatFactory, Context, ProgressFn
from bilevel.graphs.outer import build_bilevel_graph
from bilevel.library import open_library
from bilevel.objectives import make_objective
from bilevel.reporting.report import summary_of
from bilevel.reporting.results import write_best
from bilevel.sandbox.pool import SandboxPool
from bilevel.store.ledger import LEDGER_FILE, Ledger, open_ledger
from bilevel.store.rundir import RunDirLock, claim_run_dir

CHECKPOINT_FILE = "checkpoints.sqlite"


def build_graph(checkpointer: Any = None) -> CompiledStateGraph:
    """The compiled bilevel graph. Input: RunConfig fields plus run_dir; context: a Context."""
    return build_bilevel_graph().compile(checkpointer=checkpointer, name="bilevel")


def default_run_dir(config: RunConfig) -> Path:
    slug = config.objective.replace(":", "-")
    return Path("runs") / f"{config.arm}-{slug}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def graph_config(config: RunConfig, thread_id: str) -> dict[str, Any]:
    # supersteps: about 3 per trial and 6 per cycle, with margin
    steps = 8 * (config.evaluations + config.cycles) + 100
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": steps}


class CheckpointerError(ValueError):
    pass


@asynccontextmanager
async def open_checkpointer(url: str | None, run_dir: Path) -> AsyncIterator[Any]:
    """SQLite in the run directory by default; a shared PostgreSQL database with a URL."""
    if url is None:
        async with AsyncSqliteSaver.from_conn_string(str(run_dir / CHECKPOINT_FILE)) as saver:
            yield saver
        return
    if not url.startswith(("postgres://", "postgresql://")):
        raise CheckpointerError(
            f"--checkpointer {url!r} is not a postgres:// URL "
            "(leave it out for SQLite in the run directory)"
        )
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError:
        raise CheckpointerError(
            "a Postgres checkpointer needs the postgres extra: "
            "pip install 'bilevel-autoresearch[postgres]'"
        ) from None
    import psycopg

    async with AsyncExitStack() as stack:
        try:
            saver = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(url))
            await saver.setup()
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise CheckpointerError(f"cannot reach {redact(url)}: {reason}") from None
        yield saver


def redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


Approver = Callable[[dict[str, Any]], Awaitable[str]]


async def arun(
    config: RunConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: ProgressFn | bool | None = None,
    pool: SandboxPool | None = None,
    approver: Approver | None = None,
    chat_factory: ChatFactory | None = None,
    checkpointer: str | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run (or resume) to completion and return the summary that `bilevel show --json` prints.

    approver answers --approve's questions ("yes" adopts); without one every mechanism is declined.
    checkpointer: a postgres:// URL for a shared checkpoint store (default: SQLite in run_dir);
    it is not stored (it may hold a password), so a resume must pass it again.
    executor: where evaluations run (default: local processes; the caller closes its own).
    progress: a callback given each event (setup, trial, iteration, cycle) as a dict, or True for
    the CLI's live display on stderr.
    """
    if progress is True:
        from rich.console import Console

        from bilevel.progress import RunProgress

        with RunProgress(Console(stderr=True)) as display:
            return await arun(config, run_dir, resume=resume, progress=display.update, pool=pool,
                              approver=approver, chat_factory=chat_factory,
                              checkpointer=checkpointer, executor=executor)  # fmt: skip
    progress = progress or None
    objective = make_objective(config.objective, **config.objective_options)  # fail fast
    if config.spec.proposer != "researcher":
        classical.require()  # and on a missing Optuna, before the baseline is evaluated
    run_dir = Path(run_dir or default_run_dir(config)).resolve()
    lock = RunDirLock(run_dir).acquire()  # one process per run directory
    try:
        ledger = Ledger(run_dir / LEDGER_FILE)
    except BaseException:
        lock.release()
        raise
    try:
        claim_run_dir(ledger, config)  # before any work: refuse another run's directory
        thread_id = ledger.get_meta("thread_id") or f"bilevel-{uuid.uuid4().hex}"
        ledger.set_meta("thread_id", thread_id)
        kind = "sqlite" if checkpointer is None else "postgres"
        started_with = ledger.get_meta("checkpointer")
        if started_with not in (None, kind):
            raise CheckpointerError(
                f"this run checkpoints to {started_with}: resume it with the same --checkpointer"
            )
        ledger.set_meta("checkpointer", kind)
    except BaseException:
        ledger.close()
        lock.release()
        raise
    own_pool = pool is None
    pool = pool or SandboxPool()
    context = Context(
        pool=pool, progress=progress, ledgers={str(run_dir): ledger}, executor=executor
    )
    if chat_factory is not None:
        context.chat_factory = chat_factory
    try:
        await pool.start()
        async with open_checkpointer(checkpointer, run_dir) as saver:
            graph = build_graph(saver)
            cfg = graph_config(config, thread_id)
            snapshot = await graph.aget_state(cfg)
            recorded = (snapshot.values or {}).get("run_dir")
            if recorded and recorded != str(run_dir):  # moved or copied since it started
                context.relocated[recorded] = str(run_dir)
            if resume and ledger.get_meta("failed"):
                ledger.set_meta("failed", None)  # a resume tries again
            if not (resume and snapshot.values):
                step: Any = {**config.model_dump(), "run_dir": str(run_dir)}
            elif snapshot.interrupts:
                step = Command(resume=await ask(approver, snapshot.interrupts[0].value))
            else:
                step = None if snapshot.next else DONE
            while step is not DONE:
                # durability="sync": each step's checkpoint is on disk before the next starts,
                # so a SIGKILL resumes mid-cycle instead of replaying the cycle (and its LLM calls).
                await graph.ainvoke(step, cfg, context=context, durability="sync")
                snapshot = await graph.aget_state(cfg)
                step = (
                    Command(resume=await ask(approver, snapshot.interrupts[0].value))
                    if snapshot.interrupts
                    else DONE
                )
        ledger.set_meta("finished", True)
        record_in_library(ledger, objective.metric)
        summary = summary_of(ledger)
        write_best(run_dir, summary, config.objective_options)
        return summary
    except Exception as exc:  # not an interrupt: `bilevel list` shows the run as failed
        try:
            ledger.set_meta("failed", f"{type(exc).__name__}: {exc}"[:500])
        except Exception:  # e.g. the disk is full: the original error is what the user needs
            pass
        raise
    finally:
        await context.aclose()
        if own_pool:
            await pool.close()
        lock.release()


DONE = object()


def record_in_library(ledger: Ledger, metric: str) -> None:
    """A finished run's validated mechanisms go to the mechanism library (if it is on)."""
    library = open_library()
    if library is None:
        return
    try:
        library.record_run(ledger, metric)
    finally:
        library.close()


async def ask(approver: Approver | None, question: dict[str, Any]) -> str:
    return "no" if approver is None else await approver(question)


async def aresume(
    run_dir: str | Path,
    progress: ProgressFn | None = None,
    approver: Approver | None = None,
    checkpointer: str | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    ledger = open_ledger(run_dir)
    try:
        config = RunConfig(**ledger.get_meta("config"))
    finally:
        ledger.close()
    return await arun(
        config,
        run_dir,
        resume=True,
        progress=progress,
        approver=approver,
        checkpointer=checkpointer,
        executor=executor,
    )


def run(config: RunConfig, run_dir: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(arun(config, run_dir, **kwargs))
