"""Runtime context: the non-serialisable things nodes need (not checkpointed).

Callers that manage their own resources (the CLI, tests) pass a `Context`; a server such as
`langgraph dev` passes none, and everything is built lazily from the run directory in state.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bilevel.ledger import LEDGER_FILE, AsyncLedger, Ledger
from bilevel.objectives import Objective, make_objective, registered
from bilevel.sandbox.pool import SandboxPool

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class Context:
    pool: SandboxPool | None = None
    progress: ProgressFn | None = None
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    objectives: dict[str, Objective] = field(default_factory=dict)

    async def aledger(self, run_dir: str) -> AsyncLedger:
        if run_dir not in self.ledgers:
            ledger = await asyncio.to_thread(Ledger, Path(run_dir) / LEDGER_FILE)
            self.ledgers.setdefault(run_dir, ledger)
        return AsyncLedger(self.ledgers[run_dir])

    def objective(self, config: dict[str, Any]) -> Objective:
        key = f"{config['objective']}:{sorted(config.get('objective_options', {}).items())}"
        if key not in self.objectives:
            self.objectives[key] = make_objective(
                config["objective"], **config.get("objective_options", {})
            )
        return self.objectives[key]

    async def sandbox(self) -> SandboxPool:
        if self.pool is None:
            self.pool = SandboxPool()
            await self.pool.start()
        return self.pool

    def report(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(event)

    def close(self) -> None:
        for ledger in self.ledgers.values():
            ledger.close()
        self.ledgers.clear()


registered()  # import the built-in objectives now, not on the event loop

# Used when the graph runs without a caller-supplied context (LangGraph Studio / `langgraph dev`).
SHARED = Context()


def context_of(runtime: Any) -> Context:
    ctx = getattr(runtime, "context", None)
    return ctx if isinstance(ctx, Context) else SHARED


def _close_shared() -> None:
    SHARED.close()
    if SHARED.pool is not None:
        try:
            asyncio.run(SHARED.pool.close())
        except RuntimeError:
            pass


atexit.register(_close_shared)
