"""Classical baselines for the `random`, `optuna-tpe`, `optuna-gp` and `optuna-cmaes` arms:
Optuna's ask/tell on the same objective, space and evaluation budget as every other arm.

The study is rebuilt from the ledger at every research step (every decided trial told, in trial
order) with a sampler seeded by (run seed, step), so a resumed run asks exactly what the first
attempt would have. TPE, GP and random sampling are functions of the told trials; CMA-ES also
carries its optimizer state in each sampled trial's system attributes, which the researcher
hands back as a `sampler_state` note and which are restored with the trials (so CMA-ES does not
restart at every step). A proposal is a whole config; the inner loop records it as the changes
from the incumbent, like any other candidate.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from bilevel.agents.researcher import canonical
from bilevel.objectives import SearchSpace

if TYPE_CHECKING:
    from bilevel.agents.roles import ResearchRequest
    from bilevel.contract import Candidate

LABELS = {
    "random": "random (Optuna RandomSampler: uniform over the space, no LLM)",
    "tpe": "optuna-tpe (Optuna TPESampler: tree-structured Parzen estimator, no LLM)",
    "gp": "optuna-gp (Optuna GPSampler: Gaussian process, log expected improvement, no LLM)",
    "cmaes": "optuna-cmaes (Optuna CmaEsSampler: CMA-ES, categoricals independent, no LLM)",
}


def sampler_seed(seed: str) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big")


def distributions(space: SearchSpace) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for p in space.params:
        if p.kind == "categorical":
            out[p.name] = CategoricalDistribution(p.choices)
        elif p.kind == "int":
            out[p.name] = IntDistribution(int(p.low), int(p.high))  # type: ignore[arg-type]
        else:
            out[p.name] = FloatDistribution(p.low, p.high, log=p.kind == "logfloat")  # type: ignore[arg-type]
    return out


def require() -> Any:
    """Optuna, or a ValueError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ValueError(
            "the random and optuna-* arms need Optuna: pip install 'bilevel-autoresearch[bench]'"
        ) from None
    return optuna


def make_sampler(optuna: Any, kind: str, seed: int) -> Any:
    samplers = optuna.samplers
    if kind == "random":
        return samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        return samplers.TPESampler(seed=seed, multivariate=True)
    if kind == "gp":
        return samplers.GPSampler(seed=seed)
    if kind == "cmaes":
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown Optuna sampler {kind!r}")


def propose(
    kind: str,
    space: SearchSpace,
    history: list[dict[str, Any]],
    direction: str,
    n: int,
    seed: str,
    sampler_state: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """n whole configs from a study told every decided trial of history (crashes as failed).
    sampler_state: the system attributes the sampler gave each config it proposed (by canonical
    config); each proposal returns its own as "attrs"."""
    optuna = require()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(space)
    sampler = make_sampler(optuna, kind, sampler_seed(seed))
    study = optuna.create_study(direction=direction, sampler=sampler)
    state = sampler_state or {}
    for t in history:
        params = {k: v for k, v in t["config"].items() if k in dists}
        ok = t["status"] == "ok" and t["metric"] is not None and math.isfinite(t["metric"])
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                value=t["metric"] if ok else None,
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
                system_attrs=state.get(canonical(t["config"]), {}),
            )
        )
    out = []
    for _ in range(n):
        trial = study.ask(dists)
        config = space.validate(dict(trial.params), repair=True)
        attrs = study.get_trials(deepcopy=False)[-1].system_attrs
        out.append({"config": config, "source": kind, "hypothesis": "", "attrs": dict(attrs)})
    return out


class OptunaResearcher:
    """The Researcher interface over an Optuna sampler: whole configs, as changes."""

    def __init__(self, kind: str) -> None:
        self.kind, self.label = kind, LABELS[kind]

    async def propose(self, request: ResearchRequest) -> list[Candidate]:
        proposals = propose(
            self.kind,
            request.objective.space,
            request.history,
            request.objective.direction,
            max(1, request.free_evaluations),
            request.seed,
            request.sampler_state,
        )
        for p in proposals:
            if p["attrs"]:  # what the sampler needs back with the trial (CMA-ES's optimizer)
                request.notes.append(
                    ("sampler_state", {"config": p["config"], "attrs": p["attrs"]})
                )
        # whole configs as changes: the caller drops the values equal to the incumbent's
        return [
            {"changes": p["config"], "source": p["source"], "hypothesis": p["hypothesis"]}
            for p in proposals
        ]
