"""The built-in mechanism library: contract conformance and one behaviour test per mechanism.

Every ``agents/mechanisms/*.py`` (except ``__init__.py`` and ``default.py``) is exec'd as plain
Python into a fresh namespace; its hooks are called on ctx dicts built exactly as the contract
docstring in ``bilevel/contract.py`` describes them.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import math
import random
import time
from pathlib import Path

import pytest
from RestrictedPython import compile_restricted

from bilevel.contract import HOOKS, better, check_result

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    p
    for p in (ROOT / "agents" / "mechanisms").glob("*.py")
    if p.name not in ("__init__.py", "default.py")
)
ALLOWED_IMPORTS = {
    "math",
    "random",
    "statistics",
    "itertools",
    "functools",
    "collections",
    "heapq",
    "bisect",
}

MIXED = {
    "lr": {"type": "logfloat", "low": 1e-4, "high": 1e-1, "default": 1e-3},
    "batch_size": {"type": "int", "low": 8, "high": 512, "default": 64},
    "n_layer": {"type": "int", "low": 1, "high": 12, "default": 4},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "default": 0.1},
    "weight_decay": {"type": "float", "low": 0.001, "high": 1.0, "default": 0.01},
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd", "lion"], "default": "adamw"},
    "warmup": {"type": "int", "low": 0, "high": 1000, "default": 100},
    "beta2": {"type": "float", "low": 0.9, "high": 0.999, "default": 0.95},
    "activation": {"type": "categorical", "choices": ["gelu", "relu"], "default": "gelu"},
}
CATEGORICAL = {
    "optimizer": {
        "type": "categorical",
        "choices": ["adamw", "sgd", "lion", "adafactor"],
        "default": "adamw",
    },
    "activation": {"type": "categorical", "choices": ["gelu", "relu", "silu"], "default": "gelu"},
    "norm": {"type": "categorical", "choices": ["layer", "rms"], "default": "layer"},
    "tie_weights": {"type": "categorical", "choices": [True, False], "default": True},
    "schedule": {
        "type": "categorical",
        "choices": ["cosine", "linear", "constant"],
        "default": "cosine",
    },
    "depth": {"type": "int", "low": 1, "high": 8, "default": 2},
    "init": {"type": "categorical", "choices": ["normal", "xavier"], "default": "normal"},
}
FLOATS = {n: {"type": "float", "low": 0.01, "high": 100.0, "default": 1.0} for n in "abcdefgh"}


# --- building contexts ------------------------------------------------------------------------


def load(path: Path) -> dict:
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def defaults(space):
    return {name: spec["default"] for name, spec in space.items()}


def neighbors(space, config):
    """Canonical steps from config, as the contract defines them: clipped, current excluded."""
    out = {}
    for name, spec in space.items():
        v = config[name]
        if spec["type"] == "categorical":
            out[name] = [c for c in spec["choices"] if c != v]
            continue
        raw = [v - 1, v + 1, v // 2, v * 2] if spec["type"] == "int" else [v / 2, v * 2]
        values = []
        for x in raw:
            x = min(max(x, spec["low"]), spec["high"])
            x = int(x) if spec["type"] == "int" else float(x)
            if x != v and x not in values:
                values.append(x)
        out[name] = values
    return out


def objective(space, config):
    """A smooth synthetic loss with its optimum away from the defaults."""
    loss = 1.0
    for i, (name, spec) in enumerate(space.items()):
        v = config[name]
        if spec["type"] == "categorical":
            loss += 0.05 * (spec["choices"].index(v) != len(spec["choices"]) - 1)
        else:
            lo, hi = spec["low"], spec["high"]
            x = (
                (math.log(v / lo) / math.log(hi / lo))
                if spec["type"] == "logfloat"
                else ((v - lo) / (hi - lo))
            )
            loss += (x - 0.3 - 0.05 * i) ** 2
    return loss


def make_history(space, n, rng, direction="minimize", fail=False):
    """A prior-like trace: 1-3 changes, strongly preferring the first-listed parameters."""
    names = list(space)
    weights = [1.0 / (i + 1) ** 2 for i in range(len(names))]
    sign = 1.0 if direction == "minimize" else -1.0
    inc = defaults(space)
    inc_metric = None if fail else sign * objective(space, inc)
    history = []
    for t in range(1, n + 1):
        chosen = set(rng.choices(names, weights, k=rng.choice([1, 1, 2, 3])))
        nb = neighbors(space, inc)
        changes = {p: rng.choice(nb[p]) for p in chosen if nb[p]}
        config = {**inc, **changes}
        if fail or rng.random() < 0.05:
            status, metric = rng.choice(["crash", "oom", "timeout"]), None
        else:
            status, metric = "ok", sign * objective(space, config) + rng.gauss(0, 0.002)
        accepted = status == "ok" and better(metric, inc_metric, direction)
        history.append(
            {
                "trial": t,
                "config": config,
                "changes": changes,
                "metric": metric,
                "status": status,
                "accepted": accepted,
            }
        )
        if accepted:
            inc, inc_metric = config, metric
    return history, inc, inc_metric


def make_ctx(
    space,
    history=(),
    incumbent=None,
    metric=None,
    baseline_metric=None,
    direction="minimize",
    frozen=(),
    slots=2,
):
    base = defaults(space)
    inc = dict(incumbent or base)
    return {
        "iteration": len(history),
        "cycle": 0,
        "evaluations_left": 50,
        "picks": slots,
        "seed": 7,
        "direction": direction,
        "space": copy.deepcopy(space),
        "baseline": {"config": base, "metric": baseline_metric},
        "incumbent": {"config": inc, "metric": metric},
        "history": list(history),
        "frozen": list(frozen),
        "neighbors": neighbors(space, inc),
        "memory": {},
    }


def scenario(name):
    rng = random.Random(name)
    if name == "empty":
        return make_ctx(
            MIXED,
            metric=objective(MIXED, defaults(MIXED)),
            baseline_metric=objective(MIXED, defaults(MIXED)),
        )
    if name == "all_failed":
        return make_ctx(MIXED, make_history(MIXED, 20, rng, fail=True)[0])
    space, n, direction, frozen = MIXED, 40, "minimize", ()
    if name == "long":
        n = 300
    elif name == "categorical":
        space = CATEGORICAL
    elif name == "maximize":
        direction = "maximize"
    elif name == "frozen":
        frozen = ("lr", "batch_size", "optimizer", "beta2", "activation")
    history, inc, metric = make_history(space, n, rng, direction)
    base_metric = (1.0 if direction == "minimize" else -1.0) * objective(space, defaults(space))
    if name == "incumbent_none":
        metric = base_metric = None  # e.g. a restart whose baseline re-run crashed
    return make_ctx(space, history, inc, metric, base_metric, direction, frozen)


SCENARIOS = ["empty", "long", "all_failed", "categorical", "maximize", "frozen", "incumbent_none"]


def candidates_for(ctx, rng):
    """Researcher-like candidates (never frozen), plus an exact repeat of a past trial."""
    active = [p for p in ctx["space"] if p not in ctx["frozen"] and ctx["neighbors"][p]]
    out = []
    for k in (1, 2, 3, 1):
        chosen = rng.sample(active, min(k, len(active)))
        out.append(
            {
                "changes": {p: rng.choice(ctx["neighbors"][p]) for p in chosen},
                "source": "researcher",
                "hypothesis": "prior guess",
            }
        )
    inc = ctx["incumbent"]["config"]
    for trial in reversed(ctx["history"]):
        diff = {k: v for k, v in trial["config"].items() if inc.get(k) != v}
        if diff and not set(diff) & set(ctx["frozen"]):
            out.append({"changes": diff, "source": "researcher", "hypothesis": "repeat"})
            break
    return out


def trials_for(ctx):
    m = ctx["incumbent"]["metric"]
    m = 1.0 if m is None else m
    config = {**ctx["incumbent"]["config"]}
    return [
        {"trial": 999, "config": config, "changes": {}, "metric": m - 0.1 * abs(m), "status": "ok"},
        {
            "trial": 999,
            "config": config,
            "changes": {},
            "metric": m + 0.001 * abs(m),
            "status": "ok",
        },
        {"trial": 999, "config": config, "changes": {}, "metric": None, "status": "crash"},
        {"trial": 999, "config": config, "changes": {}, "metric": None, "status": "nan"},
    ]


def in_space(spec, value):
    if spec["type"] == "categorical":
        return value in spec["choices"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if spec["type"] == "int" and value != int(value):
        return False
    return spec["low"] <= value <= spec["high"]


def assert_changes_ok(changes, ctx):
    for name, value in changes.items():
        assert name in ctx["space"], f"unknown parameter {name!r}"
        assert name not in ctx["frozen"], f"changed frozen parameter {name!r}"
        assert in_space(ctx["space"][name], value), f"{name}={value!r} outside the space"


def call(namespace, hook, args, seed=0):
    random.seed(seed)  # the sandbox seeds the module-level random per call
    start = time.perf_counter()
    value = namespace[hook](*args)
    return value, time.perf_counter() - start


# --- every mechanism, every context: the contract --------------------------------------------


def test_library_is_there():
    names = {p.stem for p in FILES}
    assert {"ucb_bandit", "tabu", "orthogonal", "annealing", "diversity", "surrogate"} <= names


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_hooks_follow_contract(path, name):
    namespace = load(path)
    hooks = [h for h in HOOKS if callable(namespace.get(h))]
    assert hooks, f"{path.name} defines no hook"
    ctx = scenario(name)
    rng = random.Random(1)
    frozen_view = json.dumps({k: v for k, v in ctx.items() if k != "memory"}, sort_keys=True)
    slowest = 0.0
    for round_ in range(4):  # memory survives between calls as JSON, like graph state
        for hook in hooks:
            if hook in ("propose", "advise"):
                argsets = [[ctx]]
            elif hook == "review":
                argsets = [[c, ctx] for c in candidates_for(ctx, rng)]
            elif hook == "select":
                argsets = [[candidates_for(ctx, rng), ctx]]
            else:
                argsets = [[t, ctx] for t in trials_for(ctx)]
            for args in argsets:
                value, seconds = call(namespace, hook, args, seed=round_)
                slowest = max(slowest, seconds)
                value = check_result(hook, value, args)
                text = json.dumps(ctx["memory"], allow_nan=False)
                assert json.loads(text) == ctx["memory"], "memory must be plain JSON"
                ctx["memory"] = json.loads(text)
                if hook == "propose":
                    for changes in value:
                        assert_changes_ok(changes, ctx)
                elif hook == "review" and value is not None:
                    assert_changes_ok(value["changes"], ctx)
                    assert set(value["changes"]) <= set(args[0]["changes"]) | set(ctx["space"])
                elif hook == "accept" and args[0]["status"] != "ok":
                    assert value is False
    now = json.dumps({k: v for k, v in ctx.items() if k != "memory"}, sort_keys=True)
    assert now == frozen_view, "hooks may change ctx['memory'] only"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_source_follows_sandbox_rules(path):
    source = path.read_text()
    assert len(source.splitlines()) < 200
    tree = ast.parse(source)
    assert ast.get_docstring(tree), "a module docstring first"
    compile_restricted(source, str(path), "exec")  # raises SyntaxError on a policy violation
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.FunctionDef | ast.arg):
            name = getattr(node, "id", None) or getattr(node, "name", None) or node.arg
            assert not name.startswith("_"), name
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_"), node.attr
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert set(mods) <= ALLOWED_IMPORTS, mods
        if isinstance(node, ast.AugAssign):
            assert isinstance(node.target, ast.Name), "augmented assignment to item/attribute"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"open", "eval", "exec", "getattr", "globals", "compile"}
    for node in tree.body[1:]:
        if isinstance(node, ast.Assign):  # tunable constants: NAME = literal, one per line
            assert len(node.targets) == 1 and node.targets[0].id.isupper()
            assert isinstance(node.value, ast.Constant), node.targets[0].id
            assert isinstance(node.value.value, int | float | str)
            assert node.lineno == node.end_lineno
        else:
            assert isinstance(node, ast.Import | ast.FunctionDef), ast.dump(node)[:60]


def test_files_pass_the_sandbox_policy():
    try:
        policy = importlib.import_module("bilevel.sandbox.policy")
    except ImportError as exc:
        pytest.skip(f"bilevel.sandbox.policy is not there yet ({exc})")
    if not (hasattr(policy, "compile_mechanism") and hasattr(policy, "precheck")):
        pytest.skip("bilevel.sandbox.policy lacks compile_mechanism/precheck")
    for path in FILES:
        source = path.read_text()
        found = policy.precheck(source)
        assert not isinstance(found, list | tuple) or not found, (path.name, found)
        assert found is not False, path.name
        assert policy.compile_mechanism(source) is not None, path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_hooks_agree_under_the_sandbox_guards(path):
    """Same results under RestrictedPython's guards as in plain Python, and fast there too."""
    try:
        policy = importlib.import_module("bilevel.sandbox.policy")
    except ImportError as exc:
        pytest.skip(f"bilevel.sandbox.policy is not there yet ({exc})")
    if not hasattr(policy, "restricted_globals"):
        pytest.skip("bilevel.sandbox.policy lacks restricted_globals")
    guarded = policy.restricted_globals()
    exec(policy.compile_mechanism(path.read_text()), guarded)
    plain = load(path)
    slowest = 0.0
    for name in ("long", "all_failed", "categorical", "incumbent_none"):
        ctx = scenario(name)
        twin = json.loads(json.dumps(ctx))
        rng = random.Random(2)
        for hook in [h for h in HOOKS if callable(plain.get(h))]:
            cands = candidates_for(ctx, rng)
            args = {"review": [cands[0]], "select": [cands], "accept": [trials_for(ctx)[1]]}
            args = args.get(hook, [])
            got, seconds = call(guarded, hook, [*args, ctx], seed=5)
            want, _ = call(plain, hook, [*json.loads(json.dumps(args)), twin], seed=5)
            assert got == want and ctx["memory"] == twin["memory"], (name, hook)
            slowest = max(slowest, seconds)


