"""`bilevel best`, `apply`, `export` and `list`: a run's results out of its ledger."""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from bilevel.cli.common import USER_ERRORS, fail, out, shell_line
from bilevel.config import first_error
from bilevel.reporting.results import best_record, config_as, find_runs, list_row, trial_rows

APPLIED_MARK = "# written by `bilevel apply`"
APPLIED_FILE = "WRITTEN_BY_BILEVEL_APPLY"  # in a project copy that apply wrote
BEST_CONFIG_FILE = "best_config.json"  # json mode: the best config, in the run directory
ENCODING_LINE = re.compile(r"^[ \t\f]*#.*?coding[:=]")  # PEP 263


def best_of_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's best record (as in best.json) and its stored config; fails on no success."""
    from bilevel.reporting.report import summary_of
    from bilevel.store.ledger import open_ledger

    try:
        ledger = open_ledger(run_dir.resolve())
        try:
            summary, config = summary_of(ledger), ledger.get_meta("config") or {}
        finally:
            ledger.close()
    except USER_ERRORS as exc:
        fail(first_error(exc))
    if summary["best"] is None:
        fail(f"{run_dir}: no trial succeeded, so there is no best config (`bilevel show` says why)")
    return best_record(summary, config.get("objective_options", {})), config


def best(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="json | toml | env | args.")] = "json",
) -> None:
    """Print the best trial's whole config (json: with its trial, metric, seed and command)."""
    if fmt not in ("json", "toml", "env", "args"):
        fail(f"--format must be json, toml, env or args, got {fmt!r}")
    record, config = best_of_run(run_dir)
    if fmt == "json":
        print(json.dumps(record, indent=2))
        return
    prefix = config.get("objective_options", {}).get("env_prefix", "")
    print(config_as(record["config"], fmt, prefix), end="")


def apply(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of a script objective.")],
    to: Annotated[
        Path | None,
        typer.Option(
            help="Where to write (constants: a copy of the train file, default NAME_best.py "
            "beside it; json: the config file). Your own file only if you name it."
        ),
    ] = None,
    git_branch: Annotated[
        str | None,
        typer.Option(
            "--git",
            help="Commit each kept change, up to the best, on this new branch "
            "of your repository (your checkout is not touched).",
        ),
    ] = None,
) -> None:
    """Write the best config into a copy of your script, or print the command that runs it."""
    from bilevel.objectives import make_objective
    from bilevel.objectives.script import ScriptObjective

    record, config = best_of_run(run_dir)
    if "script" not in record:
        fail(
            f"{run_dir} searched {record['objective']}, not a script: `bilevel apply` writes "
            f"into a script; `bilevel best {run_dir} --format toml` prints the config"
        )
    try:
        obj = make_objective(config["objective"], **config["objective_options"])
    except USER_ERRORS as exc:
        fail(first_error(exc))
    assert isinstance(obj, ScriptObjective)
    passed = obj.passed_values(record["config"], record["seed"])
    env = {"BILEVEL_SEED": str(record["seed"])}
    sources = code_versions(run_dir)
    if git_branch is not None:
        argv, given = commit_on_branch(obj, run_dir, record, git_branch, sources)
        env.update(given)
    elif sources is not None:  # a --code-edits run: the best source too, in a project copy
        argv, given, workdir = write_project(obj, passed, record, sources, to or run_dir / "best")
        env.update(given)
        obj = replace(obj, workdir=workdir)
    elif obj.config_via == "constants":
        argv = write_constants(obj, passed, record, to)
    else:
        config_file = (to or Path(run_dir) / BEST_CONFIG_FILE).resolve()
        argv, given = obj.delivery(passed, obj.workdir, config_file)
        env.update(given)
        if obj.config_via == "json":
            out.print(f"wrote {config_file}", highlight=False)
    out.print(
        f"{obj.metric} {record['metric']:.6g} (trial {record['trial']}); run it with:",
        highlight=False,
    )
    print(f"cd {shlex.quote(str(obj.workdir))} && {shell_line(env, argv)}")


def code_versions(run_dir: Path) -> dict[int, dict[str, str]] | None:
    """For a --code-edits run, each trial's edited files (by trial id); None for other runs."""
    from bilevel.store.ledger import open_ledger
    from bilevel.store.sources import ORIGINAL_KEY, files_of

    ledger = open_ledger(run_dir)
    try:
        if ledger.get_meta(ORIGINAL_KEY) is None:
            return None
        versions: dict[str | None, dict[str, str]] = {}
        out = {}
        for t in ledger.trials():
            code = t.get("code")
            if code not in versions:
                versions[code] = files_of(ledger, code)
            out[t["trial"]] = versions[code]
        return out
    finally:
        ledger.close()


def write_project(
    obj: Any,
    passed: dict[str, Any],
    record: dict[str, Any],
    sources: dict[int, dict[str, str]],
    to: Path,
) -> tuple[list[str], dict[str, str], Path]:
    """A copy of the project at to/work with the best trial's source and config; the command,
    the environment it needs, and the copy's directory."""
    root = to.resolve()
    if root.exists() and not (root / APPLIED_FILE).exists():
        fail(f"{root} exists and was not written by `bilevel apply`: pass --to DIR")
    if root.exists():
        shutil.rmtree(root)
    best = replace(obj, files=sources[record["trial"]])
    try:
        work, _ = best.copy_into(root)
        argv, env = best.delivery(passed, work, root / "config.json")
    except USER_ERRORS as exc:
        fail(first_error(exc))
    (root / APPLIED_FILE).write_text(
        f"{APPLIED_MARK} from {record['run_dir']} (trial {record['trial']}, "
        f"{record['metric_name']} {record['metric']:.6g})\n"
    )
    out.print(f"wrote a copy of {obj.workdir} with the best source and config: {work}",
              highlight=False)  # fmt: skip
    return argv, env, work


