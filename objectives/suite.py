"""The development suite: classic test functions embedded in mixed spaces, a deceptive trap, and
a real scikit-learn model tuned by cross-validation (issue 13's "objectives it has never seen").

Every function sees its parameters as coordinates: a float or int directly, a logfloat on its
log scale (so a log parameter is a coordinate stretched the way its range suggests), and the
categoricals and extra ints as penalties or as switches that move the optimum. Defaults are a
person's first guess, never the optimum. All are minimised; `optimum` is exact for the test
functions (each optimum lies on representable values) and estimated for the scikit-learn model
(the comment at SKLEARN_OPTIMUM says how).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bilevel.objectives.base import register
from bilevel.objectives.space import Param, SearchSpace
from bilevel.objectives.synthetic import SyntheticObjective, integer, lin, logf

Config = dict[str, Any]


def choice(name: str, default: str, choices: list[str]) -> Param:
    return Param(name=name, kind="categorical", default=default, choices=choices)


def stretch(value: float, low: float, high: float, to_low: float, to_high: float) -> float:
    """A logfloat's value, read on its log scale, as a coordinate in [to_low, to_high]."""
    u = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return to_low + u * (to_high - to_low)


def branin(c: Config) -> float:
    x1 = c["x1"]
    x2 = stretch(c["x2_scale"], 1e-3, 1.0, 0.0, 15.0)
    b, cc, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    base = (x2 - b * x1**2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10
    return base + 0.05 * (c["order"] - 7) ** 2 + {"a": 0.0, "b": 0.5, "c": 1.0}[c["mode"]]


HARTMANN_A = [
    [10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14],
]  # fmt: skip
HARTMANN_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]
HARTMANN_X = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]


def hartmann6(c: Config) -> float:
    x = [c["h1"], c["h2"], c["h3"], c["h4"], stretch(c["h5"], 1e-3, 1.0, 0.0, 1.0), c["h6"]]
    total = 0.0
    for a, p, alpha in zip(HARTMANN_A, HARTMANN_P, HARTMANN_ALPHA, strict=True):
        total -= alpha * math.exp(
            -sum(ai * (xi - pi) ** 2 for ai, xi, pi in zip(a, x, p, strict=True))
        )
    return total + 0.01 * (c["restarts"] - 3) ** 2 + {"x": 0.0, "y": 0.2, "z": 0.4}[c["kernel"]]


def levy(c: Config) -> float:
    x = [c["l1"], c["l2"], c["l3"], stretch(c["l4"], 1e-4, 1.0, -10.0, 10.0), float(c["l5"])]
    w = [1 + (xi - 1) / 4 for xi in x]
    total = math.sin(math.pi * w[0]) ** 2 + (w[-1] - 1) ** 2 * (
        1 + math.sin(2 * math.pi * w[-1]) ** 2
    )
    for wi in w[:-1]:
        total += (wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2)
    return total + {"sgd": 0.0, "adam": 1.0, "lion": 2.0}[c["solver"]]


def ackley(c: Config) -> float:
    x = [c["a1"], c["a2"], float(c["a3"]), stretch(c["a4"], 1e-3, 1.0, -32.768, 32.768)]
    n = len(x)
    s1, s2 = sum(xi * xi for xi in x) / n, sum(math.cos(2 * math.pi * xi) for xi in x) / n
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def rosenbrock(c: Config) -> float:
    # the categorical moves the valley: "shifted" puts the optimum at x = 0.5, not 1
    shift = 0.5 if c["variant"] == "shifted" else 1.0
    x = [c["r1"], c["r2"], stretch(c["lr"], 1e-4, 1.0, -2.0, 2.0), c["r4"]]
    x = [xi + 1.0 - shift for xi in x]
    total = sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))
    return total + (0.0 if c["variant"] == "shifted" else 0.5)


def styblinski(c: Config) -> float:
    x = [c["s1"], c["s2"], c["s3"], stretch(c["s4"], 1e-2, 1e2, -5.0, 5.0)]
    return sum(xi**4 - 16 * xi**2 + 5 * xi for xi in x) / 2 + 0.5 * (c["layers"] - 6) ** 2


def rastrigin(c: Config) -> float:
    x = [c["q1"], c["q2"], float(c["q3"]), float(c["q4"]), stretch(c["q5"], 1e-3, 1.0, -5.12, 5.12)]
    return 10 * len(x) + sum(xi * xi - 10 * math.cos(2 * math.pi * xi) for xi in x)


