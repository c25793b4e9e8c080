"""Fast synthetic objectives with known optima, optional noise, and traps for an LLM's priors.

Each parameter list is ordered the way a person (or an LLM) would list the knobs; the `prior`
researcher prefers the first ones. The traps:
- late-lever:  the parameter with by far the largest effect is listed last.
- deceptive:   greedy steps settle in a shallow basin; the deep one lies across a ridge.
- interact:    lr and batch size must move together; either alone makes things worse.
- sleep:       trainsim, taking a fixed wall time per evaluation in its own process, to measure
               how well the executor keeps parallel evaluations busy (benchmarks/utilisation.py).
- trainsim:    a training-run surrogate (val_bpb-like) with a late batch-size lever, an lr x batch
               interaction, a divergence region (status nan) and observation noise by default.
All are minimised; every optimum is exact (`optimum`, `optimum_config`).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bilevel.objectives.base import EvalResult, UnknownObjective, register
from bilevel.objectives.space import Param, SearchSpace

Config = dict[str, Any]


def log2ratio(value: float, ref: float) -> float:
    return math.log2(value / ref)


@dataclass
class SyntheticObjective:
    name: str
    description: str
    space: SearchSpace
    fn: Callable[[Config], float | None]  # None means the run diverged (status nan)
    optimum: float
    optimum_config: Config
    noise: float = 0.0
    metric: str = "loss"
    direction: str = "minimize"
    inline: bool = True
    sleep_s: float = 0.0  # wall time each evaluation takes (synthetic:sleep)
    jitter: float = 0.0  # up to this fraction more, unseeded: finishing order varies run to run

    def value(self, config: Config) -> float | None:
        return self.fn(self.space.validate(config))

    async def evaluate(self, config: Config, seed: int, budget: float | None = None) -> EvalResult:
        start = time.perf_counter()
        clean = self.value(config)
        if self.sleep_s:
            await asyncio.sleep(self.sleep_s * (1 + self.jitter * random.SystemRandom().random()))
        seconds = time.perf_counter() - start
        if clean is None:
            return EvalResult(metric=None, status="nan", seconds=seconds, log_tail="loss diverged")
        # Noise depends only on (objective, seed), so a trial is reproducible from its ledger row.
        noisy = clean + random.Random(f"{self.name}:{seed}").gauss(0.0, self.noise)
        extra = {"clean_metric": clean} if self.noise else {}
        return EvalResult(metric=noisy, seconds=seconds, extra=extra, log_tail=f"loss: {noisy:.6f}")


def space(*params: Param) -> SearchSpace:
    return SearchSpace(params=list(params))


def logf(name: str, default: float, low: float, high: float) -> Param:
    return Param(name=name, kind="logfloat", default=default, low=low, high=high)


def lin(name: str, default: float, low: float, high: float) -> Param:
    return Param(name=name, kind="float", default=default, low=low, high=high)


def integer(name: str, default: int, low: int, high: int) -> Param:
    return Param(name=name, kind="int", default=default, low=low, high=high)


def cat(name: str, default: Any, choices: list[Any]) -> Param:
    return Param(name=name, kind="categorical", default=default, choices=choices)


# --- late-lever -----------------------------------------------------------------------------

LATE_LEVER_SPACE = space(
    logf("lr", 3e-3, 1e-4, 1e-1),
    lin("warmup", 0.1, 0.0, 0.5),
    lin("weight_decay", 0.1, 0.0, 0.5),
    lin("dropout", 0.1, 0.0, 0.5),
    integer("depth", 4, 1, 16),
    integer("width", 256, 32, 2048),
    lin("beta2", 0.95, 0.8, 0.999),
    integer("batch_size", 512, 8, 1024),
)


def late_lever(c: Config) -> float:
    small = (
        0.02 * log2ratio(c["lr"], 1.5e-3) ** 2
        + 0.05 * ((c["warmup"] - 0.05) / 0.1) ** 2
        + 0.03 * ((c["weight_decay"] - 0.05) / 0.1) ** 2
        + 0.03 * ((c["dropout"] - 0.05) / 0.1) ** 2
        + 0.02 * log2ratio(c["depth"], 8) ** 2
        + 0.01 * log2ratio(c["width"], 512) ** 2
        + 0.02 * ((c["beta2"] - 0.95) / 0.05) ** 2
    )
    return small + 0.06 * log2ratio(c["batch_size"], 32) ** 2


# --- deceptive ------------------------------------------------------------------------------

DECEPTIVE_SPACE = space(
    logf("lr", 1e-3, 1e-4, 1e-1),
    lin("warmup", 0.05, 0.0, 0.5),
    lin("dropout", 0.1, 0.0, 0.5),
    lin("label_smoothing", 0.0, 0.0, 0.3),
    integer("width", 256, 32, 4096),
    integer("depth", 4, 1, 32),
)


def deceptive(c: Config) -> float:
    a, b, d = log2ratio(c["lr"], 1e-3), log2ratio(c["width"], 256), log2ratio(c["depth"], 4)
    shallow = 0.4 + 0.1 * (a - 1) ** 2 + 0.1 * (b - 1) ** 2 + 0.05 * d**2
    deep = 0.1 * ((b - 3) ** 2 + (d - 2) ** 2) + 0.1 * a**2
    small = (
        0.04 * ((c["warmup"] - 0.1) / 0.1) ** 2
        + 0.04 * ((c["dropout"] - 0.05) / 0.1) ** 2
        + 0.02 * (c["label_smoothing"] / 0.1) ** 2
    )
    return min(shallow, deep) + small


# --- interact -------------------------------------------------------------------------------

INTERACT_SPACE = space(
    logf("lr", 3e-3, 1e-5, 1e-1),
    lin("warmup", 0.1, 0.0, 0.5),
    lin("beta1", 0.9, 0.5, 0.99),
    lin("grad_clip", 1.0, 0.1, 5.0),
    lin("weight_decay", 0.1, 0.0, 0.5),
    integer("batch_size", 256, 4, 1024),
)


def interact(c: Config) -> float:
    a, bb = log2ratio(c["lr"], 3e-3), log2ratio(c["batch_size"], 256)
    coupled = 0.5 * (a - bb) ** 2 + 0.05 * (bb + 4) ** 2  # lr must scale with batch size
    small = (
        0.04 * ((c["warmup"] - 0.05) / 0.1) ** 2
        + 0.03 * ((c["beta1"] - 0.8) / 0.1) ** 2
        + 0.01 * log2ratio(c["grad_clip"], 0.5) ** 2
        + 0.03 * ((c["weight_decay"] - 0.05) / 0.1) ** 2
    )
    return coupled + small


# --- trainsim -------------------------------------------------------------------------------

TRAINSIM_SPACE = space(
    logf("lr", 1e-3, 1e-4, 3e-2),
    lin("warmup_frac", 0.05, 0.0, 0.3),
    lin("warmdown_frac", 0.2, 0.0, 0.8),
    lin("weight_decay", 0.1, 0.0, 0.3),
    integer("depth", 4, 2, 12),
    integer("width", 128, 64, 512),
    cat("heads", 4, [1, 2, 4, 8]),
    cat("seq_len", 256, [64, 128, 256, 512]),
    lin("beta2", 0.95, 0.8, 0.999),
    integer("total_batch_size", 65536, 4096, 262144),
)
HEADS_PENALTY = {1: 0.02, 2: 0.005, 4: 0.0, 8: 0.004}
SEQ_PENALTY = {64: 0.03, 128: 0.008, 256: 0.0, 512: 0.01}


def trainsim(c: Config) -> float | None:
    lb = log2ratio(c["total_batch_size"], 65536)
    lr_gap = log2ratio(c["lr"], 1e-3) - 0.5 * lb  # the best lr scales with sqrt(batch)
    if lr_gap > 3.0:
        return None  # diverged
    return (
        1.05
        + 0.02 * (lb + 3) ** 2  # fixed time budget: smaller batches take more steps
        + 0.03 * lr_gap**2
        + 0.02 * ((c["warmup_frac"] - 0.02) / 0.1) ** 2
        + 0.03 * ((c["warmdown_frac"] - 0.5) / 0.2) ** 2
        + 0.01 * ((c["weight_decay"] - 0.05) / 0.1) ** 2
        + 0.015 * log2ratio(c["depth"], 6) ** 2
        + 0.01 * log2ratio(c["width"], 256) ** 2
        + HEADS_PENALTY[c["heads"]]
        + SEQ_PENALTY[c["seq_len"]]
        + 0.01 * ((c["beta2"] - 0.99) / 0.05) ** 2
    )


@register("synthetic:late-lever")
def make_late_lever(noise: float = 0.0) -> SyntheticObjective:
    return SyntheticObjective(
        name="synthetic:late-lever",
        description="Quadratic bowl; the batch size, listed last, has by far the largest effect.",
        space=LATE_LEVER_SPACE,
        fn=late_lever,
        optimum=0.0,
        optimum_config={
            "lr": 1.5e-3,
            "warmup": 0.05,
            "weight_decay": 0.05,
            "dropout": 0.05,
            "depth": 8,
            "width": 512,
            "beta2": 0.95,
            "batch_size": 32,
        },
        noise=noise,
    )


@register("synthetic:deceptive")
def make_deceptive(noise: float = 0.0) -> SyntheticObjective:
    return SyntheticObjective(
        name="synthetic:deceptive",
        description="A shallow basin near the baseline; a deeper one at large width and depth "
        "lies across a ridge that single greedy steps do not cross.",
        space=DECEPTIVE_SPACE,
        fn=deceptive,
        optimum=0.0,
        optimum_config={
            "lr": 1e-3,
            "warmup": 0.1,
            "dropout": 0.05,
            "label_smoothing": 0.0,
            "width": 2048,
            "depth": 16,
        },
        noise=noise,
    )


@register("synthetic:interact")
def make_interact(noise: float = 0.0) -> SyntheticObjective:
    return SyntheticObjective(
        name="synthetic:interact",
        description="Learning rate and batch size interact: the best lr scales with batch size, "
        "so changing either alone makes the loss worse.",
        space=INTERACT_SPACE,
        fn=interact,
        optimum=0.0,
        optimum_config={
            "lr": 3e-3 / 16,
            "warmup": 0.05,
            "beta1": 0.8,
            "grad_clip": 0.5,
            "weight_decay": 0.05,
            "batch_size": 16,
        },
        noise=noise,
    )


@register("synthetic:trainsim")
def make_trainsim(noise: float = 0.003) -> SyntheticObjective:
    return SyntheticObjective(
        name="synthetic:trainsim",
        description="A surrogate of a fixed-time GPT pretraining run scored in val_bpb: a smaller "
        "total batch size is the main lever, the best lr scales with sqrt(batch), too high an lr "
        "diverges.",
        space=TRAINSIM_SPACE,
        fn=trainsim,
        optimum=1.05,
        optimum_config={
            "lr": 1e-3 * 2**-1.5,
            "warmup_frac": 0.02,
            "warmdown_frac": 0.5,
            "weight_decay": 0.05,
            "depth": 6,
            "width": 256,
            "heads": 4,
            "seq_len": 256,
            "beta2": 0.99,
            "total_batch_size": 8192,
        },
        noise=noise,
        metric="val_bpb",
    )


@register("synthetic:sleep")
def make_sleep(
    seconds: float = 1.0, noise: float = 0.003, jitter: float = 0.0
) -> SyntheticObjective:
    """trainsim taking `seconds` of wall time per evaluation (for timing benchmarks)."""
    if not (0 <= seconds <= 3600 and 0 <= jitter <= 10):
        raise UnknownObjective(
            f"bad options for objective 'synthetic:sleep': seconds={seconds} (0..3600) "
            f"or jitter={jitter} (0..10) is out of range"
        )
    base = make_trainsim(noise)
    base.name = "synthetic:sleep"
    base.description = f"synthetic:trainsim taking {seconds:g} s per evaluation in a subprocess."
    base.sleep_s, base.jitter, base.inline = float(seconds), float(jitter), False
    return base
