"""Batch plans, seed ranges, executor flags and their one-line errors (no runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from bilevel.batch import BatchPlan, arm_means, run_dir_for
from bilevel.cli import app
from bilevel.cli.scale import build_executor, parse_seeds
from bilevel.execution.executor import LocalExecutor
from bilevel.execution.factory import make_executor


def test_seed_ranges():
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    assert parse_seeds("3") == [3]
    with pytest.raises(ValueError, match="must look like 0,1,2 or 0-4"):
        parse_seeds("a-b")


def test_plan_gives_one_config_per_objective_arm_seed(tmp_path: Path):
    plan = BatchPlan(
        objectives=["synthetic:interact", "synthetic:trainsim"],
        arms=["inner", "restart", "full"],
        seeds=[0, 1],
        iterations=8,
        cycle=4,
        slots=2,
        objective_options={"synthetic:trainsim": {"noise": 0.01}},
    )
    configs = plan.configs()
    assert len(configs) == 12
    assert [(c.objective, c.arm, c.seed) for c in configs[:3]] == [
        ("synthetic:interact", "inner", 0),
        ("synthetic:interact", "inner", 1),
        ("synthetic:interact", "restart", 0),
    ]
    assert all(c.parallel == 2 and c.iterations == 8 for c in configs)
    assert configs[-1].objective_options == {"noise": 0.01} and configs[0].objective_options == {}
    dirs = {run_dir_for(tmp_path, c) for c in configs}
    assert len(dirs) == 12  # every run its own directory


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"objectives": ["x"], "seeds": [1, 1]}, "distinct"),
        ({"objectives": ["x"], "arms": ["sideways"]}, "arms"),
        ({"objectives": ["x"], "colour": "red"}, "colour"),
        ({"objectives": []}, "objectives"),
    ],
)
def test_bad_plans_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        BatchPlan(**fields)


def test_arm_means_average_over_seeds():
    runs = [
        {"objective": "o", "arm": "full", "improvement": 1.0},
        {"objective": "o", "arm": "full", "improvement": 3.0},
        {"objective": "o", "arm": "inner", "improvement": 0.5},
    ]
    means = {m["arm"]: m for m in arm_means(runs)}
    assert means["full"]["mean_improvement"] == 2.0 and means["full"]["runs"] == 2
    assert means["inner"]["sd"] == 0.0


def test_executor_flags():
    assert isinstance(build_executor("local", None, "0,1", 1.0, 0.0, 2), LocalExecutor)
    assert build_executor("local", None, "0, 1", 1.0, 0.0, 2).devices == ["0", "1"]
    with pytest.raises(ValueError, match="--ray-address needs --executor ray"):
        build_executor("local", "auto", None, 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="--devices is for --executor local"):
        build_executor("ray", None, "0", 1.0, 0.0, 1)
    with pytest.raises(ValueError, match="not one of: local, ray"):
        make_executor("slurm")


@pytest.mark.parametrize(
    "args, message",
    [
        (["batch", "--arms", "full"], "name the objectives"),
        (["batch", "--objectives", "synthetic:interact", "--seeds", "x"], "--seeds 'x'"),
        (["batch", "--objectives", "synthetic:interact", "--arms", "up"], "arms"),
        (["batch", "--objectives", "a", "--file", "missing.toml"], "does not exist"),
        (["run", "--executor", "slurm"], "not one of: local, ray"),
        (["run", "--ray-address", "auto"], "--ray-address needs --executor ray"),
    ],
)
def test_cli_mistakes_are_one_line(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
