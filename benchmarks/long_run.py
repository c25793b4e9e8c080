"""Does a trial cost the same at trial 5,000 as at trial 100? Seconds and bytes per trial.

    python benchmarks/long_run.py [--marks 100,1000,5000] [--arm full] [--cycle 20]

One real bilevel run (default arm full: prior researcher, library meta-researcher, sandboxed
hooks, SQLite checkpoints with durability "sync") of `synthetic:trainsim` without noise, whose
evaluation takes microseconds, so what is measured is the framework's own cost. Around each mark
m (a research step: one unit of the evaluation budget) the run is timed over the steps
m - 50 .. m + 50 (from the progress events, with the time the
benchmark itself spends measuring taken out), and checkpoints.sqlite and ledger.sqlite are sized
(their rows, WAL included) at both ends of the window:

    ms per trial              = window wall time / trials evaluated in the window
    checkpoint bytes per trial = growth of the checkpoint rows over the window / trials
    new trials per step       = trials evaluated in the window / steps

Every step evaluates a trial while the space has anything new to offer (agents/fallback.py
proposes when the researcher and the mechanism do not), so trials keep pace with steps; the
column shows it. Target: the per-trial cost at the last mark within 2x of that at the first.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bilevel.config import RunConfig
from bilevel.runner import arun

HALF = 50  # trials either side of a mark
TARGET = 2.0


def stored_bytes(path: Path, sql: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute(sql).fetchone()[0] or 0)
    finally:
        db.close()


CHECKPOINT_SQL = (
    "SELECT (SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints)"
    " + (SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes)"
)
LEDGER_SQL = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"


async def measure(marks: list[int], arm: str, cycle: int, run_dir: Path) -> list[dict[str, Any]]:
    edges = sorted({m + d for m in marks for d in (-HALF, HALF)})
    seen: dict[int, tuple[float, int, int, int]] = {}
    overhead = [0.0]  # seconds spent measuring, taken out of the timings
    trials = [0]

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "trial":
            trials[0] += 1
        if event["event"] != "iteration" or event["iteration"] not in edges:
            return
        begin = time.perf_counter()
        ckpt = stored_bytes(run_dir / "checkpoints.sqlite", CHECKPOINT_SQL)
        ledger = stored_bytes(run_dir / "ledger.sqlite", LEDGER_SQL)
        overhead[0] += time.perf_counter() - begin
        seen[event["iteration"]] = (time.perf_counter() - overhead[0], ckpt, ledger, trials[0])

    config = RunConfig(
        objective="synthetic:trainsim",
        objective_options={"noise": 0.0},
        arm=arm,
        iterations=max(marks) + HALF,
        cycle=cycle,
        seed=0,
    )
    await arun(config, run_dir, progress=progress)
    rows = []
    for m in marks:
        (t0, c0, l0, n0), (t1, c1, l1, n1) = seen[m - HALF], seen[m + HALF]
        k, n = 2 * HALF, max(1, n1 - n0)
        rows.append(
            {
                "step": m,
                "trials": n1,
                "trial_ms": 1000 * (t1 - t0) / n,
                "new": (n1 - n0) / k,
                "ckpt": (c1 - c0) / n,
                "ledger": (l1 - l0) / n,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--marks", default="100,1000,5000")
    parser.add_argument("--arm", default="full")
    parser.add_argument("--cycle", type=int, default=20)
    args = parser.parse_args()
    marks = sorted(int(m) for m in args.marks.split(","))
    assert marks[0] > HALF, f"the first mark must be past trial {HALF}"
    with tempfile.TemporaryDirectory(prefix="bilevel-long-run-") as tmp:
        start = time.perf_counter()
        rows = asyncio.run(measure(marks, args.arm, args.cycle, Path(tmp) / "run"))
        wall = time.perf_counter() - start
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, arm {args.arm}, "
          f"cycle {args.cycle}, {max(marks) + HALF} steps in {wall:.0f} s")  # fmt: skip
    print(f"{'step':>6} {'trials':>7} {'new trials/step':>16} {'ms/trial':>9} "
          f"{'ckpt B/trial':>13} {'ledger B/trial':>15}  vs first")  # fmt: skip
    first = rows[0]["trial_ms"]
    for r in rows:
        print(
            f"{r['step']:>6} {r['trials']:>7} {r['new']:>16.2f} {r['trial_ms']:>9.1f} "
            f"{r['ckpt']:>13.0f} {r['ledger']:>15.0f}  {r['trial_ms'] / first:.2f}x"
        )
    worst = max(r["trial_ms"] for r in rows) / first
    print(f"per-trial cost at most {worst:.2f}x the first mark's: "
          f"{'PASS' if worst <= TARGET else 'FAIL'} (target {TARGET:g}x)")  # fmt: skip


if __name__ == "__main__":
    main()