# --- behaviour: each mechanism does what it claims --------------------------------------------


def mechanism(stem):
    return load(ROOT / "agents" / "mechanisms" / f"{stem}.py")


def trial(t, config, changes, metric, accepted, status="ok"):
    return {
        "trial": t,
        "config": {**config, **changes},
        "changes": changes,
        "metric": metric,
        "status": status,
        "accepted": accepted,
    }


def test_bandit_returns_to_the_neglected_parameter_that_paid_off():
    bandit = mechanism("ucb_bandit")
    base = defaults(FLOATS)
    history, t, metric = [], 0, 1.0
    for _ in range(20):  # the prior's favourite: always a bit worse
        t += 1
        history.append(trial(t, base, {"a": 2.0}, metric * 1.05, False))
    for p in "bcdefg":  # everything else: neutral
        for _ in range(4):
            t += 1
            history.append(trial(t, base, {p: 0.5}, metric, False))
    inc = dict(base)
    for value in (2.0, 4.0):  # the last-listed parameter, twice a clear gain
        t += 1
        metric *= 0.9
        history.append(trial(t, inc, {"h": value}, metric, True))
        inc = {**inc, "h": value}
    ctx = make_ctx(FLOATS, history, inc, metric, 1.0)
    out, _ = call(bandit, "propose", [ctx])
    assert out == [{"h": 8.0}] or out == [{"h": 2.0}]
    assert ctx["memory"]["arms"]["h"][1] > ctx["memory"]["arms"]["a"][1]
    # an arm never played comes first, the last-listed one before the others
    ctx = make_ctx(FLOATS, history[:20], base, 1.0, 1.0)
    out, _ = call(bandit, "propose", [ctx])
    assert list(out[0]) == ["h"]


