"""The space-filling fallback: new configs only, inside the space, and [] only when exhausted."""

from bilevel.agents import fallback
from bilevel.agents.researcher import canonical
from bilevel.objectives import make_objective
from bilevel.objectives.space import Param, SearchSpace

SPACE = make_objective("synthetic:late-lever").space
BASE = SPACE.defaults()


def test_new_configs_inside_the_space_deterministic_and_never_frozen():
    evaluated = {canonical(BASE)}
    a = fallback.propose(SPACE, BASE, ["lr"], 4, "0:1", evaluated)
    assert a == fallback.propose(SPACE, BASE, ["lr"], 4, "0:1", evaluated)
    assert a != fallback.propose(SPACE, BASE, ["lr"], 4, "0:2", evaluated)
    keys = [canonical({**BASE, **c["changes"]}) for c in a]
    assert len(a) == 4 and len(set(keys)) == 4 and not set(keys) & evaluated
    for c in a:
        SPACE.validate_changes(c["changes"])  # no repair needed
        assert "lr" not in c["changes"] and c["source"] == "fallback"


def test_reaches_values_off_the_halving_grid():
    """Moves land between the x2 / /2 steps the prior takes."""
    grid = {BASE["lr"] * 2**k for k in range(-8, 9)}
    found = fallback.propose(SPACE, BASE, [], 16, "grid", {canonical(BASE)})
    lrs = [c["changes"]["lr"] for c in found if "lr" in c["changes"]]
    assert lrs and any(min(abs(v - g) / g for g in grid) > 0.05 for v in lrs)


def test_a_finite_space_runs_out():
    tiny = SearchSpace(
        params=[
            Param(name="a", kind="int", default=0, low=0, high=1),
            Param(name="b", kind="categorical", default="x", choices=["x", "y"]),
        ]
    )
    base = tiny.defaults()
    seen = {canonical(base)}
    for i in range(3):
        (cand,) = fallback.propose(tiny, base, [], 1, f"t:{i}", seen)
        seen.add(canonical({**base, **cand["changes"]}))
    assert len(seen) == 4
    assert fallback.propose(tiny, base, [], 1, "t:9", seen) == []


def test_avoids_configs_in_flight():
    tiny = SearchSpace(params=[Param(name="a", kind="int", default=0, low=0, high=2)])
    running = [{"a": 1}]
    (cand,) = fallback.propose(tiny, {"a": 0}, [], 2, "f", {canonical({"a": 0})}, avoid=running)
    assert cand["changes"] == {"a": 2}
