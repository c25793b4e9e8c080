"""Run configuration: everything that defines a run, validated at the boundary."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

Arm = Literal["inner", "restart", "params", "mechanism", "full"]
ARMS: tuple[str, ...] = ("inner", "restart", "params", "mechanism", "full")
MAX_FROZEN = 5  # as in the paper's Level 1.5: at most 5 frozen, at least 4 left active
MIN_ACTIVE = 4


class InnerParams(BaseModel):
    """The inner loop's own knobs, which the `params` arm's meta-researcher may adjust."""

    frozen: list[str] = Field(
        default_factory=list, description="Parameters the researcher must not change."
    )
    candidates: int = Field(1, ge=1, le=8, description="Researcher proposals per iteration.")
    temperature: float = Field(
        1.0, gt=0, le=10, description="Flatness of the researcher's preferences."
    )
    history_window: int = Field(
        10, ge=1, le=200, description="Recent trials shown to the researcher."
    )
    strategy: str = Field("", description="Free-text guidance for the researcher.")


class RunConfig(BaseModel):
    """One bilevel run. Every arm has the same budget: 1 + iterations x slots evaluations."""

    objective: str = Field("synthetic:trainsim", description="Registered objective name.")
    objective_options: dict[str, Any] = Field(
        default_factory=dict, description="Objective factory options."
    )
    arm: Arm = Field(
        "full", description="Which loops run: inner, restart, params, mechanism, full."
    )
    iterations: int = Field(120, ge=1, le=100_000, description="Inner iterations in the whole run.")
    cycle: int = Field(12, ge=1, le=100_000, description="Inner iterations per outer cycle.")
    seed: int = Field(0, ge=0, description="Seed for researcher, meta-researcher and noise.")
    slots: int = Field(1, ge=1, le=64, description="Evaluations run in parallel per iteration.")
    researcher: Literal["prior"] = Field("prior", description="Who proposes experiments.")
    meta: Literal["library"] = Field("library", description="Who writes mechanisms.")
    mechanism_source: str | None = Field(
        None, description="Mechanism installed at start (source text)."
    )
    hook_timeout_s: float = Field(
        1.0, gt=0, le=60, description="Wall-clock limit of one hook call."
    )

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.cycle > self.iterations:
            raise ValueError(
                f"--cycle {self.cycle} is longer than --iterations {self.iterations}; "
                "a run needs at least one full cycle"
            )
        return self

    @property
    def evaluations(self) -> int:
        return 1 + self.iterations * self.slots

    @property
    def cycles(self) -> int:
        return -(-self.iterations // self.cycle)


def first_error(exc: Exception, prefix: str = "") -> str:
    """One readable line out of a pydantic ValidationError (or any exception).

    prefix names fields as the caller knows them, e.g. "--" for CLI options.
    """
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", exc)).removeprefix("Value error, ")
        return f"{prefix}{where.replace('_', '-')}: {msg}" if where else msg
    return str(exc)