def test_tabu_vetoes_repeats_and_recently_failed_moves():
    tabu = mechanism("tabu")
    base = defaults(MIXED)
    history = [
        trial(1, base, {"lr": 0.002}, 1.2, False),
        trial(2, base, {"dropout": 0.2, "n_layer": 8}, 1.3, False),
    ]
    ctx = make_ctx(MIXED, history, base, 1.0, 1.0)
    cand = {"changes": {"dropout": 0.2, "n_layer": 8}, "source": "r", "hypothesis": "h"}
    assert tabu["review"](cand, ctx) is None  # exact repeat of trial 2
    cand = {"changes": {"lr": 0.002 * 1.5}, "source": "r", "hypothesis": "h"}
    assert tabu["review"](cand, ctx) is None  # lr up failed one trial ago
    cand = {"changes": {"lr": 0.0005, "warmup": 50}, "source": "r", "hypothesis": "h"}
    assert tabu["review"](cand, ctx) == cand  # lr down is a different move
    cand = {"changes": {"lr": 0.004, "warmup": 50}, "source": "r", "hypothesis": "h"}
    assert tabu["review"](cand, ctx)["changes"] == {"warmup": 50}  # tabu move dropped
    assert tabu["propose"](ctx) == []  # two rejections: not stuck yet
    history.append(trial(3, base, {"lr": 0.0005}, 1.1, False))
    ctx = make_ctx(MIXED, history, base, 1.0, 1.0, frozen=["activation"])
    out, _ = call(tabu, "propose", [ctx])
    assert list(out[0]) == ["beta2"]  # never changed, last listed, not frozen
    assert "lr:up" in ctx["memory"]["tabu"]


