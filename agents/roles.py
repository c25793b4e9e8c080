"""Who thinks: the two roles a run fills, as interfaces.

A `Researcher` proposes the inner loop's next experiments: the prior (agents/researcher.py), the
LLM (agents/llm_researcher.py), or an Optuna sampler (agents/classical.py). A `MetaResearcher`
works between cycles: it adjusts the inner loop's parameters and writes mechanisms -- the offline
library (agents/meta_researcher.py) or the LLM (agents/llm_meta.py, which falls back to the
library). Which methods a run calls is the arm's business (bilevel.config.ARM_SPECS): the
`params` arm only adjusts parameters, `mechanism` only writes mechanisms, `full` does both.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, Protocol

from bilevel.contract import Candidate
from bilevel.objectives import Objective


@dataclass
class ResearchRequest:
    """What a researcher sees at one step."""

    objective: Objective
    incumbent: dict[str, Any]  # {config, metric, trial}
    history: list[dict[str, Any]]  # decided trials of the trace, oldest first
    params: dict[str, Any]  # InnerParams
    advice: str  # the mechanism's advise hook
    seed: str
    running: list[dict[str, Any]]  # configs being evaluated now
    free_evaluations: int  # parallel evaluations free to start
    evaluated: Container[str]  # canonical keys of every config the run has evaluated
    sampler_state: dict[str, dict[str, Any]] = field(default_factory=dict)  # Optuna's, by config
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, detail)
    code: Any = None  # agents/code_edits.CodeContext when the run has --code-edits


class Researcher(Protocol):
    label: str

    async def propose(self, request: ResearchRequest) -> list[Candidate]:
        """Candidates for this step (checked against the space by the caller)."""
        ...


@dataclass
class MetaRequest:
    """What a meta-researcher sees after a cycle."""

    assessment: dict[str, Any]
    inner_params: dict[str, Any]
    current: dict[str, Any]  # the Mechanism in the slots
    current_source: str
    names: list[str]  # the search space's parameters
    memory: dict[str, Any]  # the meta-researcher's own memory (a copy: kept if a candidate is)
    seed: str
    hook_timeout_s: float
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, detail)


@dataclass
class Written:
    """A mechanism a meta-researcher wrote."""

    name: str
    source: str
    origin: str  # library | llm | llm-repair
    values: dict[str, Any] = field(default_factory=dict)  # the library's constants


class MetaResearcher(Protocol):
    label: str
    repairs: bool  # can take a validation rejection back for a repair round

    async def adjust_params(self, request: MetaRequest) -> dict[str, Any]: ...

    async def write_mechanism(self, request: MetaRequest) -> Written | None: ...

    async def repair(self, request: MetaRequest, failed: str, reason: str) -> Written | None: ...
