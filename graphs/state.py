"""Graph state: small things only (incumbent, mechanism source + memory, counters).

Trials live in the ledger, keyed by trial id, so checkpoints stay small and a resumed run neither
loses nor repeats a trial.
"""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict  # pydantic (Studio's schemas) needs it on 3.11

from bilevel.config import RunConfig
from bilevel.contract import Mechanism


class Point(TypedDict):
    config: dict[str, Any]
    metric: float | None
    trial: int
    code: NotRequired[str | None]  # source version (--code-edits; None: the user's own)


class Assignment(TypedDict):
    """A trial assigned for evaluation; fixed when assigned, so a resumed run evaluates it
    exactly as the first attempt would have."""

    trial: int
    config: dict[str, Any]
    changes: dict[str, Any]
    source: str
    description: str
    base: dict[str, Any]  # the incumbent config it was proposed from
    mechanism: str  # the mechanism whose slots proposed it
    trace: int
    cycle: int
    iteration: int
    code: NotRequired[str | None]  # source version it runs (--code-edits; None: the user's own)
    patch: NotRequired[dict[str, Any] | None]  # its code edit (bilevel/store/sources.py)
    hypothesis: NotRequired[str]  # why it was proposed (apply --git's commit messages)


class Decision(TypedDict):
    """One outer-loop decision, in the words the CLI and the ledger use: `status` is the
    mechanism's new status (contract.TRANSITIONS), e.g. adopted, reverted, rejected."""

    cycle: int
    mechanism: str
    status: str
    reason: str


# What a caller (CLI, Python, Studio) gives: RunConfig's fields (and the aliases they accept, e.g.
# `cycle` for cycle_length), typed as RunConfig types them, and the run directory. Derived, so a
# new RunConfig field is a graph input without another edit.
def config_keys() -> dict[str, Any]:
    """Every name a RunConfig field is given by (its own, and the older aliases it accepts)."""
    keys: dict[str, Any] = {}
    for name, field in RunConfig.model_fields.items():
        keys[name] = field.annotation
        for alias in getattr(field.validation_alias, "choices", ()):
            keys.setdefault(str(alias), field.annotation)
    return keys


InputState = TypedDict(  # type: ignore[misc]
    "InputState", {**config_keys(), "run_dir": str}, total=False
)


class InnerState(TypedDict, total=False):
    """What the inner loop (graphs/inner.py) reads and writes: the part of the run it owns."""

    run_dir: str
    config: dict[str, Any]  # the validated RunConfig (read it with run_config)
    trace: int  # bumped when the `restart` arm resets the inner loop's history
    cycle_index: int
    cycle_decided: int  # trials accepted or discarded in the current cycle
    iteration: int  # research steps in the whole run
    next_trial: int
    evals_left: int  # evaluations not yet assigned
    baseline: Point
    incumbent: Point
    noise_margin: float  # k x sigma of repeated baseline evaluations (0.0: plain greedy)
    mechanism: Mechanism
    previous_mechanism: Mechanism | None  # the parent, while `mechanism` is on probation
    inner_params: dict[str, Any]
    advice: str
    pending: list[dict[str, Any]]  # candidates of the current iteration
    inflight: list[Assignment]  # assigned, not yet decided, in trial order (at most `parallel`)
    filling: bool  # the last research step assigned a trial (so free evaluations are worth filling)


class BilevelState(InputState, InnerState, total=False):
    """The outer loop's state: the inner loop's, plus what only the outer loop keeps."""

    cycle_first_trial: int  # the first trial the current cycle decides
    cycle_start_metric: float | None
    candidate_mechanism: Mechanism | None
    meta_memory: dict[str, Any]  # what the meta-researcher learns across cycles
    assessment: dict[str, Any]  # the last cycle's statistics
    repair: dict[str, Any] | None  # the last validation failure (id, reason), for a repair round
    decision: Decision  # what the outer loop last decided, for a person watching (Studio)
    done: bool


class OutputState(TypedDict, total=False):
    """What a caller sees (LangGraph's `values` stream sends these): where the run is, the
    mechanism in the slots (by reference), the last assessment and decision."""

    run_dir: str
    baseline: Point
    incumbent: Point
    iteration: int
    cycle_index: int
    evals_left: int
    mechanism: Mechanism
    assessment: dict[str, Any]
    decision: Decision
    done: bool


def decided_before(state: InnerState) -> int:
    """Trials with smaller ids are all decided (accepted or discarded); the ones in flight
    are not, and what a node sees must not depend on which of them happened to finish."""
    return state["inflight"][0]["trial"] if state["inflight"] else state["next_trial"]


def run_config(state: InnerState) -> RunConfig:
    """The run's typed configuration (state holds it as JSON data, validated at setup)."""
    return RunConfig.model_validate(state["config"])