def test_orthogonal_rows_are_balanced_and_the_best_combination_follows():
    ortho = mechanism("orthogonal")
    for factors in (3, 7, 11):
        rows = ortho["array"](factors)
        cols = list(zip(*rows, strict=True))
        assert len(rows) == {3: 4, 7: 8, 11: 12}[factors]
        for i, col in enumerate(cols):
            assert col.count("+") == col.count("-")
            for other in cols[i + 1 :]:
                assert sum(1 if a == b else -1 for a, b in zip(col, other, strict=True)) == 0
    base = defaults(FLOATS)
    ctx = make_ctx(FLOATS, [], base, 1.0, 1.0, frozen=["a"])
    rows = []
    for _ in range(8):  # ROWS_PER_CALL rows per call
        out, _ = call(ortho, "propose", [ctx])
        rows += out
    assert len(rows) == 8 and all(len(r) == 7 and "a" not in r for r in rows)
    for p in "bcdefgh":
        assert sorted(r[p] for r in rows) == [0.5] * 4 + [2.0] * 4
    # results: low is better for b, c; high for the others -> the best row is not in the design
    history = [
        trial(i + 1, base, r, sum(v if p in "bc" else -v for p, v in r.items()), False)
        for i, r in enumerate(rows)
    ]
    ctx["history"] = history
    out, _ = call(ortho, "propose", [ctx])
    assert out == [{**{p: 2.0 for p in "defgh"}, "b": 0.5, "c": 0.5}]
    out, _ = call(ortho, "propose", [ctx])  # done: a fresh design starts
    assert ctx["memory"]["design"]["next"] == 1 and len(out) == 1
    ctx["incumbent"]["config"] = {**base, "b": 0.5}  # a new incumbent restarts the design
    call(ortho, "propose", [ctx])
    assert ctx["memory"]["design"]["next"] == 1 and "b=0.5" in ctx["memory"]["design"]["key"]