def commit_on_branch(
    obj: Any,
    run_dir: Path,
    record: dict[str, Any],
    branch: str,
    sources: dict[int, dict[str, str]] | None,
) -> tuple[list[str], dict[str, str]]:
    """apply --git: the kept changes as commits on a new branch; returns the command to run
    the tip with the best config, and the environment it needs."""
    from bilevel.cli.git_branch import GitError, commit_kept_changes
    from bilevel.store.ledger import open_ledger

    if obj.config_via != "constants" and sources is None:
        fail(f"--git commits the train file's constants or a --code-edits run's source; this "
             f"run passed its config via {obj.config_via} and edited no code: use "
             f"`bilevel apply {run_dir}` without --git")  # fmt: skip
    ledger = open_ledger(run_dir)
    try:
        trials = ledger.trials()
    finally:
        ledger.close()
    try:
        repo, subjects, argv, env = commit_kept_changes(
            obj, trials, record["trial"], record["seed"], branch, sources,
            (run_dir / BEST_CONFIG_FILE).resolve(),
        )  # fmt: skip
    except GitError as exc:
        fail(str(exc))
    out.print(f"branch {branch} in {repo}: {len(subjects)} commits", highlight=False)
    for subject in subjects:
        out.print(f"  {subject}", highlight=False, markup=False)
    out.print(f"(git checkout {branch} to use it; your checkout was not touched)", highlight=False)
    return argv, env


def write_constants(obj: Any, passed: dict[str, Any], record: dict[str, Any], to: Path | None
                    ) -> list[str]:  # fmt: skip
    """The train file with the best constants, at to (default NAME_best.py beside it); returns
    the command with the new file in place of the train file."""
    from bilevel.objectives.script_config import rewrite_constants

    original = obj.workdir / obj.file
    target = (to or original.with_name(f"{original.stem}_best{original.suffix}")).resolve()
    if to is None and target.exists() and APPLIED_MARK not in target.read_text(errors="replace"):
        fail(f"{target} exists and was not written by `bilevel apply`: pass --to FILE")
    source = original.read_text(encoding="utf-8")
    try:
        text = rewrite_constants(source, passed, obj.file)
    except USER_ERRORS as exc:
        fail(first_error(exc))
    lines = text.splitlines(keepends=True)
    keep = 0  # a shebang and an encoding declaration (PEP 263) must stay first
    while keep < min(2, len(lines)) and (
        lines[keep].startswith("#!") or ENCODING_LINE.match(lines[keep])
    ):
        keep += 1
    mark = (
        f"{APPLIED_MARK} from {record['run_dir']} (trial {record['trial']}, "
        f"{record['metric_name']} {record['metric']:.6g})\n"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(lines[:keep]) + mark + "".join(lines[keep:]), encoding="utf-8")
    out.print(f"wrote {target}" + (" (your train file, as asked)" if target == original else ""),
              highlight=False)  # fmt: skip
    argv = shlex.split(obj.command)
    shown = (
        str(target.relative_to(obj.workdir)) if target.is_relative_to(obj.workdir) else str(target)
    )
    replaced = [shown if (obj.workdir / a).resolve() == original else a for a in argv]
    if replaced == argv and target != original:
        out.print(f"(--command does not name {obj.file}: run it with {shown} in its place)",
                  highlight=False)  # fmt: skip
    return replaced


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="csv | jsonl.")] = "csv",
    output: Annotated[Path | None, typer.Option("--out", help="File (default: stdout).")] = None,
) -> None:
    """Every trial as one row (config.NAME, metric, status, source, cycle, extra.KEY) for pandas."""
    from bilevel.reporting.results import columns_of
    from bilevel.store.ledger import open_ledger

    if fmt not in ("csv", "jsonl"):
        fail(f"--format must be csv or jsonl, got {fmt!r}")
    try:
        ledger = open_ledger(run_dir)
    except USER_ERRORS as exc:
        fail(first_error(exc))
    try:
        rows = trial_rows(ledger)
    finally:
        ledger.close()
    stream = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "jsonl":
            for row in rows:
                stream.write(json.dumps(row) + "\n")
        else:
            writer = csv.DictWriter(stream, columns_of(rows), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output:
            stream.close()
    if output:
        out.print(f"wrote {len(rows)} trials to {output}", highlight=False)


RUNS = Path("runs")


def list_runs(
    directory: Annotated[Path, typer.Argument(help="Where runs are (3 levels down).")] = RUNS,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """List the runs under a directory: objective, arm, trials, best, state."""
    if not directory.is_dir():
        fail(f"{directory} is not a directory (runs go to runs/ unless --run-dir says otherwise)")
    from bilevel.reporting.report import summarize

    rows = []
    for run_dir in find_runs(directory):
        try:
            rows.append(list_row(run_dir, summarize(run_dir)))
        except USER_ERRORS as exc:  # one unreadable run does not hide the others
            rows.append({"run_dir": str(run_dir), "state": f"unreadable: {first_error(exc)}"})
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print(f"no runs under {directory}", highlight=False)
        return
    print("run\tobjective\tarm\tseed\ttrials\tbest\tstate")
    for r in rows:
        if "objective" not in r:
            print(f"{r['run_dir']}\t-\t-\t-\t-\t-\t{r['state']}")
            continue
        best = "-" if r["best"] is None else f"{r['best']:.6g}"
        print(f"{r['run_dir']}\t{r['objective']}\t{r['arm']}\t{r['seed']}\t"
              f"{r['trials']}/{r['budget']}\t{best}\t{r['state']}")  # fmt: skip
