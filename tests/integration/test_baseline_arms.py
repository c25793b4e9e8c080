"""Whole runs of the classical arms and of noise-aware acceptance, read back from the ledger."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import bilevel, show_json, trials

pytest.importorskip("optuna", reason="the bench extra is not installed")
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("arm", ["random", "optuna-tpe", "optuna-gp", "optuna-cmaes"])
def test_a_classical_arm_spends_the_same_budget(tmp_path: Path, arm: str):
    run_dir = tmp_path / arm
    args = ["--arm", arm, "--iterations", "12", "--cycle", "4", "--slots", "2"]
    bilevel("run", *args, "--run-dir", str(run_dir))
    shown = show_json(run_dir)
    assert shown["trials"] == shown["budget"] == 25 and shown["finished"]
    assert "Optuna" in shown["labels"]["researcher"]
    rows = trials(run_dir)
    kind = {"random": "random", "optuna-tpe": "tpe", "optuna-gp": "gp", "optuna-cmaes": "cmaes"}
    assert {r["source"] for r in rows[1:]} == {kind[arm]}
    assert [m["id"] for m in shown["mechanisms"]] == ["default"]  # no outer loop
    if arm == "optuna-cmaes":  # the optimizer's state is kept with the trials, not restarted
        db = sqlite3.connect(run_dir / "ledger.sqlite")
        blobs = [r[0] for r in db.execute("SELECT data FROM blobs")]
        db.close()
        assert any("cma:optimizer" in b for b in blobs)
    again = tmp_path / "again"
    bilevel("run", *args, "--run-dir", str(again))
    assert (again / "results.tsv").read_text() == (run_dir / "results.tsv").read_text()


def test_noise_aware_acceptance_keeps_only_gains_beyond_k_sigma(tmp_path: Path):
    run_dir = tmp_path / "run"
    bilevel(
        "run", "--objective", "synthetic:trainsim", "--objective-opt", "noise=0.02",
        "--arm", "inner", "--iterations", "30", "--cycle", "10", "--noise-repeats", "5",
        "--noise-k", "1.5", "--run-dir", str(run_dir),
    )  # fmt: skip
    shown = show_json(run_dir)
    noise = shown["noise"]
    assert noise["repeats"] == 5 and noise["sigma"] > 0
    assert noise["margin"] == pytest.approx(1.5 * noise["sigma"])
    rows = trials(run_dir)
    assert len(rows) == 31  # the repeats came out of the budget
    assert all(r["source"] == "baseline-repeat" and json.loads(r["changes"]) == {}
               for r in rows[1:6])  # fmt: skip
    incumbent = noise["mean"]
    assert shown["baseline_metric"] == pytest.approx(incumbent)
    kept = 0
    for r in rows[6:]:
        if r["accepted"]:
            assert r["metric"] < incumbent - noise["margin"]
            incumbent, kept = r["metric"], kept + 1
        elif r["status"] == "ok":
            assert r["metric"] >= incumbent - noise["margin"]
    assert kept >= 1
