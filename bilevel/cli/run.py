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
from bilevel.cli.run_flags import (
    RUN_OPTIONS,
    code_edit_files,
    config_from_flags,
    flag_error,
    parse_options,
    reachable,
    run_length,
)
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
from bilevel.objectives.script import cli_options as script_cli_options
from bilevel.progress import RunProgress
from bilevel.reporting.report import parallel_of, summarize
from bilevel.sandbox.pool import REQUIRE_ENV
from bilevel.terminal import safe


def llm_option(text: str) -> Any:
    return typer.Option(help=text, rich_help_panel="LLM")


def script_option(text: str) -> Any:
    return typer.Option(help=text, rich_help_panel="Script objective (--objective script)")


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
