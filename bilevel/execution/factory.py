"""Which executor a run gets: `local` or `ray`, by name (the CLI's --executor)."""

from __future__ import annotations

from typing import Any

from bilevel.execution.executor import Executor, LocalExecutor
from bilevel.execution.ray_executor import RayExecutor  # Ray itself is imported on first use


def make_executor(
    kind: str,
    *,
    devices: list[str] | None = None,
    ray_address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    retries: int = 2,
    ray_init: dict[str, Any] | None = None,
) -> Executor:
    """`local` or `ray`; a clear ValueError for anything else or a missing Ray install.
    ray_init: extra `ray.init` arguments, e.g. num_cpus for a local Ray runtime."""
    if kind == "local":
        return LocalExecutor(devices)
    if kind == "ray":
        return RayExecutor(
            ray_address, num_cpus=num_cpus, num_gpus=num_gpus, retries=retries, init_kwargs=ray_init
        )
    raise ValueError(f"--executor {kind!r} is not one of: local, ray")
