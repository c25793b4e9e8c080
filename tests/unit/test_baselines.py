"""The classical arms (random, optuna-tpe) and noise-aware acceptance."""

from __future__ import annotations

import pytest

from bilevel.agents import classical
from bilevel.config import RunConfig
from bilevel.contract import default_accept
from bilevel.objectives import make_objective

optuna = pytest.importorskip("optuna", reason="the bench extra is not installed")


def told(space, n: int) -> list[dict]:
    """n trials of the space's defaults with made-up metrics (one crash)."""
    out = []
    for i in range(n):
        config = space.defaults()
        out.append(
            {
                "config": config,
                "metric": None if i == 1 else 1.0 + 0.1 * i,
                "status": "crash" if i == 1 else "ok",
            }
        )
    return out


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_proposals_are_whole_configs_inside_the_space_and_seeded(kind):
    space = make_objective("synthetic:trainsim").space
    history = told(space, 12)
    a = classical.propose(kind, space, history, "minimize", 3, seed="0:5")
    b = classical.propose(kind, space, history, "minimize", 3, seed="0:5")
    c = classical.propose(kind, space, history, "minimize", 3, seed="0:6")
    assert a == b and a != c
    for cand in a:
        assert set(cand["config"]) == set(space.names)
        assert space.validate(cand["config"]) == cand["config"]
        assert cand["source"] == kind


def test_tpe_moves_towards_what_was_good():
    """After 30 random trials on a 1-d problem, TPE's next asks sit nearer the optimum than
    random's: it uses the history it was told."""
    space = make_objective("synthetic:trainsim").space
    objective = make_objective("synthetic:trainsim", noise=0.0)
    seed_trials = classical.propose("random", space, [], "minimize", 30, seed="warm")
    history = []
    for c in seed_trials:
        metric = objective.value(c["config"])
        status = "ok" if metric is not None else "nan"
        history.append({"config": c["config"], "metric": metric, "status": status})

    def mean_value(kind: str) -> float:
        values = []
        for step in range(6):
            for c in classical.propose(kind, space, history, "minimize", 4, seed=f"s{step}"):
                values.append(objective.value(c["config"]) or 10.0)
        return sum(values) / len(values)

    assert mean_value("tpe") < mean_value("random")


def test_arms_are_known_to_the_config():
    for arm in ("random", "optuna-tpe"):
        assert RunConfig(arm=arm).arm == arm


@pytest.mark.parametrize(
    "metric, margin, keep",
    [(0.95, 0.0, True), (0.95, 0.1, False), (0.85, 0.1, True), (1.0, 0.0, False)],
)
def test_default_accept_needs_the_noise_margin(metric, margin, keep):
    ctx = {"incumbent": {"metric": 1.0}, "direction": "minimize", "noise_margin": margin}
    assert default_accept({"status": "ok", "metric": metric}, ctx) is keep
    flipped = {**ctx, "direction": "maximize", "incumbent": {"metric": 1.0}}
    assert default_accept({"status": "ok", "metric": 2 - metric}, flipped) is keep


def test_noise_repeats_must_leave_budget():
    with pytest.raises(ValueError, match="leaves no budget"):
        RunConfig(iterations=4, cycle=2, noise_repeats=4)


def test_a_missing_optuna_is_one_line_before_any_work(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from bilevel.cli import app

    monkeypatch.setitem(__import__("sys").modules, "optuna", None)  # as if not installed
    with pytest.raises(ValueError, match=r"\[bench\]"):
        classical.require()
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--arm", "random", "--run-dir", str(run_dir)])
    assert result.exit_code == 2
    assert "pip install 'bilevel-autoresearch[bench]'" in result.output  # brackets kept
    assert not (run_dir / "ledger.sqlite").exists()  # refused before the baseline
