"""Search quality by arm on the synthetic objectives, at the same evaluation budget.

    python benchmarks/synthetic_arms.py [--seeds 5] [--arms inner,full] [--iterations 120]

Prints, per objective and arm, the mean (and standard error) of the best metric reached over the
seeds, and whether `full` beats `inner` on the mean. Every number comes from the runs' ledgers,
which stay under --out for inspection (`bilevel show DIR`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bilevel.config import ARMS, RunConfig
from bilevel.objectives import registered
from bilevel.runner import arun
from bilevel.sandbox.pool import SandboxPool


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--objectives", default="synthetic")
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--cycle", type=int, default=12)
    parser.add_argument("--out", default=None, help="where run directories go (default: temp)")
    args = parser.parse_args()
    arms = args.arms.split(",")
    objectives = sorted(n for n in registered() if n.startswith(args.objectives))
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-arms-"))
    best: dict[tuple[str, str], list[float]] = {}
    start = time.perf_counter()
    async with SandboxPool() as pool:
        for objective in objectives:
            for arm in arms:
                for seed in range(args.seeds):
                    config = RunConfig(
                        objective=objective,
                        arm=arm,
                        seed=seed,
                        iterations=args.iterations,
                        cycle=args.cycle,
                    )
                    run_dir = out / f"{objective.replace(':', '-')}-{arm}-s{seed}"
                    summary = await arun(config, run_dir, pool=pool)
                    best.setdefault((objective, arm), []).append(summary["best_metric"])
    print(
        f"budget: {1 + args.iterations} evaluations per run, {args.seeds} seeds, "
        f"cycle {args.cycle}; runs in {out}; {time.perf_counter() - start:.0f}s\n"
    )
    header = f"{'objective':<22}" + "".join(f"{arm:>18}" for arm in arms)
    print(header + ("   full<inner" if {"full", "inner"} <= set(arms) else ""))
    for objective in objectives:
        cells = []
        for arm in arms:
            values = best[(objective, arm)]
            sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):>10.4f} ±{sem:<6.4f}")
        line = f"{objective:<22}" + "".join(f"{c:>18}" for c in cells)
        if {"full", "inner"} <= set(arms):
            wins = statistics.mean(best[(objective, "full")]) < statistics.mean(
                best[(objective, "inner")]
            )
            line += f"   {'yes' if wins else 'NO'}"
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
