import pytest

from bilevel.objectives import Param, SearchSpace, SpaceError


def space() -> SearchSpace:
    return SearchSpace(
        params=[
            Param(name="lr", kind="logfloat", default=1e-3, low=1e-5, high=1e-1),
            Param(name="warmup", kind="float", default=0.0, low=0.0, high=0.5),
            Param(name="depth", kind="int", default=4, low=1, high=16),
            Param(name="act", kind="categorical", default="gelu", choices=["relu", "gelu", "silu"]),
        ]
    )


def test_defaults_and_validate_fill_in():
    s = space()
    assert s.validate({"depth": 8}) == {"lr": 1e-3, "warmup": 0.0, "depth": 8, "act": "gelu"}


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"lr": 2.0}, "lr=2.0 is out of range: expected number in [1e-05, 0.1]"),
        ({"depth": 2.5}, "depth=2.5 is not an integer"),
        ({"act": "tanh"}, "act='tanh' is not allowed: expected one of 'relu', 'gelu', 'silu'"),
        ({"nope": 1}, "unknown parameter 'nope'"),
        ({"warmup": "high"}, "warmup='high' is not a number"),
        ({"warmup": float("nan")}, "warmup=nan is not finite"),
    ],
)
def test_errors_name_the_parameter_and_range(changes, needle):
    with pytest.raises(SpaceError, match=None) as info:
        space().validate_changes(changes)
    assert needle in str(info.value)


def test_repair_clips_numbers_but_not_categories():
    s = space()
    assert s.validate_changes({"lr": 5.0, "depth": 40, "warmup": -1}, repair=True) == {
        "lr": 0.1,
        "depth": 16,
        "warmup": 0.0,
    }
    with pytest.raises(SpaceError):
        s.validate_changes({"act": "tanh"}, repair=True)


def test_neighbors_are_canonical_steps_inside_the_space():
    s = space()
    n = s.neighbors({"lr": 1e-1, "warmup": 0.0, "depth": 1, "act": "gelu"})
    assert n["lr"] == [0.05]  # x2 would leave the space
    assert n["warmup"] == [0.05]  # zero steps to 10% of the range
    assert sorted(n["depth"]) == [2]
    assert n["act"] == ["relu", "silu"]


def test_bad_param_definitions_are_refused():
    with pytest.raises(ValueError):
        Param(name="x", kind="float", default=2.0, low=0.0, high=1.0)
    with pytest.raises(ValueError):
        Param(name="x", kind="logfloat", default=1.0, low=0.0, high=1.0)
    with pytest.raises(ValueError):
        SearchSpace(params=[Param(name="x", kind="int", default=1, low=0, high=2)] * 2)


def test_int_grids_step_and_power_of_two():
    from bilevel.objectives.space import Param, SearchSpace

    batch = Param(name="batch", kind="int", default=64, low=8, high=1024, pow2=True)
    width = Param(name="width", kind="int", default=96, low=32, high=512, step=32)
    assert batch.repair(100) == 128 and batch.repair(5000) == 1024 and batch.repair(90.0) == 64
    assert width.repair(100) == 96 and width.repair(511) == 512 and width.repair(1) == 32
    for bad, param in ((100, batch), (100, width)):
        try:
            param.check(bad)
        except ValueError as exc:
            assert "off its grid" in str(exc)
        else:
            raise AssertionError(f"{bad} accepted by {param.name}")
    assert sorted(batch.neighbors(64)) == [32, 128]
    assert sorted(width.neighbors(96)) == [32, 64, 128, 192]  # +-32, /2 = 48 snaps to 32, x2
    assert {batch.from_unit(i / 20) for i in range(21)} <= {2**k for k in range(3, 11)}
    space = SearchSpace(params=[batch, width])
    assert SearchSpace.from_json(space.to_json()) == space  # the grid reaches mechanisms' ctx
    for bad_kw in ({"kind": "float", "step": 2}, {"kind": "int", "pow2": True, "low": 0}):
        try:
            Param(name="x", default=4, low=bad_kw.pop("low", 1), high=8, **bad_kw)
        except ValueError:
            pass
        else:
            raise AssertionError(bad_kw)
