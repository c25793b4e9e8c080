"""The development suite: each objective's optimum is where it says, and its space is mixed."""

import pytest

from bilevel.objectives import make_objective, registered

SUITE = sorted(n for n in registered() if n.startswith("suite:") and n != "suite:sklearn-hgb")


def test_at_least_eight_test_functions_and_a_real_model():
    assert len(SUITE) >= 8 and "suite:sklearn-hgb" in registered()


@pytest.mark.parametrize("name", SUITE)
def test_the_optimum_is_exact_the_default_is_not_and_the_space_is_mixed(name: str):
    objective = make_objective(name)
    space = objective.space
    assert objective.value(objective.optimum_config) == pytest.approx(objective.optimum, abs=1e-5)
    assert objective.value(space.defaults()) > objective.optimum + 0.1  # a first guess, not it
    kinds = {p.kind for p in space.params}
    assert "logfloat" in kinds and kinds & {"int", "categorical"}, kinds
    lows = [  # no point of a coarse grid beats the stated optimum
        objective.value({p.name: p.from_unit(u) for p in space.params})
        for u in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    assert min(lows) >= objective.optimum - 1e-9


def test_the_trap_hides_its_deep_basin_behind_a_categorical():
    trap = make_objective("suite:trap")
    deep = dict(trap.optimum_config)
    assert trap.value({**deep, "arch": "wide"}) > -1.0 > trap.value(deep)
