"""Small `bilevel` commands: objectives, mechanism check, space draft, report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bilevel.cli.common import USER_ERRORS, fail, out, validate_source
from bilevel.config import first_error
from bilevel.objectives import UnknownObjective, registered
from bilevel.objectives.script_draft import draft_space
from bilevel.terminal import safe

mechanism_app = typer.Typer(no_args_is_help=True, help="Work with mechanism source files.")


@mechanism_app.command("check")
def mechanism_check(
    file: Annotated[Path, typer.Argument(help="A mechanism source file.")],
    timeout: Annotated[float, typer.Option(help="Seconds one hook call may take.")] = 1.0,
) -> None:
    """Validate a mechanism exactly as generated code is validated; exit 1 if it is rejected."""

    if not file.is_file():
        fail(f"mechanism file {file} does not exist")
    report = asyncio.run(validate_source(file.read_text(), timeout))
    if report.ok:
        hooks = ", ".join(report.hooks) or "none (the default mechanism)"
        out.print(f"accepted: {file} (hooks: {hooks}; {report.checks} checks passed)")
        return
    out.print(f"rejected: {file}: {safe(report.reason)}", highlight=False, markup=False)
    raise typer.Exit(1)


def objectives() -> None:
    """List registered objectives: name, metric, direction, parameter count."""
    from bilevel.objectives import make_objective

    factories = registered()
    print("objective\tmetric\tdirection\tparameters")
    for name in sorted(factories):
        try:
            obj = make_objective(name)
        except UnknownObjective:  # it needs options first, e.g. script's --command and --space
            print(f"{name}\t(from --metric)\t(from --direction)\t(from --space)")
            continue
        print(f"{name}\t{obj.metric}\t{obj.direction}\t{len(obj.space.params)}")


space_app = typer.Typer(no_args_is_help=True, help="Work with search-space files.")


@space_app.command("draft")
def space_draft(
    file: Annotated[Path, typer.Argument(help="A training script with top-level constants.")],
    all_constants: Annotated[
        bool,
        typer.Option(help="Every module-level name, not only UPPER_CASE ones (nanoGPT's)."),
    ] = False,
    match: Annotated[
        str | None, typer.Option(help="Only names that fully match this regex: 'lr|batch_.*'.")
    ] = None,
    metric: Annotated[
        str, typer.Option(help="The metric the script prints: what feeds it is not reporting.")
    ] = "val_bpb",
) -> None:
    """Print a draft search-space TOML inferred from a script's constants (edit, then --space)."""

    try:
        print(draft_space(file, all_constants=all_constants, match=match, metric=metric), end="")
    except USER_ERRORS as exc:
        fail(first_error(exc))


def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Write report.md and its PNG figures into the run directory, from its ledger."""
    from bilevel.reporting.report import write_report

    try:
        files = write_report(run_dir)
    except USER_ERRORS as exc:
        fail(first_error(exc))
    out.print(f"written: {files[0]}", highlight=False)
    for path in files[1:]:
        out.print(f"  figure: {path}", highlight=False)
