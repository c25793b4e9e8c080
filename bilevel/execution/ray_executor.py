"""`--executor ray`: each evaluation a Ray task with declared resources (`num_cpus`, `num_gpus`).

Inside the task the evaluation runs exactly as on the local executor (a non-inline objective in
its own killable process group; Ray sets CUDA_VISIBLE_DEVICES for GPU tasks), so results do not
depend on where they ran. Ray's own retries are off: when a worker or node dies mid-trial the
executor records the loss and resubmits, up to `retries` times, then returns a `crash` result
that says why. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

from bilevel.execution.evaluator import evaluate
from bilevel.execution.executor import EvalRequest, Evaluation
from bilevel.objectives import EvalResult, objective_for


def run_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The Ray task body (runs in a Ray worker process)."""
    request = EvalRequest.model_validate(payload)
    objective = objective_for(request.objective, request.options)
    started = time.time()
    result = asyncio.run(
        evaluate(objective, request.config, request.options, request.seed, request.timeout_s)
    )
    return {
        "result": result.model_dump(),
        "started": started,
        "finished": time.time(),
        "where": f"ray:{socket.gethostname()}:{os.getpid()}",
    }


class RayExecutor:
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        retries: int = 2,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError(
                "--executor ray needs the ray extra: pip install 'bilevel-autoresearch[ray]'"
            ) from None
        self.ray = ray
        self.address = address
        self.num_cpus, self.num_gpus, self.retries = num_cpus, num_gpus, retries
        self.init_kwargs = init_kwargs or {}
        self._task: Any = None
        self._owns_runtime = False

    async def start(self) -> None:
        if self._task is not None:
            return
        ray = self.ray
        if not ray.is_initialized():
            await asyncio.to_thread(
                ray.init,
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                **self.init_kwargs,
            )
            self._owns_runtime = True
        self._task = ray.remote(run_request).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0
        )

    async def evaluate(self, request: EvalRequest) -> Evaluation:
        await self.start()
        lost: list[str] = []
        submitted = time.time()
        for _attempt in range(self.retries + 1):
            ref = self._task.remote(request.model_dump())
            try:
                out = await ref
            except asyncio.CancelledError:
                self.ray.cancel(ref, force=True)
                raise
            except self.lost_errors() as exc:
                lost.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}")
                continue
            return Evaluation(
                EvalResult.model_validate(out["result"]),
                out["started"],
                out["finished"],
                out["where"],
                lost,
            )
        reason = f"ray worker lost {len(lost)} times; last: {lost[-1]}"
        result = EvalResult(metric=None, status="crash", log_tail=reason)
        return Evaluation(result, submitted, time.time(), "ray", lost)

    def lost_errors(self) -> tuple[type[BaseException], ...]:
        ex = self.ray.exceptions
        return (
            ex.WorkerCrashedError,
            ex.NodeDiedError,
            ex.ObjectLostError,
            ex.OwnerDiedError,
            ex.RaySystemError,
        )

    async def close(self) -> None:
        if self._owns_runtime and self.ray.is_initialized():
            await asyncio.to_thread(self.ray.shutdown)
        self._task, self._owns_runtime = None, False
