"""The real CLI end to end: a full bilevel run, determinism, bad input, misbehaving mechanisms."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from bilevel.store.results import COLUMNS
from tests.helpers import bilevel, show_json

pytestmark = pytest.mark.slow


def test_default_run_is_a_full_bilevel_run(tmp_path: Path):
    run_dir = tmp_path / "run"
    bilevel("run", "--run-dir", str(run_dir))
    summary = show_json(run_dir)
    assert summary["arm"] == "full" and summary["cycles"] >= 2
    assert summary["trials"] == summary["budget"] == 121
    adopted = [m for m in summary["mechanisms"] if m["adopted"] and m["origin"] == "library"]
    assert adopted and any(sum(m["hook_calls"].values()) > 0 for m in adopted)
    assert summary["improvement"] > 0
    lines = (run_dir / "results.tsv").read_text().splitlines()
    assert lines[0] == "\t".join(COLUMNS)
    assert {
        "trial",
        "cycle",
        "iteration",
        "metric",
        "status",
        "accepted",
        "mechanism",
        "changes",
        "description",
    } <= set(COLUMNS)
    assert len(lines) == 1 + summary["trials"]
    assert [int(line.split("\t")[0]) for line in lines[1:]] == list(range(summary["trials"]))


def test_same_seed_same_results(tmp_path: Path):
    args = ["--iterations", "30", "--cycle", "6", "--objective", "synthetic:late-lever"]
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        bilevel("run", "--run-dir", str(tmp_path / name), "--seed", seed, *args)
    a, b, c = ((tmp_path / n / "results.tsv").read_text() for n in "abc")
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--objective", "nope"], "unknown objective 'nope'"),
        (["--arm", "both"], "unknown arm 'both'"),
        (["--iterations", "0"], "--iterations"),
        (["--iterations", "5", "--cycle", "10"], "--cycle 10 is longer than --iterations 5"),
        (["--mechanism", "/no/such/file.py"], "does not exist"),
    ],
)
def test_bad_input_exits_with_one_line(tmp_path: Path, args, needle):
    proc = bilevel("run", "--run-dir", str(tmp_path / "r"), *args, check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


def test_run_dir_of_another_run_is_refused(tmp_path: Path):
    run_dir = tmp_path / "r"
    bilevel("run", "--run-dir", str(run_dir), "--iterations", "4", "--cycle", "2")
    before = (run_dir / "results.tsv").read_text()
    proc = bilevel(
        "run",
        "--run-dir",
        str(run_dir),
        "--iterations",
        "4",
        "--cycle",
        "2",
        "--seed",
        "9",
        check=False,
    )
    assert proc.returncode == 2 and "belongs to another run" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (run_dir / "results.tsv").read_text() == before  # nothing of the first run lost
    assert bilevel("show", str(tmp_path / "nothing"), check=False).returncode == 2


# Each passes validation (which runs hooks at cycle 0) and misbehaves from cycle 1 on.
MISBEHAVING = {
    "raises": """
        def propose(ctx):
            if ctx["cycle"] >= 1:
                return [1 / 0]
            return []
    """,
    "loops": """
        def accept(trial, ctx):
            while ctx["cycle"] >= 1:
                pass
            return False
    """,
    "garbage": """
        def select(candidates, ctx):
            if ctx["cycle"] >= 1:
                return ["first", 99, None]
            return [0]
    """,
}
EXPECTED_OUTCOME = {"raises": "error", "loops": "timeout", "garbage": "bad_type"}


@pytest.mark.parametrize("kind", sorted(MISBEHAVING))
def test_misbehaving_mechanism_falls_back_and_the_run_completes(tmp_path: Path, kind):
    source = tmp_path / f"{kind}.py"
    source.write_text(textwrap.dedent(MISBEHAVING[kind]))
    run_dir = tmp_path / "run"
    bilevel(
        "run",
        "--run-dir",
        str(run_dir),
        "--mechanism",
        str(source),
        "--arm",
        "inner",
        "--iterations",
        "6",
        "--cycle",
        "3",
        "--hook-timeout",
        "0.3",
        "--objective",
        "synthetic:interact",
    )
    summary = show_json(run_dir)
    assert summary["trials"] == summary["budget"] == 7
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    rows = db.execute("SELECT cycle, outcome, error FROM hook_calls WHERE mechanism = 'user'")
    outcomes = {(cycle, outcome) for cycle, outcome, _ in rows.fetchall()}
    assert (0, "ok") in outcomes
    assert (1, EXPECTED_OUTCOME[kind]) in outcomes
    assert all(outcome == EXPECTED_OUTCOME[kind] for cycle, outcome in outcomes if cycle == 1)
    status = db.execute("SELECT status FROM mechanisms WHERE id = 'user'").fetchone()[0]
    assert status == "installed"


def test_mechanism_check_prints_the_verdict(tmp_path: Path):
    for path in ("agents/mechanisms/tabu.py", "examples/least_touched.py"):
        ok = bilevel("mechanism", "check", path)
        assert ok.stdout.startswith("accepted:") and "propose" in ok.stdout
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef propose(ctx):\n    return []\n")
    proc = bilevel("mechanism", "check", str(bad), check=False)
    assert proc.returncode == 1
    assert "rejected" in proc.stdout and "line 1: import of 'os' is not allowed" in proc.stdout
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def select(candidates, ctx):\n    return [99]\n")
    proc = bilevel("mechanism", "check", str(wrong), check=False)
    assert proc.returncode == 1 and "select indices must be integers" in proc.stdout
