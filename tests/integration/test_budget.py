"""Budget = evaluations: a step never passes without a trial while the space has something new."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bilevel.config import RunConfig
from bilevel.objectives.base import register
from bilevel.objectives.space import Param, SearchSpace
from bilevel.objectives.synthetic import SyntheticObjective
from bilevel.runner import arun
from tests.helpers import ledger_query

pytestmark = pytest.mark.slow


def narrow() -> SyntheticObjective:
    """One int knob, optimum at 20: the prior's +-1, /2, x2 moves run out near the optimum."""
    space = SearchSpace(params=[Param(name="n", kind="int", default=5, low=0, high=40)])
    return SyntheticObjective(
        name="test:narrow",
        description="a quadratic in one int",
        space=space,
        fn=lambda c: float((c["n"] - 20) ** 2),
        optimum=0.0,
        optimum_config={"n": 20},
    )


def tiny() -> SyntheticObjective:
    """Eight configs in all."""
    space = SearchSpace(
        params=[
            Param(name="a", kind="int", default=0, low=0, high=3),
            Param(name="b", kind="categorical", default="x", choices=["x", "y"]),
        ]
    )
    return SyntheticObjective(
        name="test:tiny",
        description="eight configs",
        space=space,
        fn=lambda c: float(c["a"] + (c["b"] == "y")),
        optimum=0.0,
        optimum_config={"a": 0, "b": "x"},
    )


register("test:narrow")(lambda **_: narrow())
register("test:tiny")(lambda **_: tiny())


@pytest.mark.parametrize("arm", ["inner", "full"])
async def test_every_evaluation_is_spent_and_none_repeats(tmp_path: Path, arm: str):
    config = RunConfig(objective="test:narrow", arm=arm, iterations=30, cycle=10)
    summary = await arun(config, tmp_path / "run")
    trials = ledger_query(tmp_path / "run", "SELECT config, source FROM trials")
    assert summary["trials"] == summary["budget"] == len(trials) == 31
    configs = [json.loads(t["config"])["n"] for t in trials]
    assert len(set(configs)) == len(configs)  # nothing evaluated twice
    assert "fallback" in {t["source"] for t in trials}  # the prior ran out; the fallback filled in
    assert summary["best_metric"] == 0.0


async def test_an_exhausted_space_ends_with_a_note_per_step(tmp_path: Path):
    config = RunConfig(objective="test:tiny", arm="inner", iterations=12, cycle=4)
    summary = await arun(config, tmp_path / "run")
    assert summary["trials"] == 8  # every config once, then nothing new exists
    notes = ledger_query(tmp_path / "run", "SELECT kind FROM notes WHERE kind = 'space_exhausted'")
    assert len(notes) == 12 - 7