def trap(c: Config) -> float:
    """A wide shallow bowl around the defaults (-1 at its centre) and, only with arch="deep", a
    narrow basin 3x deeper in the far corner of lr and width: greedy steps settle in the bowl."""
    u = stretch(c["lr"], 1e-5, 1e-1, 0.0, 1.0)
    v = (c["width"] - 64) / (1024 - 64)
    shallow = -1.0 + 4 * ((u - 0.4) ** 2 + (v - 0.3) ** 2) + 2 * (c["dropout"] - 0.1) ** 2
    if c["arch"] != "deep":
        return shallow + 0.1
    deep = -3.0 + 60 * ((u - 0.9) ** 2 + (v - 0.9) ** 2) + 2 * (c["dropout"] - 0.3) ** 2
    return min(shallow, deep)


SUITE: dict[str, tuple[str, SearchSpace, Callable[[Config], float], float, Config]] = {
    "branin": (
        "Branin (3 global minima) in a float and a log parameter, plus an int and a categorical.",
        SearchSpace(params=[lin("x1", 0.0, -5.0, 10.0), logf("x2_scale", 0.1, 1e-3, 1.0),
                            integer("order", 12, 1, 20), choice("mode", "b", ["a", "b", "c"])]),
        branin, 0.397887, {"x1": math.pi, "x2_scale": 10 ** (-3 + 3 * 2.275 / 15), "order": 7,
                           "mode": "a"},
    ),
    "hartmann6": (
        "Hartmann-6 (several local minima), one coordinate on a log scale, plus an int and a "
        "categorical.",
        SearchSpace(params=[lin("h1", 0.5, 0, 1), lin("h2", 0.5, 0, 1), lin("h3", 0.5, 0, 1),
                            lin("h4", 0.5, 0, 1), logf("h5", 0.03, 1e-3, 1.0), lin("h6", 0.5, 0, 1),
                            integer("restarts", 8, 0, 10), choice("kernel", "y", ["x", "y", "z"])]),
        hartmann6, -3.32237, {**{f"h{i + 1}": x for i, x in enumerate(HARTMANN_X) if i != 4},
                              "h5": 10 ** (-3 + 3 * HARTMANN_X[4]), "restarts": 3, "kernel": "x"},
    ),
    "levy": (
        "Levy-5 (a rugged landscape), one coordinate an int, one on a log scale, a categorical.",
        SearchSpace(params=[lin("l1", -4.0, -10, 10), lin("l2", 5.0, -10, 10),
                            lin("l3", 3.0, -10, 10), logf("l4", 0.5, 1e-4, 1.0),
                            integer("l5", -3, -10, 10),
                            choice("solver", "adam", ["sgd", "adam", "lion"])]),
        levy, 0.0, {"l1": 1.0, "l2": 1.0, "l3": 1.0, "l4": 10 ** (-4 + 4 * 0.55), "l5": 1,
                    "solver": "sgd"},
    ),
    "ackley": (
        "Ackley-4 (a needle in many ripples), one int and one log coordinate.",
        SearchSpace(params=[lin("a1", 12.0, -32.768, 32.768), lin("a2", -9.0, -32.768, 32.768),
                            integer("a3", 20, -32, 32), logf("a4", 0.2, 1e-3, 1.0)]),
        ackley, 0.0, {"a1": 0.0, "a2": 0.0, "a3": 0, "a4": 10**-1.5},
    ),
    "rosenbrock": (
        "Rosenbrock-4 (a curved valley); a categorical moves the valley, one coordinate is an lr.",
        SearchSpace(params=[lin("r1", -1.0, -2, 2), lin("r2", 1.5, -2, 2),
                            logf("lr", 1e-3, 1e-4, 1.0), lin("r4", 0.0, -2, 2),
                            choice("variant", "plain", ["plain", "shifted"])]),
        rosenbrock, 0.0, {"r1": 0.5, "r2": 0.5, "lr": 10**-1.5, "r4": 0.5, "variant": "shifted"},
    ),
    "styblinski": (
        "Styblinski-Tang-4 (the optimum in a corner basin), a log coordinate and an int penalty.",
        SearchSpace(params=[lin("s1", 1.0, -5, 5), lin("s2", 0.0, -5, 5), lin("s3", 2.0, -5, 5),
                            logf("s4", 1.0, 1e-2, 1e2), integer("layers", 12, 1, 24)]),
        styblinski, -156.664663, {"s1": -2.903534, "s2": -2.903534, "s3": -2.903534,
                                 "s4": 10 ** (-2 + 4 * (5 - 2.903534) / 10), "layers": 6},
    ),
    "rastrigin": (
        "Rastrigin-5 (a regular grid of local minima), two int and one log coordinate.",
        SearchSpace(params=[lin("q1", 3.3, -5.12, 5.12), lin("q2", -2.2, -5.12, 5.12),
                            integer("q3", 4, -5, 5), integer("q4", -3, -5, 5),
                            logf("q5", 0.3, 1e-3, 1.0)]),
        rastrigin, 0.0, {"q1": 0.0, "q2": 0.0, "q3": 0, "q4": 0, "q5": 10**-1.5},
    ),
    "trap": (
        "A trap: a wide shallow basin around the defaults; a 3x deeper narrow one exists only "
        "with arch=deep, in the far corner of lr and width.",
        SearchSpace(params=[logf("lr", 1e-3, 1e-5, 1e-1), integer("width", 256, 64, 1024),
                            lin("dropout", 0.1, 0.0, 0.5),
                            choice("arch", "wide", ["wide", "deep"])]),
        trap, -3.0, {"lr": 10 ** (-5 + 4 * 0.9), "width": 928, "dropout": 0.3, "arch": "deep"},
    ),
}  # fmt: skip


