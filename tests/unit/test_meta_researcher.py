from bilevel.agents import meta_researcher as meta
from bilevel.config import MAX_FROZEN, MIN_ACTIVE


def test_constants_round_trip():
    source = meta.library()["ucb_bandit"]
    values = meta.constants(source)
    assert values["EXPLORATION"] == 1.0
    changed = meta.set_constants(source, {"EXPLORATION": 2.5})
    assert meta.constants(changed)["EXPLORATION"] == 2.5
    assert meta.diff(source, changed, "a", "b").count("\n+EXPLORATION = 2.5") == 1


def test_symptoms_steer_the_first_pick():
    stuck = {"accepted": 0, "fixation": 0.2, "repeat_rate": 0.0}
    repeats = {"accepted": 2, "improvement": 0.0, "repeat_rate": 0.5, "fixation": 0.2}
    assert meta.choose_mechanism(stuck, {}, "default", "s")[0] in meta.SYMPTOMS["stuck"]
    assert meta.choose_mechanism(repeats, {}, "default", "s")[0] in meta.SYMPTOMS["repeats"]


def test_learns_what_pays_and_skips_what_validation_rejected():
    memory: dict = {}
    for name in meta.library():
        meta.credit(memory, name, meta.constants(meta.library()[name]), 0.0)
    meta.credit(memory, "tabu", meta.constants(meta.library()["tabu"]), 50.0)
    name, values, source = meta.choose_mechanism({"accepted": 1}, memory, "default", "x")
    assert name == "tabu" and meta.constants(source) == values
    meta.reject(memory, "tabu", "select returned [9]")
    for seed in range(20):
        choice = meta.choose_mechanism({"accepted": 1}, memory, "default", str(seed))
        assert choice is None or choice[0] != "tabu"


def test_params_freeze_only_flat_knobs_within_caps():
    names = [f"p{i}" for i in range(8)]
    assessment = {
        "sensitivity": {n: 0.0 for n in names} | {"p0": 0.5},
        "changed": {n: 3 for n in names},
        "metric": 1.0,
        "accepted": 1,
    }
    params = meta.adjust_params({}, assessment, names)
    assert "p0" not in params["frozen"]  # it moved the metric: never frozen
    for _ in range(5):
        params = meta.adjust_params(params, assessment, names)
    assert len(params["frozen"]) <= MAX_FROZEN
    assert len(names) - len(params["frozen"]) >= MIN_ACTIVE
