"""The `bilevel` command line: every command, registered on one Typer app.

run, resume, show (cli/run.py) · best, apply, export, list (cli/results.py) ·
batch, bench, bench-report (cli/scale.py) · objectives, report, mechanism check, space draft
(cli/tools.py) · mechanisms (cli/library.py)
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from bilevel.cli.library import mechanisms_app
from bilevel.cli.results import apply, best, export, list_runs
from bilevel.cli.run import resume, run, show
from bilevel.cli.scale import batch, bench, bench_report
from bilevel.cli.tools import mechanism_app, objectives, report, space_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Bilevel autoresearch: an outer loop that improves how the inner loop searches.",
)

app.command()(run)
app.command()(resume)
app.command()(show)
app.command()(best)
app.command()(apply)
app.command()(export)
app.command("list")(list_runs)
app.command()(batch)
app.command()(bench)
app.command("bench-report")(bench_report)
app.add_typer(mechanisms_app, name="mechanisms")
app.add_typer(mechanism_app, name="mechanism")
app.add_typer(space_app, name="space")
app.command()(objectives)
app.command()(report)


def without_flag_metavars(command: Any) -> Any:
    """Flags take no value, so the help shows none for them (Typer would print `<bool>`)."""
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        without_flag_metavars(sub)
    return command


def main() -> None:
    try:
        without_flag_metavars(typer.main.get_command(app))(prog_name="bilevel")
    except KeyboardInterrupt:
        sys.exit(130)
