from collections import Counter

from bilevel.agents import researcher
from bilevel.objectives import make_objective

SPACE = make_objective("synthetic:late-lever").space
BASE = SPACE.defaults()


def trial(config, changes, accepted, base=BASE):
    return {"config": config, "changes": changes, "accepted": accepted, "base": base}


def test_seeded_and_deterministic():
    a = researcher.propose(SPACE, BASE, [], [], 1.0, 3, seed="7:0")
    b = researcher.propose(SPACE, BASE, [], [], 1.0, 3, seed="7:0")
    c = researcher.propose(SPACE, BASE, [], [], 1.0, 3, seed="7:1")
    assert a == b != c


def test_one_to_three_changes_inside_the_space_never_frozen():
    for i in range(200):
        (cand,) = researcher.propose(SPACE, BASE, [], ["lr", "warmup"], 1.0, 1, seed=f"s:{i}")
        assert 1 <= len(cand["changes"]) <= 3
        assert not {"lr", "warmup"} & set(cand["changes"])
        SPACE.validate_changes(cand["changes"])
        assert cand["source"] == "prior"


def test_prefers_the_first_listed_parameters():
    counts = Counter()
    for i in range(400):
        (cand,) = researcher.propose(SPACE, BASE, [], [], 1.0, 1, seed=f"p:{i}")
        counts.update(cand["changes"].keys())
    names = SPACE.names
    assert counts[names[0]] > 5 * max(counts[names[-1]], 1)
    # a higher temperature flattens the preference
    flat = Counter()
    for i in range(400):
        (cand,) = researcher.propose(SPACE, BASE, [], [], 8.0, 1, seed=f"p:{i}")
        flat.update(cand["changes"].keys())
    assert flat[names[-1]] > 3 * counts[names[-1]]


def test_never_an_exact_repeat():
    history, incumbent = [], dict(BASE)
    seen = {researcher.canonical(BASE)}
    for i in range(60):
        (cand,) = researcher.propose(SPACE, incumbent, history, [], 1.0, 1, seed=f"r:{i}")
        config = {**incumbent, **cand["changes"]}
        assert researcher.canonical(config) not in seen
        seen.add(researcher.canonical(config))
        history.append(trial(config, cand["changes"], False, incumbent))


def test_keeps_a_direction_that_paid_and_reverses_one_that_did_not():
    up = {**BASE, "lr": BASE["lr"] * 2}
    kept = [trial(up, {"lr": up["lr"]}, True)]
    dropped = [trial(up, {"lr": up["lr"]}, False)]
    ups = downs = 0
    for i in range(300):
        a = researcher.step(SPACE, "lr", up["lr"], kept, researcher.random.Random(i))
        b = researcher.step(SPACE, "lr", BASE["lr"], dropped, researcher.random.Random(i))
        ups += a > up["lr"]
        downs += b < BASE["lr"]
    assert ups > 200 and downs > 200


def test_steps_refine_after_moves_that_did_not_pay():
    """After failed changes of lr the step shrinks below x2: values between grid points appear."""
    lr = BASE["lr"]
    failed = [trial({**BASE, "lr": lr * 2}, {"lr": lr * 2}, False) for _ in range(8)]
    ratios = set()
    for i in range(300):
        (cand,) = researcher.propose(SPACE, BASE, failed, [], 8.0, 1, seed=f"f:{i}")
        if "lr" in cand["changes"]:
            ratios.add(round(cand["changes"]["lr"] / lr, 6))
    assert ratios and all(0.9 < r < 1.1 for r in ratios), ratios  # x2^(1/16) either way
