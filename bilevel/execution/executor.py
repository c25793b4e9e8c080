"""Executors: where evaluations run. The inner loop hands one an `EvalRequest` per trial and
gets back an `Evaluation` (the result plus when the slot was busy and where it ran).

`local` (default): evaluations on this machine, each non-inline one in its own process group
(killed whole on timeout), optionally pinned to a device (`CUDA_VISIBLE_DEVICES`) taken from a
shared pool. `ray` (bilevel/execution/ray_executor.py): each evaluation a Ray task on a cluster.

The executor is runtime, not configuration: a run gives the same results on either, and a run
started on one may be resumed on the other.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from bilevel.execution.evaluator import evaluate
from bilevel.objectives import EvalResult, objective_for


class EvalRequest(BaseModel):
    """Everything needed to evaluate one trial anywhere: names and JSON only."""

    objective: str
    options: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any]
    seed: int
    timeout_s: float | None = None
    trial: int = 0


@dataclass
class Evaluation:
    """One evaluation as the executor saw it. started/finished: wall-clock (time.time()) bounds
    of the slot's busy time; lost: workers lost before it finished (Ray), each retried."""

    result: EvalResult
    started: float
    finished: float
    where: str = "local"
    lost: list[str] = field(default_factory=list)


class Executor(Protocol):
    name: str

    async def start(self) -> None: ...

    async def evaluate(self, request: EvalRequest) -> Evaluation: ...

    async def close(self) -> None: ...


class LocalExecutor:
    """Evaluations as processes on this machine. devices: e.g. ["0", "1"]; each evaluation
    holds one while it runs, in its own process with CUDA_VISIBLE_DEVICES set to it, so W
    parallel evaluations over D devices never put two evaluations on one device."""

    name = "local"

    def __init__(self, devices: list[str] | None = None) -> None:
        self.devices = list(devices or [])
        self._free: asyncio.Queue[str] | None = None

    async def start(self) -> None:
        if self.devices and self._free is None:
            self._free = asyncio.Queue()
            for device in self.devices:
                self._free.put_nowait(device)

    async def evaluate(self, request: EvalRequest) -> Evaluation:
        await self.start()
        objective = objective_for(request.objective, request.options)
        device = await self._free.get() if self._free is not None else None
        started = time.time()
        try:
            # With a device, even an objective that runs inline goes to its own process: only
            # there can CUDA_VISIBLE_DEVICES be set for it (and whatever it starts).
            env = {"CUDA_VISIBLE_DEVICES": device} if device is not None else None
            result = await evaluate(
                objective, request.config, request.options, request.seed, request.timeout_s, env
            )
        finally:
            if device is not None:
                self._free.put_nowait(device)  # type: ignore[union-attr]
        where = "local" if device is None else f"local:cuda{device}"
        return Evaluation(result, started, time.time(), where)

    async def close(self) -> None:
        pass