def make_suite(name: str) -> Callable[..., SyntheticObjective]:
    description, space, fn, optimum, at = SUITE[name]

    def factory(noise: float = 0.0) -> SyntheticObjective:
        return SyntheticObjective(
            name=f"suite:{name}", description=description, space=space, fn=fn,
            optimum=optimum, optimum_config=at, noise=noise, metric="value",
        )  # fmt: skip

    return factory


for _name in SUITE:
    register(f"suite:{_name}")(make_suite(_name))


# --- a real model: gradient boosting on scikit-learn's bundled breast cancer data, CV log loss --

SKLEARN_SPACE = SearchSpace(
    params=[
        logf("learning_rate", 0.1, 1e-3, 1.0),
        integer("max_iter", 50, 10, 200),
        integer("max_leaf_nodes", 31, 4, 64),
        integer("min_samples_leaf", 20, 2, 64),
        logf("l2_regularization", 1e-3, 1e-6, 10.0),
        lin("max_features", 1.0, 0.2, 1.0),
    ]
)
# Estimated: the best of 200 optuna-tpe trials on seed 0 (0.096652: `bilevel run --objective
# suite:sklearn-hgb --arm optuna-tpe --iterations 200`), rounded down, so "gap closed" is a
# fraction of a gap that may be slightly larger than the true one.
SKLEARN_OPTIMUM = 0.0966


class SklearnObjective(SyntheticObjective):
    """A SyntheticObjective whose value is a seeded cross-validation: its own process per trial."""

    async def evaluate(self, config: Config, seed: int, budget: float | None = None) -> Any:
        from bilevel.objectives.base import EvalResult

        metric = cv_log_loss(self.space.validate(config), seed)
        return EvalResult(metric=metric, log_tail=f"cv_log_loss: {metric:.6f}")


def cv_log_loss(config: Config, seed: int) -> float:
    try:
        from sklearn.datasets import load_breast_cancer
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold, cross_val_score
    except ImportError:
        raise RuntimeError(
            "suite:sklearn-hgb needs scikit-learn: pip install 'bilevel-autoresearch[bench]'"
        ) from None
    x, y = load_breast_cancer(return_X_y=True)
    model = HistGradientBoostingClassifier(early_stopping=False, random_state=seed, **config)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    return -float(cross_val_score(model, x, y, cv=folds, scoring="neg_log_loss").mean())


@register("suite:sklearn-hgb")
def make_sklearn() -> SklearnObjective:
    return SklearnObjective(
        name="suite:sklearn-hgb",
        description="scikit-learn HistGradientBoostingClassifier on the bundled breast-cancer "
        "dataset: 3-fold cross-validated log loss (about a second per evaluation, own process).",
        space=SKLEARN_SPACE, fn=lambda c: None, optimum=SKLEARN_OPTIMUM, optimum_config={},
        metric="cv_log_loss", inline=False,
    )  # fmt: skip
