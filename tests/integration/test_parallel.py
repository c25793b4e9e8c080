"""W parallel evaluations on the local executor: determinism whatever the finishing order, device
assignment, timeouts that kill the process group, and a kill + resume with trials in flight."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bilevel import RunConfig
from bilevel.execution.executor import EvalRequest, LocalExecutor
from bilevel.runner import arun
from tests.helpers import BILEVEL, bilevel, ledger_rows, trial_ids

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures" / "executor"


def jittery(slots: int, seed: int = 1) -> RunConfig:
    # Each evaluation sleeps 0.05-0.25 s at random (unseeded): trials finish in a different
    # order every run.
    return RunConfig(
        objective="synthetic:sleep",
        objective_options={"seconds": 0.05, "jitter": 4.0},
        arm="full",
        iterations=8,
        cycle=4,
        parallel=slots,
        seed=seed,
    )


def finish_order(run_dir: Path) -> list[int]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    order = [r[0] for r in db.execute("SELECT trial FROM trials WHERE trial > 0 ORDER BY finished")]
    db.close()
    return order


async def test_same_seed_and_slots_same_results_whatever_finishes_first(tmp_path: Path):
    a = await arun(jittery(4), tmp_path / "a")
    b = await arun(jittery(4), tmp_path / "b")
    assert a["trials"] == b["trials"] == 1 + 8 * 4 and a["cycles"] == 2
    assert finish_order(tmp_path / "a") != list(range(1, 33)) or finish_order(
        tmp_path / "b"
    ) != list(range(1, 33)), "the jitter never reordered a finish: the test proves nothing"
    assert (tmp_path / "a" / "results.tsv").read_text() == (
        tmp_path / "b" / "results.tsv"
    ).read_text()
    assert ledger_rows(tmp_path / "a") == ledger_rows(tmp_path / "b")


async def test_w_slots_are_busy_at_once(tmp_path: Path):
    summary = await arun(jittery(4), tmp_path / "run")
    db = sqlite3.connect(tmp_path / "run" / "ledger.sqlite")
    spans = db.execute("SELECT started, finished FROM trials WHERE trial > 0").fetchall()
    db.close()
    # the most trials running at one moment
    events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 4
    assert summary["evaluation"]["parallel"] == 4 and 0 < summary["evaluation"]["utilisation"] <= 1


async def test_each_evaluation_holds_its_own_device(monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    executor = LocalExecutor(devices=["3", "5"])
    options = {
        "command": "python device.py",
        "space": str(FIXTURES / "space.toml"),
        "workdir": str(FIXTURES),
    }
    requests = [
        EvalRequest(objective="script", options=options, config={"PAUSE": 0.5}, seed=i)
        for i in range(4)
    ]
    evals = await asyncio.gather(*(executor.evaluate(r) for r in requests))
    assert sorted(e.result.metric for e in evals) == [3.0, 3.0, 5.0, 5.0]
    assert {e.where for e in evals} == {"local:cuda3", "local:cuda5"}
    by_device: dict[str, list[tuple[float, float]]] = {}
    for e in evals:
        by_device.setdefault(e.where, []).append((e.started, e.finished))
    for spans in by_device.values():  # never two evaluations on one device at once
        (s1, f1), (s2, f2) = sorted(spans)
        assert f1 <= s2


async def test_an_evaluation_past_its_timeout_is_killed_whole():
    executor = LocalExecutor()
    request = EvalRequest(
        objective="synthetic:sleep", options={"seconds": 30}, config={}, seed=0, timeout_s=0.5
    )
    start = time.perf_counter()
    ev = await executor.evaluate(request)
    assert ev.result.status == "timeout" and time.perf_counter() - start < 10
    leftover = subprocess.run(
        ["pgrep", "-f", 'synthetic:sleep.*"seconds": 30'], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == ""


def test_kill_with_trials_in_flight_then_resume(tmp_path: Path):
    """SIGKILL the run while W trials evaluate: the resume re-starts the unfinished ones, keeps the
    finished ones, and ends with the same results as a run never killed."""
    args = [
        "--objective", "synthetic:sleep", "--objective-opt", "seconds=0.3", "--parallel", "3",
        "--iterations", "6", "--cycle", "3", "--seed", "2",
    ]  # fmt: skip
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [*BILEVEL, "run", *args, "--run-dir", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and len(trial_ids(killed)) < 6:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.5)  # evaluation processes die with their parent (PR_SET_PDEATHSIG)
    assert subprocess.run(["pgrep", "-f", "bilevel.execution.evaluator"]).returncode == 1
    bilevel("resume", str(killed))
    clean = tmp_path / "clean"
    bilevel("run", *args, "--run-dir", str(clean))
    assert (killed / "results.tsv").read_text() == (clean / "results.tsv").read_text()
    assert ledger_rows(killed)["trials"] == ledger_rows(clean)["trials"]
