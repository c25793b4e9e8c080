"""`bilevel run`, `resume` and `show`: one run, from its flags to its summary."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from bilevel.cli.common import USER_ERRORS, err, fail, validate_source
from bilevel.cli.library import library_start
from bilevel.cli.scale import (
    DevicesFlag,
    ExecutorFlag,
    RayAddressFlag,
    RayCpusFlag,
    RayGpusFlag,
    build_executor,
)
from bilevel.cli.summary import print_summary
from bilevel.config import ARMS, RunConfig, first_error
from bilevel.execution.executor import Executor
from bilevel.objectives import UnknownObjective, resolve
from bilevel.objectives.jail import JailUnavailable, check_jail
from bilevel.objectives.script import cli_options as script_cli_options
from bilevel.progress import RunProgress
from bilevel.reporting.report import parallel_of, summarize
from bilevel.sandbox.pool import REQUIRE_ENV
from bilevel.store.sources import default_edit_files, read_edit_files
from bilevel.terminal import safe


def llm_option(text: str) -> Any:
    return typer.Option(help=text, rich_help_panel="LLM")


def script_option(text: str) -> Any:
    return typer.Option(help=text, rich_help_panel="Script objective (--objective script)")


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


RequireConfinementFlag = Annotated[
    bool,
    typer.Option(
        help="Refuse to run unless sandbox workers get Landlock and seccomp "
        "(also $BILEVEL_REQUIRE_CONFINEMENT=1)."
    ),
]


def confine(required: bool) -> None:
    if required:  # every sandbox pool of this process reads it (sandbox/pool.py)
        os.environ[REQUIRE_ENV] = "1"


def disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)


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


def run(
    objective: Annotated[
        str, typer.Option(help="Objective name (see `bilevel objectives`).")
    ] = "synthetic:trainsim",
    arm: Annotated[str, typer.Option(help=f"One of: {', '.join(ARMS)}.")] = "full",
    iterations: Annotated[
        int | None,
        typer.Option(
            help="Inner iterations in the whole run \\[default: 120, or the "
            "objective's own, e.g. 30 for tinygpt]."
        ),
    ] = None,
    cycle: Annotated[
        int | None,
        typer.Option(
            help="Inner iterations per outer cycle \\[default: 12, or the objective's own]."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same results.tsv.")] = 0,
    seed_per_trial: Annotated[
        bool,
        typer.Option(help="Each trial its own evaluation seed (default: the run's, for all)."),
    ] = False,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel", "--slots", help="Parallel evaluations: trials evaluated at once (W)."
        ),
    ] = 1,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<name>).")
    ] = None,
    mechanism: Annotated[
        Path | None, typer.Option(help="Mechanism source file to install.")
    ] = None,
    objective_opt: Annotated[
        list[str] | None,
        typer.Option(help="Objective option NAME=VALUE (repeatable), e.g. noise=0.01."),
    ] = None,
    hook_timeout: Annotated[
        float, typer.Option(help="Seconds one mechanism hook call may take.")
    ] = 1.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    checkpointer: Annotated[
        str | None, typer.Option(help="postgres:// URL of a shared checkpoint store.")
    ] = None,
    eval_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds one evaluation may take (script default 600; else none)."),
    ] = None,
    noise_repeats: Annotated[
        int,
        typer.Option(help="Evaluate the baseline this many more times to measure noise sigma."),
    ] = 0,
    noise_k: Annotated[
        float, typer.Option(help="With --noise-repeats: keep only gains larger than k x sigma.")
    ] = 2.0,
    gate: Annotated[
        bool,
        typer.Option(
            help="Statistical adoption gate: adopt only credible gains (permutation test)."
        ),
    ] = False,
    gate_alpha: Annotated[float, typer.Option(help="The gate's significance level.")] = 0.1,
    from_library: Annotated[
        bool,
        typer.Option(help="Start from the library's best mechanism for a similar objective."),
    ] = False,
    learn_from_library: Annotated[
        bool,
        typer.Option(help="The offline meta-researcher starts from the library's statistics."),
    ] = False,
    executor: ExecutorFlag = "local",
    ray_address: RayAddressFlag = None,
    devices: DevicesFlag = None,
    ray_cpus: RayCpusFlag = 1.0,
    ray_gpus: RayGpusFlag = 0.0,
    llm: Annotated[str, llm_option("none | local | openai:<model> | <base URL>.")] = "none",
    llm_model: Annotated[str | None, llm_option("Model name on a URL server.")] = None,
    researcher: Annotated[str | None, llm_option("prior | llm (default: llm when --llm).")] = None,
    meta: Annotated[str | None, llm_option("library | llm (default: llm when --llm).")] = None,
    researcher_model: Annotated[str | None, llm_option("Model of the researcher.")] = None,
    meta_model: Annotated[str | None, llm_option("Model of the meta-researcher.")] = None,
    fallback_model: Annotated[str | None, llm_option("Tried once when the model fails.")] = None,
    api_key_env: Annotated[str, llm_option("Variable holding the API key.")] = "OPENAI_API_KEY",
    temperature: Annotated[float, llm_option("Sampling temperature.")] = 0.7,
    max_tokens: Annotated[int, llm_option("Tokens per reply.")] = 1024,
    structured_output: Annotated[
        str, llm_option("auto | json_schema | function_calling | json_mode.")
    ] = "auto",
    token_budget: Annotated[
        int | None, llm_option("Stop LLM calls after this many tokens.")
    ] = None,
    cost_budget: Annotated[float | None, llm_option("Stop LLM calls past this many USD.")] = None,
    price_in: Annotated[float, llm_option("USD per 1M input tokens (for cost).")] = 0.0,
    price_out: Annotated[float, llm_option("USD per 1M output tokens (for cost).")] = 0.0,
    repair_rounds: Annotated[int, llm_option("Repair rounds for a rejected mechanism.")] = 2,
    gguf: Annotated[str | None, llm_option("GGUF model file for --llm local.")] = None,
    llm_timeout: Annotated[float, llm_option("Seconds per LLM request before retrying.")] = 120.0,
    llm_retries: Annotated[int, llm_option("Retries on 429, 5xx and timeouts.")] = 3,
    approve: Annotated[bool, llm_option("Ask before adopting each mechanism.")] = False,
    command: Annotated[
        str | None, script_option('Your training command: "python train.py".')
    ] = None,
    metric: Annotated[str | None, script_option("Metric it prints (default val_bpb).")] = None,
    metric_pattern: Annotated[
        str | None,
        script_option("Regex whose group is the value, if not `METRIC: value`: 'val loss (\\S+)'."),
    ] = None,
    space: Annotated[Path | None, script_option("Search-space TOML file.")] = None,
    config_via: Annotated[
        str | None, script_option("constants (default) | env | json | args.")
    ] = None,
    train_file: Annotated[
        str | None, script_option("File whose constants are rewritten (default: the .py run).")
    ] = None,
    direction: Annotated[str | None, script_option("minimize (default) | maximize.")] = None,
    workdir: Annotated[Path | None, script_option("Your project directory (default .).")] = None,
    link: Annotated[
        list[str] | None,
        script_option("Glob to symlink, not copy, into each trial (repeatable): data/*.bin."),
    ] = None,
    exclude: Annotated[
        list[str] | None, script_option("Glob left out of each trial's copy (repeatable).")
    ] = None,
    jail: Annotated[
        bool,
        script_option(
            "Run each trial jailed: no network, read-only system, only its scratch "
            "directory writable (bubblewrap)."
        ),
    ] = False,
    code_edits: Annotated[
        bool,
        script_option(
            "The llm researcher may also patch --edit-files (each patch checked, "
            "then run in the jail)."
        ),
    ] = False,
    edit_files: Annotated[
        list[str] | None,
        script_option("A file --code-edits may change (repeatable; default: the train file)."),
    ] = None,
    no_jail: Annotated[
        bool, script_option("Run patched trials unjailed (only where no jail can be built).")
    ] = False,
    require_confinement: RequireConfinementFlag = False,
) -> None:
    """Run a bilevel search (no LLM or API key needed: the prior researcher and library meta)."""
    typed = dict(locals())  # the flags as typed, before any is worked out below
    confine(require_confinement)
    if arm not in ARMS:
        fail(f"unknown arm {arm!r}: choose one of {', '.join(ARMS)}")
    try:
        resolve(objective)
    except UnknownObjective as exc:
        fail(str(exc))
    source = None
    if mechanism is not None:
        if not mechanism.is_file():
            fail(f"mechanism file {mechanism} does not exist")
        source = mechanism.read_text()
        report = asyncio.run(validate_source(source, hook_timeout))
        if not report.ok:  # the run would go on without it: say so before anything runs
            fail(f"--mechanism {mechanism} was rejected: {report.reason} "
                 f"(`bilevel mechanism check {mechanism}` shows the same)")  # fmt: skip
    objective_options = parse_options(objective_opt or [])
    script_flags = {
        "command": command,
        "metric": metric,
        "metric_pattern": metric_pattern,
        "space": str(space) if space else None,
        "config_via": config_via,
        "file": train_file,
        "direction": direction,
        "workdir": str(workdir) if workdir else None,
        "link": link or None,
        "exclude": exclude or None,
        "jail": jail or None,
    }
    if objective.partition("@")[0] == "script":
        try:
            script_flags["timeout_s"] = eval_timeout  # the script objective kills on its own
            eval_timeout = None
            objective_options = script_cli_options(objective_options, script_flags)
        except USER_ERRORS as exc:
            fail(first_error(exc))
    elif given := [k for k, v in script_flags.items() if v is not None]:
        flag = {"file": "train-file"}.get(given[0], given[0])
        fail(f"--{flag.replace('_', '-')} is only for --objective script")
    if edit_files and not code_edits:
        fail("--edit-files names what --code-edits may change: add --code-edits")
    if code_edits:
        try:
            edit_files = code_edit_files(objective, objective_options, edit_files, no_jail)
        except USER_ERRORS as exc:
            fail(first_error(exc))
    iterations, cycle = run_length(objective, objective_options, iterations, cycle)
    meta_prior: dict[str, Any] = {}
    if from_library or learn_from_library:
        if from_library and source is not None:
            fail("--from-library and --mechanism both choose the first mechanism: use one")
        try:
            from_lib, meta_prior = library_start(objective, objective_options, learn_from_library)
        except USER_ERRORS as exc:
            fail(first_error(exc))
        source = from_lib if from_library else source
    try:
        flags = {name: value for name, value in typed.items() if name in RUN_OPTIONS}
        config = config_from_flags(
            flags,
            mechanism_source=source,
            objective_options=objective_options,
            meta_prior=meta_prior,
            iterations=iterations,
            cycle_length=cycle,
            researcher=researcher or ("llm" if llm != "none" else "prior"),
            meta=meta or ("llm" if llm != "none" else "library"),
            eval_timeout_s=eval_timeout,
            edit_files=edit_files or [],
            jail_edits=not no_jail,
            llm_seed=seed,
        )
        if config.researcher == "llm" or config.meta == "llm":
            reachable(config.llm)
        pool = build_executor(executor, ray_address, devices, ray_cpus, ray_gpus, parallel)
    except ValidationError as exc:
        fail(flag_error(exc))
    except USER_ERRORS as exc:
        fail(first_error(exc))
    _execute(lambda progress: _arun(config, run_dir, progress, checkpointer, pool), json_out)


def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run directory to continue.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    checkpointer: Annotated[
        str | None, typer.Option(help="The postgres:// URL the run was started with.")
    ] = None,
    executor: ExecutorFlag = "local",
    ray_address: RayAddressFlag = None,
    devices: DevicesFlag = None,
    ray_cpus: RayCpusFlag = 1.0,
    ray_gpus: RayGpusFlag = 0.0,
    require_confinement: RequireConfinementFlag = False,
) -> None:
    """Continue a run that was interrupted: no trial lost, none evaluated twice. The executor
    may differ from the one it started with."""
    confine(require_confinement)
    try:
        parallel, finished, kind = _run_state(run_dir)
        if finished and kind in (None, "sqlite" if checkpointer is None else "postgres"):
            # nothing to continue: say so, and show it (a wrong --checkpointer is still refused)
            err.print(f"{run_dir} already finished: nothing to resume", markup=False)
            show(run_dir, json_out)
            return
        pool = build_executor(executor, ray_address, devices, ray_cpus, ray_gpus, parallel)
    except USER_ERRORS as exc:
        fail(first_error(exc))
    _execute(lambda progress: _arun(None, run_dir, progress, checkpointer, pool), json_out)


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


def _run_state(run_dir: Path) -> tuple[int, bool, str | None]:
    """(W, finished, checkpointer kind) of a recorded run."""
    from bilevel.store.ledger import open_ledger

    ledger = open_ledger(run_dir)
    try:
        config, finished = ledger.get_meta("config") or {}, ledger.get_meta("finished") is True
        return parallel_of(config), finished, ledger.get_meta("checkpointer")
    finally:
        ledger.close()


async def _arun(
    config: RunConfig | None,
    run_dir: Path | None,
    progress: Any,
    checkpointer: str | None,
    executor: Executor,
) -> dict[str, Any]:
    """Run config, or resume run_dir when config is None; the executor is closed after."""
    from bilevel.runner import aresume, arun

    kwargs = {"progress": progress, "approver": approve_in_terminal, "checkpointer": checkpointer}
    try:
        if config is None:
            return await aresume(run_dir, executor=executor, **kwargs)  # type: ignore[arg-type]
        return await arun(config, run_dir, executor=executor, **kwargs)
    finally:
        await executor.close()


async def approve_in_terminal(question: dict[str, Any]) -> str:
    """--approve: show the mechanism's diff and validation, ask yes/no on the terminal."""
    err.print(
        f"\n[bold]mechanism {question['mechanism']}[/bold] passed validation "
        f"({question['validation'].get('checks', '?')} checks). Diff:"
    )
    err.print(safe(question["diff"]) or "(no diff)", highlight=False, markup=False)
    err.print("adopt it? [y/N] ", end="", markup=False)
    line = await asyncio.to_thread(sys.stdin.readline)
    return "yes" if line.strip().lower() in ("y", "yes") else "no"


def _execute(start: Any, json_out: bool) -> None:
    display = RunProgress(err, enabled=not json_out)
    try:
        with display:
            summary = asyncio.run(start(display.update))
    except USER_ERRORS as exc:
        fail(first_error(exc))
    except KeyboardInterrupt:
        where = display.run_dir or "DIR"  # DIR only if it stopped before the run dir was set
        err.print(f"interrupted: continue with `bilevel resume {where}`", markup=False)
        raise typer.Exit(130) from None
    except (OSError, sqlite3.OperationalError) as exc:
        if not disk_full(exc):
            raise
        where = f" {display.run_dir}" if display.run_dir else ""
        err.print(
            f"error: the disk is full ({exc}); nothing decided is lost: free some space, then "
            f"continue with `bilevel resume{where or ' DIR'}`",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1) from None
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    for problem in summary.get("problems", []):
        err.print(f"[red]error:[/red] {escape(safe(problem))}", highlight=False)
    if summary.get("problems"):
        raise typer.Exit(1)


def show(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Summarise a run from its ledger."""
    try:
        summary = summarize(run_dir)
    except USER_ERRORS as exc:
        fail(first_error(exc))
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
