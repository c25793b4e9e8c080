"""What the CLI says: defaults in the help, a header on listings, a real path after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import BILEVEL, bilevel


def test_help_shows_every_default_it_promises():
    run_help = bilevel("run", "--help").stdout
    assert "[default: 120, or the objective's own" in run_help
    assert "[default: 12, or the objective's own]" in run_help
    bench_help = bilevel("bench", "--help").stdout
    assert "[default: 0-4]" in bench_help and "[default: all of them]" in bench_help
    assert "whole run ." not in run_help and "outer cycle ." not in run_help  # markup ate them
    flags_with_a_value = [
        line for line in run_help.splitlines() if "<bool>" in line and "--help" not in line
    ]
    assert flags_with_a_value == [], flags_with_a_value  # a flag takes no value


def test_objectives_has_a_header_and_lists_documented_names():
    lines = bilevel("objectives").stdout.splitlines()
    assert lines[0].split("\t") == ["objective", "metric", "direction", "parameters"]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for line in lines[1:]:
        name = line.split("\t")[0]
        assert f"`{name}`" in readme or name.startswith("suite:"), name


def test_ctrl_c_names_the_run_directory_to_resume(tmp_path: Path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*BILEVEL, "run", "--objective", "synthetic:sleep", "--objective-opt", "seconds=0.3",
         "--iterations", "40", "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (run_dir / "results.tsv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the baseline has been evaluated: the run is under way
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"continue with `bilevel resume {run_dir}`" in stderr, stderr
    assert bilevel("resume", str(run_dir), "--json").returncode == 0


def test_resume_of_a_finished_run_says_it_was_finished(tmp_path: Path):
    run_dir = tmp_path / "run"
    bilevel("run", "--iterations", "4", "--cycle", "2", "--run-dir", str(run_dir))
    proc = bilevel("resume", str(run_dir))
    assert f"{run_dir} already finished: nothing to resume" in proc.stderr
    assert "trials 5/5" in proc.stdout


def test_arun_shows_progress_when_asked(tmp_path: Path):
    code = (
        "import asyncio\n"
        "from bilevel import RunConfig, arun\n"
        "config = RunConfig(objective='synthetic:interact', iterations=4, cycle_length=2)\n"
        f"asyncio.run(arun(config, {str(tmp_path / 'run')!r}, progress=True))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"run dir {tmp_path / 'run'}" in proc.stderr and "cycle 1: improvement" in proc.stderr


def test_report_lists_every_file_it_wrote(tmp_path: Path):
    run_dir = tmp_path / "run"
    bilevel("run", "--iterations", "8", "--cycle", "4", "--run-dir", str(run_dir))
    lines = bilevel("report", str(run_dir)).stdout.splitlines()
    assert lines[0] == f"written: {run_dir / 'report.md'}"
    figures = [Path(line.split("figure: ")[1]) for line in lines[1:]]
    assert {p.name for p in figures} >= {"trials.png", "cycles.png", "coverage.png"}
    assert all(p.is_file() and p.stat().st_size > 1000 for p in figures)
    report = (run_dir / "report.md").read_text()
    assert all(f"]({p.name})" in report for p in figures)
