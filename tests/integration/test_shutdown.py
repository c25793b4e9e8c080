"""No process outlives a run: not after Ctrl-C, not after the parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import BILEVEL
from tests.integration.test_resume import trials_done

pytestmark = pytest.mark.slow
LONG_RUN = ["run", "--iterations", "5000", "--cycle", "50", "--arm", "full"]


def descendants(pid: int) -> set[int]:
    """Every live process whose ancestry leads to pid (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - out
        out |= frontier
    return out


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                out.add(pid)
        except OSError:
            continue
    return out


def start_and_wait(run_dir: Path) -> tuple[subprocess.Popen, set[int]]:
    proc = subprocess.Popen(
        [*BILEVEL, *LONG_RUN, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while trials_done(run_dir) < 20:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    workers = descendants(proc.pid)
    assert workers, "the run started no sandbox worker"
    return proc, workers


def wait_gone(pids: set[int], seconds: float = 10) -> set[int]:
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path):
    proc, workers = start_and_wait(tmp_path / "run")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "bilevel resume" in stderr and "Traceback" not in stderr
    assert not wait_gone(workers)


def test_sigkill_of_the_parent_takes_the_workers_with_it(tmp_path: Path):
    proc, workers = start_and_wait(tmp_path / "run")
    os.kill(proc.pid, signal.SIGKILL)  # the parent only, not its process group
    proc.wait(timeout=10)
    assert not wait_gone(workers)
