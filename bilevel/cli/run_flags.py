"""`bilevel run`'s flags, worked into a RunConfig: the one table from flag to field, the
defaults that depend on the objective, and the checks that need more than one flag."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from bilevel.cli.common import USER_ERRORS, fail
from bilevel.config import RunConfig, first_error
from bilevel.objectives.jail import JailUnavailable, check_jail
from bilevel.store.sources import default_edit_files, read_edit_files


def run_length(
    objective: str, options: dict[str, Any], iterations: int | None, cycle: int | None
) -> tuple[int, int]:
    """--iterations/--cycle, else the objective's own defaults (slow objectives run shorter),
    else RunConfig's."""
    from bilevel.objectives import make_objective

    try:
        obj = make_objective(objective, **options)
    except USER_ERRORS:
        obj = None  # its options are checked, with a clear error, when the run is configured
    fields = RunConfig.model_fields
    default_iterations = getattr(obj, "default_iterations", fields["iterations"].default)
    default_cycle = getattr(obj, "default_cycle", fields["cycle_length"].default)
    return (
        default_iterations if iterations is None else iterations,
        default_cycle if cycle is None else cycle,
    )


def parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            fail(f"--objective-opt {pair!r} must look like NAME=VALUE, e.g. noise=0.01")
        key, raw = pair.split("=", 1)
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


# `bilevel run` options -> the RunConfig field each sets ("llm." for the LLMSettings ones): the
# one place a flag meets its field, so none can be forgotten or renamed on the way.
RUN_OPTIONS: dict[str, str] = {
    "objective": "objective",
    "arm": "arm",
    "seed": "seed",
    "seed_per_trial": "seed_per_trial",
    "parallel": "parallel",
    "hook_timeout": "hook_timeout_s",
    "noise_repeats": "noise_repeats",
    "noise_k": "noise_k",
    "gate": "gate",
    "gate_alpha": "gate_alpha",
    "approve": "approve",
    "code_edits": "code_edits",
    "llm": "llm.provider",
    "llm_model": "llm.model",
    "researcher_model": "llm.researcher_model",
    "meta_model": "llm.meta_model",
    "fallback_model": "llm.fallback_model",
    "api_key_env": "llm.api_key_env",
    "temperature": "llm.temperature",
    "max_tokens": "llm.max_tokens",
    "structured_output": "llm.structured_output",
    "token_budget": "llm.token_budget",
    "cost_budget": "llm.cost_budget_usd",
    "price_in": "llm.price_in_per_mtok",
    "price_out": "llm.price_out_per_mtok",
    "repair_rounds": "llm.repair_rounds",
    "gguf": "llm.gguf",
    "llm_timeout": "llm.timeout_s",
    "llm_retries": "llm.retries",
}
# Options whose value run() works out first (defaults that depend on other options, files read,
# script flags folded into the objective's options) and the fields they end in.
DERIVED_OPTIONS: dict[str, str] = {
    "iterations": "iterations",
    "cycle": "cycle_length",
    "researcher": "researcher",
    "meta": "meta",
    "eval_timeout": "eval_timeout_s",
    "mechanism": "mechanism_source",
    "from_library": "mechanism_source",
    "learn_from_library": "meta_prior",
    "objective_opt": "objective_options",
    "edit_files": "edit_files",
    "no_jail": "jail_edits",
    **dict.fromkeys(
        (
            "command",
            "metric",
            "metric_pattern",
            "space",
            "config_via",
            "train_file",
            "direction",
            "workdir",
            "link",
            "exclude",
            "jail",
        ),  # fmt: skip
        "objective_options",
    ),
}
# Options about where and how the run executes, not what it is (never part of its config).
RUN_ONLY_OPTIONS = frozenset(
    {"run_dir", "json_out", "checkpointer", "executor", "ray_address", "devices", "ray_cpus",
     "ray_gpus", "require_confinement"}
)  # fmt: skip


def flag_error(exc: ValidationError) -> str:
    """A RunConfig validation error, naming the flag the user typed."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ()))
    flags = {v: k for k, v in {**DERIVED_OPTIONS, **RUN_OPTIONS}.items()}
    if field in flags:
        msg = str(err.get("msg", exc)).removeprefix("Value error, ")
        return f"--{flags[field].replace('_', '-')}: {msg}"
    return first_error(exc, prefix="--")


def config_from_flags(flags: dict[str, Any], llm_seed: int, **derived: Any) -> RunConfig:
    """RunConfig from `bilevel run`'s flags (through RUN_OPTIONS) and the derived fields."""
    data: dict[str, Any] = {"llm": {"seed": llm_seed}}
    for name, value in flags.items():
        field = RUN_OPTIONS[name]
        if field.startswith("llm."):
            data["llm"][field.removeprefix("llm.")] = value
        else:
            data[field] = value
    return RunConfig(**data, **derived)


def code_edit_files(
    objective: str, options: dict[str, Any], names: list[str] | None, no_jail: bool
) -> list[str]:
    """--edit-files, checked (default: the train file), with a jail for patched trials."""
    if objective.partition("@")[0] != "script":
        raise ValueError("--code-edits patches a training script: use --objective script")
    files = read_edit_files(options["workdir"], names or default_edit_files(options))
    if not no_jail:
        try:
            check_jail()
        except JailUnavailable as exc:
            raise ValueError(f"{exc}; or pass --no-jail to run patched trials unconfined") from None
    return list(files)


def reachable(settings: Any) -> None:
    """An LLM server given by URL must answer before the run starts (GET /models): one line and
    exit 2 when nothing listens there, instead of a run whose every LLM call fails."""
    import urllib.error
    import urllib.request

    if not settings.provider.startswith(("http://", "https://")):
        return
    url = settings.provider.rstrip("/") + "/models"
    try:
        urllib.request.urlopen(url, timeout=min(10.0, settings.timeout_s)).close()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # it answers; the key is checked on the first call
            return
        fail(f"--llm {settings.provider}: GET {url} answered HTTP {exc.code}: is it an "
             "OpenAI-compatible server (its base URL usually ends in /v1)?")  # fmt: skip
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"--llm {settings.provider}: nothing answers there ({reason}); start the server "
             "or fix the URL (e.g. http://127.0.0.1:8000/v1)")  # fmt: skip
