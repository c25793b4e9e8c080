"""Run configuration: everything that defines a run, validated at the boundary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, Field, model_validator

Arm = Literal[
    "inner", "restart", "params", "mechanism", "full", "random", "optuna-tpe", "optuna-gp",
    "optuna-cmaes",
]  # fmt: skip
Proposer = Literal["researcher", "random", "tpe", "gp", "cmaes"]


@dataclass(frozen=True)
class ArmSpec:
    """What one arm runs. The graph reads these fields; it never compares arm names."""

    proposer: Proposer  # researcher: --researcher (prior | llm); else an Optuna sampler
    adjusts_params: bool  # the meta-researcher adjusts the inner loop's parameters each cycle
    writes_mechanisms: bool  # the meta-researcher writes mechanisms (probation, adoption)
    restarts: bool  # each cycle starts a fresh trace (history and parameters reset)
    summary: str

    @property
    def outer(self) -> bool:
        """A meta-researcher runs between cycles."""
        return self.adjusts_params or self.writes_mechanisms


ARM_SPECS: dict[str, ArmSpec] = {
    "inner": ArmSpec("researcher", False, False, False, "the inner loop alone, one trace"),
    "restart": ArmSpec(
        "researcher", False, False, True, "control: the inner loop restarted each cycle"
    ),
    "params": ArmSpec("researcher", True, False, False, "outer loop adjusting inner parameters"),
    "mechanism": ArmSpec("researcher", False, True, False, "outer loop writing mechanisms"),
    "full": ArmSpec("researcher", True, True, False, "params + mechanism"),
    "random": ArmSpec("random", False, False, False, "Optuna's RandomSampler"),
    "optuna-tpe": ArmSpec("tpe", False, False, False, "Optuna's TPESampler"),
    "optuna-gp": ArmSpec("gp", False, False, False, "Optuna's GPSampler"),
    "optuna-cmaes": ArmSpec("cmaes", False, False, False, "Optuna's CmaEsSampler"),
}
ARMS: tuple[str, ...] = tuple(ARM_SPECS)
assert ARMS == get_args(Arm), "Arm and ARM_SPECS list the same arms"
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


StructuredOutput = Literal["auto", "json_schema", "function_calling", "json_mode"]


class LLMSettings(BaseModel):
    """Which OpenAI-compatible server the `llm` researcher and meta-researcher talk to.

    API keys are never part of the config (it is stored in the ledger): they come from the
    environment variable named by api_key_env.
    """

    provider: str = Field("none", description="none | local | openai:<model> | <base URL>.")
    model: str | None = Field(None, description="Model name for both roles (URL providers).")
    researcher_model: str | None = Field(None, description="Model for the researcher.")
    meta_model: str | None = Field(None, description="Model for the meta-researcher.")
    fallback_model: str | None = Field(None, description="Tried once when the model fails.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable with the key.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(1024, ge=16, le=32768, description="Tokens per reply (honoured).")
    structured_output: StructuredOutput = Field("auto", description="How replies are shaped.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds per request before retrying.")
    retries: int = Field(3, ge=0, le=10, description="Retries on 429, 5xx, timeouts.")
    token_budget: int | None = Field(None, ge=1, description="Stop LLM calls after this many.")
    cost_budget_usd: float | None = Field(None, gt=0, description="Stop LLM calls past this.")
    price_in_per_mtok: float = Field(0.0, ge=0, description="USD per 1M input tokens.")
    price_out_per_mtok: float = Field(0.0, ge=0, description="USD per 1M output tokens.")
    repair_rounds: int = Field(2, ge=0, le=10, description="Mechanism repair rounds.")
    gguf: str | None = Field(None, description="GGUF file for --llm local (default SmolLM2).")
    seed: int | None = Field(
        None,
        description="Sampling seed sent to the server (llama.cpp, "
        "vLLM and OpenAI honour it, best effort).",
    )

    @model_validator(mode="after")
    def _check(self) -> LLMSettings:
        p = self.provider
        if not (p in ("none", "local") or p.startswith(("openai:", "http://", "https://"))):
            raise ValueError(f"--llm {p!r} is not one of: none, local, openai:<model>, <base URL>")
        if p.startswith("openai:") and not p.removeprefix("openai:"):
            raise ValueError("--llm openai:<model> needs a model name, e.g. openai:gpt-4o-mini")
        return self

    @property
    def enabled(self) -> bool:
        return self.provider != "none"

    def model_for(self, role: str) -> str:
        specific = self.researcher_model if role == "researcher" else self.meta_model
        if specific:
            return specific
        if self.provider.startswith("openai:"):
            return self.provider.removeprefix("openai:")
        return self.model or ("smollm2" if self.provider == "local" else "default")

    def method(self) -> str:
        """auto: OpenAI's own API takes json_schema; llama.cpp, vLLM, Ollama take JSON mode."""
        if self.structured_output != "auto":
            return self.structured_output
        return "json_schema" if self.provider.startswith("openai:") else "json_mode"


