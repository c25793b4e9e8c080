"""Does a step cost the same at trial 5,000 as at trial 100? Seconds and bytes per trial.

    python benchmarks/long_run.py [--marks 100,1000,5000] [--arm full] [--cycle 20]

One real bilevel run (default arm full: prior researcher, library meta-researcher, sandboxed
hooks, SQLite checkpoints with durability "sync") of `synthetic:trainsim` without noise, whose
evaluation takes microseconds, so what is measured is the framework's own cost per trial. Around
each mark m the run is timed over the trials m - 50 .. m + 50 (from the progress events, with
the time the benchmark itself spends measuring taken out), and checkpoints.sqlite and
ledger.sqlite are sized (their rows, WAL included) at both ends of the window:

    seconds per trial          = window wall time / trials in the window
    checkpoint bytes per trial = growth of the checkpoint rows over the window / trials

Target: the per-trial cost at the last mark within 2x of that at the first.
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
    seen: dict[int, tuple[float, int, int]] = {}
    overhead = [0.0]  # seconds spent measuring, taken out of the timings

    def progress(event: dict[str, Any]) -> None:
        if event["event"] != "trial" or event["trial"] not in edges:
            return
        begin = time.perf_counter()
        ckpt = stored_bytes(run_dir / "checkpoints.sqlite", CHECKPOINT_SQL)
        ledger = stored_bytes(run_dir / "ledger.sqlite", LEDGER_SQL)
        overhead[0] += time.perf_counter() - begin
        seen[event["trial"]] = (time.perf_counter() - overhead[0], ckpt, ledger)

    config = RunConfig(
        objective="synthetic:trainsim",
        objective_options={"noise": 0.0},
        arm=arm,
        iterations=max(marks) + HALF + 1,
        cycle=cycle,
        seed=0,
    )
    await arun(config, run_dir, progress=progress)
    rows = []
    for m in marks:
        (t0, c0, l0), (t1, c1, l1) = seen[m - HALF], seen[m + HALF]
        n = 2 * HALF
        rows.append(
            {
                "trial": m,
                "ms": 1000 * (t1 - t0) / n,
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
          f"cycle {args.cycle}, {max(marks) + HALF + 2} trials in {wall:.0f} s")  # fmt: skip
    print(f"{'trial':>6} {'ms/trial':>9} {'ckpt B/trial':>13} {'ledger B/trial':>15}  vs first")
    first = rows[0]["ms"]
    for r in rows:
        ratio = r["ms"] / first
        print(
            f"{r['trial']:>6} {r['ms']:>9.1f} {r['ckpt']:>13.0f} {r['ledger']:>15.0f}  "
            f"{ratio:.2f}x"
        )
    worst = max(r["ms"] for r in rows) / first
    print(f"per-trial cost at most {worst:.2f}x the first mark's: "
          f"{'PASS' if worst <= TARGET else 'FAIL'} (target {TARGET:g}x)")  # fmt: skip


if __name__ == "__main__":
    main()
