"""How busy the executor keeps W evaluation slots, on an objective that sleeps a fixed time.

    python benchmarks/utilisation.py [--executors local,ray] [--parallel 1,2,4,8]
                                     [--evaluations 48] [--seconds 4.0]

Each (executor, W) is one real bilevel run (arm full, prior researcher, library
meta-researcher, sandboxed hooks) of `synthetic:sleep` with the same total budget of
`--evaluations` trials after the baseline, so wall time should fall as 1/W. Every evaluation is a
separate process (local) or a Ray task running one (ray). Figures come from the run's ledger
(`bilevel show DIR --json` -> evaluation):

    utilisation = busy slot-seconds / (W x span)

busy: each trial's start-to-finish time as the slot saw it (process start included; for Ray, as
the worker saw it, so scheduling delay counts as idle); span: first trial's start to last trial's
finish (the baseline, which every later trial waits for, is left out). Target: >= 95% at every W.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bilevel.config import RunConfig
from bilevel.execution.executor import Executor
from bilevel.execution.factory import make_executor
from bilevel.runner import arun

TARGET = 0.95


async def measure(executor: Executor, slots: int, evaluations: int, seconds: float) -> dict:
    iterations = evaluations // slots
    config = RunConfig(
        objective="synthetic:sleep",
        objective_options={"seconds": seconds},
        arm="full",
        iterations=iterations,
        cycle=max(1, iterations // 2),
        seed=0,
        parallel=slots,
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = await arun(config, Path(tmp) / "run", executor=executor)
        wall = time.perf_counter() - start
    ev = summary["evaluation"]
    return {
        "parallel": slots,
        "trials": summary["trials"] - 1,
        "utilisation": ev["utilisation"],
        "span_s": ev["span_s"],
        "wall_s": wall,
        "busy_per_trial_s": ev["busy_s"] / (summary["trials"] - 1),
        "lost": ev["workers_lost"],
    }


async def warm(executor: Executor, slots: int) -> None:
    """One short run first, so that all of Ray's worker processes exist before anything is
    timed: evaluations of a second overlap, so W workers are needed at once (with instant
    ones, a few workers would serve the whole warm-up and the rest start cold, mid-measurement)."""
    await measure(executor, slots, 2 * slots, 1.0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--parallel", default="1,2,4,8")
    parser.add_argument("--evaluations", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    widths = [int(w) for w in args.parallel.split(",")]
    print(
        f"# {platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}; "
        f"synthetic:sleep {args.seconds}s x {args.evaluations} evaluations per run"
    )
    print(
        f"{'executor':<8} {'W':>2} {'trials':>6} {'utilisation':>11} {'span_s':>7} "
        f"{'wall_s':>7} {'speedup':>7} {'busy/trial':>10} {'lost':>4}  target"
    )
    failed = False
    for kind in args.executors.split(","):
        ray_init = {"num_cpus": max(widths)} if kind == "ray" else None
        executor = make_executor(kind, ray_init=ray_init)
        try:
            await executor.start()
            await warm(executor, max(widths))
            base_span = None
            for w in widths:
                r = await measure(executor, w, args.evaluations, args.seconds)
                base_span = base_span or r["span_s"] * w  # the first W's span, scaled to W = 1
                ok = r["utilisation"] >= TARGET
                failed |= not ok
                print(
                    f"{kind:<8} {w:>2} {r['trials']:>6} {r['utilisation']:>11.1%} "
                    f"{r['span_s']:>7.2f} {r['wall_s']:>7.2f} {base_span / r['span_s']:>6.2f}x "
                    f"{r['busy_per_trial_s']:>9.3f}s {r['lost']:>4}  {'PASS' if ok else 'FAIL'}",
                    flush=True,
                )
        finally:
            await executor.close()
    print(f"utilisation >= {TARGET:.0%} at every W: {'FAIL' if failed else 'PASS'}")


def _run() -> Any:
    return asyncio.run(main())


if __name__ == "__main__":
    _run()
