"""Runtime context: the non-serialisable things nodes need (not checkpointed).

Callers that manage their own resources (the CLI, tests) pass a `Context`; a server such as
`langgraph dev` passes none, and everything is built lazily from the run directory in state.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bilevel.agents.llm import LLM, make_chat
from bilevel.config import LLMSettings, RunConfig
from bilevel.execution.executor import Executor, LocalExecutor
from bilevel.execution.local_llm import LocalServer
from bilevel.graphs.history import TrialHistory
from bilevel.objectives import Objective, objective_for, registered
from bilevel.sandbox.pool import SandboxPool
from bilevel.store.ledger import LEDGER_FILE, AsyncLedger, Ledger, dumps

ProgressFn = Callable[[dict[str, Any]], None]
ChatFactory = Callable[[LLMSettings, str, str | None], Any]


@dataclass
class Context:
    pool: SandboxPool | None = None
    progress: ProgressFn | None = None
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    chat_factory: ChatFactory = make_chat  # tests pass fake chat models here
    chats: dict[tuple[str, str | None], Any] = field(default_factory=dict)
    local: LocalServer | None = None
    executor: Executor | None = None  # where evaluations run (default: local processes)
    evaluations: dict[tuple[str, int], asyncio.Task] = field(default_factory=dict)
    # run_dir recorded in a checkpoint -> where that run directory is now (it was moved or
    # copied between a kill and the resume): nothing is ever written at the old path
    relocated: dict[str, str] = field(default_factory=dict)
    histories: dict[str, TrialHistory] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)  # (ledger, id) -> source
    memories: dict[str, str] = field(default_factory=dict)  # memory blob hash -> JSON text
    _own_executor: bool = False
    _own_pool: bool = False  # the pool was started here (not passed in): aclose stops it

    async def mechanism_source(self, ledger: AsyncLedger, mech_id: str) -> str:
        """A mechanism's source, from its ledger row (read once per process)."""
        key = (str(ledger.sync.path), mech_id)
        if key not in self.sources:
            self.sources[key] = await ledger.mechanism_source(mech_id)
        return self.sources[key]

    async def mechanism_memory(self, ledger: AsyncLedger, ref: str | None) -> dict[str, Any]:
        """A fresh copy of the memory stored under ref ({} for None)."""
        if ref is None:
            return {}
        if ref not in self.memories:
            if len(self.memories) > 64:
                self.memories.clear()
            self.memories[ref] = await ledger.blob(ref)
        return json.loads(self.memories[ref])

    async def store_memory(self, ledger: AsyncLedger, memory: dict[str, Any]) -> str | None:
        if not memory:
            return None
        text = dumps(memory)
        ref = await ledger.put_blob(text)
        self.memories[ref] = text
        return ref

    def history(self, ledger_path: str) -> TrialHistory:
        """The decided trials of the run whose ledger is there, decoded once
        (graphs/history.py)."""
        return self.histories.setdefault(ledger_path, TrialHistory())

    async def aledger(self, run_dir: str) -> AsyncLedger:
        run_dir = self.relocated.get(run_dir, run_dir)
        if run_dir not in self.ledgers:
            ledger = await asyncio.to_thread(Ledger, Path(run_dir) / LEDGER_FILE)
            self.ledgers.setdefault(run_dir, ledger)
        return AsyncLedger(self.ledgers[run_dir])

    def objective(self, config: RunConfig) -> Objective:
        return objective_for(config.objective, config.objective_options)

    async def get_executor(self) -> Executor:
        if self.executor is None:
            self.executor, self._own_executor = LocalExecutor(), True
        await self.executor.start()
        return self.executor

    async def stop_evaluations(self) -> None:
        """Cancel evaluations still in flight (their process groups are killed); a resume
        starts them again."""
        tasks = list(self.evaluations.values())
        self.evaluations.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def sandbox(self) -> SandboxPool:
        if self.pool is None:
            self.pool, self._own_pool = SandboxPool(), True
            await self.pool.start()
        return self.pool

    async def base_url(self, settings: LLMSettings) -> str | None:
        if settings.provider == "local":
            if self.local is None:
                self.local = LocalServer(settings.gguf)
                await self.local.start()
            return self.local.base_url
        if settings.provider.startswith(("http://", "https://")):
            return settings.provider
        return None  # OpenAI itself (or OPENAI_BASE_URL)

    async def llm(
        self,
        role: str,
        settings: LLMSettings,
        ledger: AsyncLedger,
        cycle: int,
        iteration: int,
        node: str,
    ) -> LLM:
        """role's model, recording every request in the ledger's llm_calls under this node."""
        base_url = await self.base_url(settings)

        def chat(model: str) -> Any:
            if (model, base_url) not in self.chats:
                self.chats[(model, base_url)] = self.chat_factory(settings, model, base_url)
            return self.chats[(model, base_url)]

        async def record(row: dict[str, Any]) -> None:
            await ledger.add_llm_call(
                {
                    "key": f"{cycle}:{iteration}:{node}:{uuid.uuid4().hex[:12]}",
                    "cycle": cycle,
                    "iteration": iteration,
                    "node": node,
                    "role": role,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cost": 0.0,
                    "error": None,
                    **row,
                }
            )

        fallback = chat(settings.fallback_model) if settings.fallback_model else None
        return LLM(
            settings, role, chat(settings.model_for(role)), fallback, record, ledger.llm_spent
        )

    def report(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(event)

    def close(self) -> None:
        for ledger in self.ledgers.values():
            ledger.close()
        self.ledgers.clear()
        self.histories.clear()
        self.sources.clear()

    async def aclose(self) -> None:
        """Stop evaluations in flight, and what this context started (the executor, the
        sandbox pool, the local LLM server), and close the ledgers: after it the process exits
        without warnings."""
        await self.stop_evaluations()
        if self._own_pool and self.pool is not None:
            await self.pool.close()
            self.pool, self._own_pool = None, False
        if self._own_executor and self.executor is not None:
            await self.executor.close()
            self.executor, self._own_executor = None, False
        if self.local is not None:
            await self.local.stop()
            self.local = None
        self.close()


registered()  # import the built-in objectives now, not on the event loop

# Used when the graph runs without a caller-supplied context (LangGraph Studio / `langgraph dev`).
SHARED = Context()


def context_of(runtime: Any) -> Context:
    ctx = getattr(runtime, "context", None)
    return ctx if isinstance(ctx, Context) else SHARED


def _close_shared() -> None:
    try:
        asyncio.run(SHARED.aclose())
    except RuntimeError:
        pass


atexit.register(_close_shared)