def test_annealing_is_scaled_by_the_observed_spread_and_bounded():
    anneal = mechanism("annealing")
    metrics = [1.0 + 0.01 * (i % 5) for i in range(10)]  # spread (sd) ~ 0.0149
    history = [{"trial": i + 1, "config": {}, "changes": {}, "metric": m, "status": "ok",
                "accepted": False, "source": "prior"} for i, m in enumerate(metrics)]  # fmt: skip
    ctx = make_ctx(MIXED, history, None, 1.0, 1.0)
    slight = {"trial": 11, "config": {}, "changes": {}, "metric": 1.0001, "status": "ok"}
    large = {**slight, "metric": 1.05}  # ~3.4 spreads worse
    kept_slight = kept_large = 0
    for seed in range(200):
        ctx["memory"] = {}
        kept_slight += call(anneal, "accept", [slight, ctx], seed)[0]
        ctx["memory"] = {}
        kept_large += call(anneal, "accept", [large, ctx], seed)[0]
    assert 120 < kept_slight < 200  # exp(-0.0001 / (0.1 x 0.0149)) ~ 0.94
    assert kept_large == 0  # exp(-34) : never
    # the same relative step on a metric 1000x larger: the same decisions (scale-free)
    big = make_ctx(MIXED, [{**t, "metric": 1000 * t["metric"]} for t in history], None, 1000.0)
    for seed in range(20):
        big["memory"], ctx["memory"] = {}, {}
        assert (call(anneal, "accept", [{**slight, "metric": 1000.1}, big], seed)[0]
                == call(anneal, "accept", [slight, ctx], seed)[0])  # fmt: skip
    ctx["memory"] = {"kept_worse": 6}  # at most MAX_WORSE worse trials a run
    assert not any(call(anneal, "accept", [slight, ctx], seed)[0] for seed in range(50))
    assert anneal["accept"]({**large, "metric": 0.5}, ctx) is True  # better: always
    assert anneal["accept"]({**large, "metric": None, "status": "crash"}, ctx) is False
    greedy = make_ctx(MIXED, [], None, 1.0, 1.0)  # no spread yet: greedy
    assert anneal["accept"](slight, greedy) is False
    ctx["direction"], ctx["memory"] = "maximize", {}
    assert anneal["accept"]({**large, "metric": 0.5}, ctx) is False
    assert anneal["accept"](large, ctx) is True


