"""How a run judges and seeds: probation shares its cycle turn about with the parent, adoption
follows the rule the README states, and trials share the run's seed unless asked otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bilevel.config import RunConfig
from bilevel.graphs.assessment import adopt_rule, trial_gains
from bilevel.runner import arun
from bilevel.store.ledger import Ledger
from tests.helpers import ledger_query

pytestmark = pytest.mark.slow


async def test_probation_is_turn_about_and_decided_by_the_stated_rule(tmp_path: Path):
    run_dir = tmp_path / "run"
    await arun(RunConfig(objective="synthetic:trainsim", arm="mechanism", iterations=24,
                         cycle=6, seed=1), run_dir)  # fmt: skip
    mechanisms = {m["id"]: m for m in ledger_query(run_dir, "SELECT * FROM mechanisms")}
    judged = [m for m in mechanisms.values() if m["status"] in ("adopted", "reverted")]
    assert judged, "no mechanism went through probation"
    cycles = {c["cycle"]: c for c in ledger_query(run_dir, "SELECT * FROM cycles")}
    trials = ledger_query(run_dir, "SELECT * FROM trials ORDER BY trial")
    ledger = Ledger(run_dir / "ledger.sqlite", readonly=True)
    try:
        for m in judged:
            stats = json.loads(cycles[m["cycle"]]["stats"])
            span = [t for t in trials if stats["first_trial"] <= t["trial"] < stats["end_trial"]]
            for t in span:  # odd iterations are the parent's, even ones the candidate's
                assert t["mechanism"] == (m["parent"] if t["iteration"] % 2 else m["id"]), dict(t)
            gains = [trial_gains(ledger, stats["first_trial"], stats["end_trial"], "minimize", who)
                     for who in (m["id"], m["parent"])]  # fmt: skip
            assert (m["status"] == "adopted") == adopt_rule(*gains)
    finally:
        ledger.close()


@pytest.mark.parametrize("per_trial", [False, True])
async def test_trials_share_the_run_seed_unless_asked(tmp_path: Path, per_trial: bool):
    config = RunConfig(objective="synthetic:trainsim", objective_options={"noise": 0.05},
                       arm="inner", iterations=8, cycle=4, seed_per_trial=per_trial)  # fmt: skip
    await arun(config, tmp_path / "run")
    offsets = {
        round(t["metric"] - json.loads(t["extra"])["clean_metric"], 12)
        for t in ledger_query(
            tmp_path / "run", "SELECT metric, extra FROM trials WHERE status = 'ok'"
        )
    }  # the noise drawn for each trial: one draw for all under common random numbers
    assert (len(offsets) == 1) is not per_trial
