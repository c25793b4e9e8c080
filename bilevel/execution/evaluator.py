"""The evaluator: runs one trial of the objective and turns any failure into a status.

Objectives marked `inline` (pure, millisecond functions) run in-process; every other objective
runs in its own subprocess (`python -m bilevel.execution.evaluator`), so a crash, an OOM or a hang
costs that trial only. Timeouts kill the subprocess's whole process group.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from bilevel.objectives import EvalResult, Objective, make_objective
from bilevel.objectives.script_run import run_command

RESULT_PREFIX = "BILEVEL_RESULT "


def eval_seed(run_seed: int, trial: int, per_trial: bool) -> int:
    """The seed a trial is evaluated with. By default every trial uses the run's seed (common
    random numbers, as Karpathy's train.py fixes its seed), so a kept change is a change of
    config, not of luck; per_trial (--seed-per-trial, and the baseline repeats that measure the
    noise) gives trial n of run seed s the seed s x 1,000,003 + n."""
    return run_seed * 1_000_003 + trial if per_trial else run_seed


async def evaluate(
    objective: Objective,
    config: dict[str, Any],
    objective_options: dict[str, Any],
    seed: int,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
) -> EvalResult:
    """One evaluation. env: extra environment (e.g. CUDA_VISIBLE_DEVICES); it forces a
    subprocess, since an inline evaluation would share this process's environment."""
    if objective.inline and not env:
        try:
            return await objective.evaluate(config, seed)
        except Exception as exc:  # an objective bug is that trial's crash, not the run's
            return EvalResult(metric=None, status="crash", log_tail=f"{type(exc).__name__}: {exc}")
    return await evaluate_in_subprocess(
        objective.name, objective_options, config, seed, timeout_s, env
    )


async def evaluate_in_subprocess(
    name: str,
    options: dict[str, Any],
    config: dict[str, Any],
    seed: int,
    timeout_s: float | None,
    env: dict[str, str] | None = None,
) -> EvalResult:
    request = json.dumps({"name": name, "options": options, "config": config, "seed": seed})
    argv = [sys.executable, "-m", "bilevel.execution.evaluator", request]
    run = await run_command(argv, None, {**os.environ, **(env or {})}, timeout_s)
    if run.timed_out:
        return EvalResult(
            metric=None,
            status="timeout",
            seconds=run.seconds,
            log_tail=f"killed after {timeout_s}s",
        )
    for line in reversed(run.output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return EvalResult.model_validate_json(line[len(RESULT_PREFIX) :])
    tail = "\n".join(run.output.splitlines()[-20:])
    killed = "MemoryError" in run.output or run.returncode == -signal.SIGKILL
    return EvalResult(
        metric=None, status="oom" if killed else "crash", seconds=run.seconds, log_tail=tail
    )


def main() -> None:
    request = json.loads(sys.argv[1])
    objective = make_objective(request["name"], **request["options"])
    result = asyncio.run(objective.evaluate(request["config"], request["seed"]))
    print(RESULT_PREFIX + result.model_dump_json(), flush=True)


if __name__ == "__main__":
    main()