def test_diversity_names_and_proposes_the_untouched_parameter():
    div = mechanism("diversity")
    base = defaults(MIXED)
    history = [trial(i + 1, base, {"lr": 0.002 if i % 2 else 0.0005}, 1.1, False) for i in range(8)]
    history.append(trial(9, base, {"batch_size": 128}, 1.1, False))
    ctx = make_ctx(MIXED, history, base, 1.0, 1.0, frozen=["activation"])
    advice = div["advise"](ctx)
    assert "beta2" in advice and "activation" not in advice and "lr took 89%" in advice
    assert "\n" not in advice
    out, _ = call(div, "propose", [ctx])
    assert list(out[0]) == ["beta2"]
    cand = {"changes": {"lr": 0.002}, "source": "r", "hypothesis": "h"}
    assert div["review"](cand, ctx) is None
    cand["changes"] = {"lr": 0.004}
    assert div["review"](cand, ctx) == cand
    assert div["advise"](make_ctx(MIXED)) == ""  # nothing to judge yet


def test_surrogate_picks_the_candidate_nearest_the_best_point():
    sur = mechanism("surrogate")
    base = defaults(FLOATS)
    best = {"a": 10.0, "b": 10.0}
    history = [trial(1, base, best, 0.2, True)]
    rng = random.Random(3)
    for t in range(2, 30):
        far = {p: rng.choice([0.05, 50.0, 80.0]) for p in "abcd"}
        history.append(trial(t, base, far, 3.0 + rng.random(), False))
    near = {"changes": {"a": 10.0, "b": 12.0}, "source": "r", "hypothesis": "near"}
    away = {"changes": {"a": 60.0, "b": 0.05}, "source": "r", "hypothesis": "away"}
    ctx = make_ctx(FLOATS, history, base, 0.2, 1.0, slots=1)
    assert sur["select"]([away, near], ctx) == [1]
    ctx["direction"] = "maximize"  # now high metrics are good: the far region wins
    assert sur["select"]([near, away], ctx) == [1]
    assert sur["select"]([away, near], make_ctx(FLOATS, history[:3], slots=1)) == [0]
