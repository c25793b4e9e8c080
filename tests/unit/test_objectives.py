import asyncio
import time

import pytest

from bilevel.objectives import UnknownObjective, make_objective, registered

SYNTHETIC = sorted(n for n in registered() if n.startswith("synthetic:"))


def test_at_least_four_synthetic_objectives():
    assert len(SYNTHETIC) >= 4


@pytest.mark.parametrize("name", SYNTHETIC)
def test_known_optimum_beats_baseline_and_is_exact(name):
    obj = make_objective(name, noise=0.0)
    assert obj.value(obj.optimum_config) == pytest.approx(obj.optimum)
    assert obj.value(obj.space.defaults()) > obj.optimum + 0.1


@pytest.mark.parametrize("name", SYNTHETIC)
def test_evaluation_is_fast(name):
    obj = make_objective(name)
    config = obj.space.defaults()
    start = time.perf_counter()
    for seed in range(200):
        asyncio.run(obj.evaluate(config, seed)) if seed == 0 else obj.value(config)
    assert (time.perf_counter() - start) / 200 < 0.01


def test_noise_is_seeded():
    obj = make_objective("synthetic:late-lever", noise=0.05)
    c = obj.space.defaults()
    a, b, other = (asyncio.run(obj.evaluate(c, s)).metric for s in (3, 3, 4))
    assert a == b != other
    assert asyncio.run(make_objective("synthetic:late-lever").evaluate(c, 3)).metric == obj.value(c)


def largest_single_effect(obj) -> str:
    base = obj.space.defaults()
    gains = {}
    for p in obj.space.params:
        best = min((obj.value({**base, p.name: v}) or 9e9) for v in p.neighbors(base[p.name]))
        gains[p.name] = obj.value(base) - best
    return max(gains, key=gains.__getitem__)


def test_late_lever_trap_biggest_effect_is_listed_last():
    obj = make_objective("synthetic:late-lever")
    assert largest_single_effect(obj) == obj.space.names[-1]


def test_trainsim_lever_is_last_and_high_lr_diverges():
    obj = make_objective("synthetic:trainsim")
    assert largest_single_effect(obj) == "total_batch_size"
    assert obj.space.names[-1] == "total_batch_size"
    result = asyncio.run(obj.evaluate({"lr": 3e-2, "total_batch_size": 4096}, 0))
    assert result.status == "nan" and result.metric is None


def test_interact_trap_needs_a_joint_move():
    obj = make_objective("synthetic:interact")
    base = obj.space.defaults()
    f0 = obj.value(base)
    assert obj.value({**base, "batch_size": 128}) > f0
    assert obj.value({**base, "lr": base["lr"] / 2}) > f0
    assert obj.value({**base, "batch_size": 128, "lr": base["lr"] / 2}) < f0


def test_deceptive_trap_shallow_basin_is_a_local_minimum():
    obj = make_objective("synthetic:deceptive")
    local = {**obj.space.defaults(), "lr": 2e-3, "width": 512, "warmup": 0.1, "dropout": 0.05}
    f_local = obj.value(local)
    for p in ("lr", "width", "depth"):
        for v in obj.space[p].neighbors(local[p]):
            assert obj.value({**local, p: v}) > f_local
    assert f_local > obj.optimum + 0.3


def test_unknown_objective_and_bad_options():
    with pytest.raises(UnknownObjective, match="choose one of"):
        make_objective("synthetic:nope")
    with pytest.raises(UnknownObjective, match="bad options"):
        make_objective("synthetic:deceptive", colour="red")
