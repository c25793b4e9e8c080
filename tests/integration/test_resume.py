"""SIGKILL a run at random moments, resume it, and get exactly the uninterrupted run's ledger."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import BILEVEL, bilevel, ledger_rows, show_json, trials_done

pytestmark = pytest.mark.slow
ARGS = ["--objective", "synthetic:trainsim", "--iterations", "90", "--cycle", "9", "--seed", "11"]
KILLS = 4


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*BILEVEL, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tmp_path: Path):
    reference = tmp_path / "reference"
    bilevel("run", "--run-dir", str(reference), *ARGS)

    run_dir = tmp_path / "killed"
    rng = random.Random(1234)
    # Kill once the ledger reaches each target, plus a random few ms: mid-node, mid-trial.
    targets = sorted(rng.sample(range(2, 85), KILLS))
    proc = start("run", "--run-dir", str(run_dir), *ARGS)
    for target in targets:
        deadline = time.monotonic() + 60
        while trials_done(run_dir) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))
        assert proc.poll() is None, f"the run ended before trial {target}: lengthen ARGS"
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and anything it started
        proc.wait()
        proc = start("resume", str(run_dir))
    assert proc.wait(timeout=120) == 0

    got, want = ledger_rows(run_dir), ledger_rows(reference)
    trial_ids = [row[0] for row in got["trials"]]
    assert trial_ids == list(range(len(trial_ids)))  # contiguous, none duplicated
    for table in want:
        assert got[table] == want[table], f"{table} differs after kills at {targets}"
    assert (run_dir / "results.tsv").read_text() == (reference / "results.tsv").read_text()
    assert show_json(run_dir)["finished"]


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path):
    run_dir = tmp_path / "done"
    bilevel("run", "--run-dir", str(run_dir), "--iterations", "6", "--cycle", "3")
    before = ledger_rows(run_dir)
    bilevel("resume", str(run_dir))
    assert ledger_rows(run_dir) == before