class RunConfig(BaseModel):
    """One bilevel run. Every arm has the same budget: 1 + iterations x parallel evaluations."""

    objective: str = Field("synthetic:trainsim", description="Registered objective name.")
    objective_options: dict[str, Any] = Field(
        default_factory=dict, description="Objective factory options."
    )
    arm: Arm = Field(
        "full",
        description="Which loops run: inner, restart, params, mechanism, full; or a classical "
        "baseline (random, optuna-tpe, optuna-gp, optuna-cmaes) on the same budget.",
    )
    iterations: int = Field(120, ge=1, le=100_000, description="Inner iterations in the whole run.")
    cycle_length: int = Field(
        12,
        ge=1,
        le=100_000,
        validation_alias=AliasChoices("cycle_length", "cycle"),  # --cycle; `cycle` before 0.2
        description="Inner iterations per outer cycle.",
    )
    seed: int = Field(0, ge=0, description="Seed for researcher, meta-researcher and noise.")
    seed_per_trial: bool = Field(
        False,
        description="Evaluate each trial with its own seed (default: every trial uses the run's "
        "seed, common random numbers, so a kept change is a change of config).",
    )
    parallel: int = Field(
        1,
        ge=1,
        le=64,
        validation_alias=AliasChoices("parallel", "slots"),  # slots: the name before 0.2
        description="Parallel evaluations: trials in flight at once (W).",
    )
    researcher: Literal["prior", "llm"] = Field("prior", description="Who proposes experiments.")
    meta: Literal["library", "llm"] = Field("library", description="Who writes mechanisms.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The LLM, if any.")
    approve: bool = Field(False, description="Pause for a person before adopting a mechanism.")
    mechanism_source: str | None = Field(
        None, description="Mechanism installed at start (source text)."
    )
    hook_timeout_s: float = Field(
        1.0, gt=0, le=60, description="Wall-clock limit of one hook call."
    )
    noise_repeats: int = Field(
        0,
        ge=0,
        le=50,
        description="Extra baseline evaluations that estimate the metric's noise sigma "
        "(taken from the budget; 0: off).",
    )
    noise_k: float = Field(
        2.0,
        ge=0,
        le=10,
        description="With noise_repeats: keep a change only if it beats the "
        "incumbent by more than noise_k x sigma.",
    )
    meta_prior: dict[str, Any] = Field(
        default_factory=dict,
        description="Starting statistics of the library meta-researcher per mechanism name "
        "(from the mechanism library: --learn-from-library).",
    )
    gate: bool = Field(
        False,
        description="Statistical adoption gate: adopt a mechanism only if its probation "
        "cycle's per-trial gains beat its parent's (permutation test, p <= gate_alpha).",
    )
    gate_alpha: float = Field(0.1, gt=0, le=1, description="The gate's significance level.")
    eval_timeout_s: float | None = Field(
        None, gt=0, description="Wall-clock limit of one evaluation (its process group is killed)."
    )
    code_edits: bool = Field(
        False,
        description="The llm researcher may also propose patches to the script's source "
        "(script objectives; checked before they run, evaluated in the jail).",
    )
    edit_files: list[str] = Field(
        default_factory=list,
        description="Files a code edit may change, relative to the workdir (default: the train "
        "file).",
    )
    jail_edits: bool = Field(
        True, description="Run patched trials in the jail (False: --no-jail, unconfined)."
    )

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if "llm" in (self.researcher, self.meta) and not self.llm.enabled:
            raise ValueError(
                "an llm researcher or meta-researcher needs --llm (local, "
                "openai:<model> or a base URL)"
            )
        if self.code_edits and (
            self.objective.partition("@")[0] != "script" or self.researcher != "llm"
        ):
            raise ValueError("code edits need --objective script and an llm researcher (--llm ...)")
        if self.noise_repeats >= self.iterations * self.parallel:
            raise ValueError(
                f"--noise-repeats {self.noise_repeats} leaves no budget: it must be below "
                "iterations x parallel"
            )
        if self.cycle_length > self.iterations:
            raise ValueError(
                f"--cycle {self.cycle_length} is longer than --iterations {self.iterations}; "
                "a run needs at least one full cycle"
            )
        return self

    @property
    def spec(self) -> ArmSpec:
        return ARM_SPECS[self.arm]

    @property
    def evaluations(self) -> int:
        return 1 + self.iterations * self.parallel

    @property
    def cycles(self) -> int:
        return -(-self.iterations // self.cycle_length)


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
