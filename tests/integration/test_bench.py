"""`bilevel bench` end to end: arms at one budget, statistics rebuilt from the ledgers alone,
resumable, plots that are real PNGs, and a mechanism that never changes a decision flagged."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from tests.helpers import bilevel, show_json

pytest.importorskip("optuna", reason="the bench extra is not installed")
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mechanisms"
ARMS = "inner,restart,full,random,optuna-tpe"


def test_bench_table_is_rebuilt_from_the_ledgers_and_resumes(tmp_path: Path):
    out = tmp_path / "bench"
    flags = ["--objectives", "synthetic:interact", "--arms", ARMS, "--seeds", "0-2",
             "--iterations", "8", "--cycle", "4", "--out", str(out)]  # fmt: skip
    proc = bilevel("bench", *flags)
    assert "| synthetic:interact | optuna-tpe | 3 | 9 / 9 |" in proc.stdout
    assert "Validated improvement" in proc.stdout
    first = json.loads((out / "bench.json").read_text())
    assert [a["arm"] for a in first["arms"]] == ARMS.split(",")
    assert all(a["n"] == 3 and a["budget"] == [9] for a in first["arms"])
    for run in first["runs"]:  # every row is its own ledger's summary
        shown = show_json(Path(run["run_dir"]))
        assert run["improvement"] == shown["improvement"] and shown["finished"]
        # re-evaluated on fresh seeds; interact has no noise, so the same improvement exactly
        assert run["validated"] == pytest.approx(run["improvement"])
        assert run["trials"] == run["budget"] == 9  # every arm spends its whole budget
    full = next(a for a in first["arms"] if a["arm"] == "full")
    assert full["vs_inner"]["n"] == 3 and 0 < full["vs_inner"]["p"] <= 1
    assert full["invoked"] == 1.0  # every adopted mechanism was called
    image = matplotlib.image.imread(out / "bench-synthetic-interact.png")
    assert image.shape[0] > 100 and image.shape[1] > 100

    bilevel("bench-report", str(out))  # one command: the same table from the ledgers
    assert json.loads((out / "bench.json").read_text()) == first
    bilevel("bench", *flags)  # resumed: finished runs are only summarised
    assert json.loads((out / "bench.json").read_text()) == first


def test_a_mechanism_that_never_changes_a_decision_is_flagged(tmp_path: Path):
    out = tmp_path / "bench"
    run_dir = out / "synthetic-trainsim" / "inner-s0"
    bilevel("run", "--arm", "inner", "--iterations", "12", "--cycle", "4", "--mechanism",
            str(FIXTURES / "never_changes.py"), "--run-dir", str(run_dir))  # fmt: skip
    shown = show_json(run_dir)
    user = next(m for m in shown["mechanisms"] if m["id"] == "user")
    assert user["hook_calls"] == {"select": 12, "accept": 12}  # called on every step
    proc = bilevel("bench-report", str(out))
    assert "Not effective (in the slots for a cycle, never changed a decision)" in proc.stdout
    assert "synthetic:trainsim / inner: s0:user" in proc.stdout
    arm = json.loads((out / "bench.json").read_text())["arms"][0]
    assert arm["invoked"] == 1.0 and arm["effective"] == 0.0


def test_bilevel_report_writes_the_five_figures(tmp_path: Path):
    run_dir = tmp_path / "run"
    bilevel("run", "--iterations", "24", "--cycle", "6", "--run-dir", str(run_dir))
    bilevel("report", str(run_dir))
    text = (run_dir / "report.md").read_text()
    for name in ("trials", "cycles", "mechanisms", "hooks", "coverage"):
        assert f"({name}.png)" in text
        image = matplotlib.image.imread(run_dir / f"{name}.png")
        assert image.shape[0] > 100 and image.shape[1] > 100
    assert "| c1-" in text  # the mechanisms table lists what the meta-researcher tried
