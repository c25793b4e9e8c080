"""The `script` objective: the user's own training command, run once per trial.

Each trial copies the user's project (minus .git, virtual environments, runs, caches) into its own
scratch directory, passes the config in (rewritten top-level constants, environment variables, a
JSON file or `--name=value` arguments), runs the command in its own process group and reads the
metric from the output, Karpathy-style (`val_bpb: 0.9979`). The user's files are never written.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shlex
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from bilevel.objectives.base import Direction, EvalResult, UnknownObjective, register
from bilevel.objectives.script_config import (
    ScriptError,
    check_constants,
    load_space,
    rewrite_constants,
    space_tables,
)
from bilevel.objectives.script_run import Run, run_command
from bilevel.objectives.space import SearchSpace, SpaceError

CONFIG_MODES = ("constants", "env", "json", "args")
JUNK = frozenset(
    ".git .hg .svn .venv venv runs __pycache__ node_modules .tox .mypy_cache .pytest_cache "
    ".ruff_cache .ipynb_checkpoints".split()
)
# Never set from a parameter in env mode: they would break the command itself.
RESERVED_ENV = frozenset(
    "PATH HOME PYTHONPATH PYTHONHOME LD_LIBRARY_PATH LD_PRELOAD TMPDIR PWD SHELL "
    "BILEVEL_SEED BILEVEL_CONFIG BILEVEL_BUDGET".split()
)
TAIL_LINES = 40
OOM_TEXT = re.compile(r"out of memory|MemoryError|OutOfMemoryError", re.IGNORECASE)
SUMMARY_LINE = re.compile(r"^([A-Za-z_][\w.\-]*):[ \t]*(\S+)[ \t]*$", re.MULTILINE)


@dataclass
class ScriptObjective:
    command: str
    space: SearchSpace
    workdir: Path
    metric: str = "val_bpb"
    direction: Direction = "minimize"
    config_via: str = "constants"
    file: str | None = None
    metric_pattern: str | None = None
    timeout_s: float = 600.0
    env_prefix: str = ""
    seed_param: str | None = None
    exclude: list[str] = field(default_factory=list)
    link: list[str] = field(default_factory=list)
    name: str = "script"
    inline: bool = True  # evaluate() already isolates the work in its own process group

    @property
    def description(self) -> str:
        return (
            f"The user's training command `{self.command}` (in {self.workdir}); the config is "
            f"passed via {self.config_via}; {self.direction} {self.metric}, read from its output."
        )

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.metric_pattern or rf"^{re.escape(self.metric)}:\s*(\S+)", re.M)

    def preflight(self) -> None:
        """Check what a run needs from the user's files now, not at the first trial."""
        if not self.workdir.is_dir():
            raise ScriptError(f"workdir {self.workdir} is not a directory")
        exe = shlex.split(self.command)[0]
        found = (self.workdir / exe).exists() if "/" in exe else shutil.which(exe)
        if not found:
            raise ScriptError(f"command {exe!r} not found (on PATH or in {self.workdir})")
        if self.config_via == "constants":
            path = self.workdir / self.file  # type: ignore[operator]
            if not path.is_file():
                raise ScriptError(f"{path} does not exist (--train-file is relative to --workdir)")
            check_constants(path.read_text(encoding="utf-8"), self.passed_names(), str(path))

    def passed_names(self) -> list[str]:
        return self.space.names + ([self.seed_param] if self.seed_param else [])

    async def evaluate(
        self, config: dict[str, Any], seed: int, budget: float | None = None
    ) -> EvalResult:
        try:
            values = self.space.validate(config)
        except SpaceError as exc:
            return EvalResult(metric=None, status="crash", log_tail=f"[bilevel] crash: {exc}")
        root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="bilevel-trial-"))
        try:
            try:
                argv, env, cwd = await asyncio.to_thread(self.prepare, root, values, seed, budget)
            except (ScriptError, OSError) as exc:
                reason = f"[bilevel] crash: could not prepare the trial: {exc}"
                return EvalResult(metric=None, status="crash", log_tail=reason)
            return self.judge(await run_command(argv, cwd, env, self.timeout_s))
        finally:
            await asyncio.to_thread(shutil.rmtree, root, True)

    def prepare(
        self, root: Path, values: dict[str, Any], seed: int, budget: float | None
    ) -> tuple[list[str], dict[str, str], Path]:
        """Copy the project into root/work and put the config where the script will read it."""
        work = root / "work"
        copy_project(self.workdir, work, self.exclude, self.link, avoid=root)
        passed = {**values, **({self.seed_param: seed} if self.seed_param else {})}
        argv = shlex.split(self.command)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BILEVEL_SEED": str(seed)}
        if budget is not None:
            env["BILEVEL_BUDGET"] = str(budget)
        if self.config_via == "constants":
            path = work / self.file  # type: ignore[operator]
            source = path.read_text(encoding="utf-8")
            path.write_text(rewrite_constants(source, passed, self.file or ""), encoding="utf-8")
        elif self.config_via == "env":
            env.update({self.env_prefix + k.upper(): as_text(v) for k, v in passed.items()})
        elif self.config_via == "json":
            config_file = root / "config.json"  # outside the copy: cannot clobber a user's file
            config_file.write_text(json.dumps(passed, indent=2), encoding="utf-8")
            env["BILEVEL_CONFIG"] = str(config_file)
            argv = [arg.replace("{config}", str(config_file)) for arg in argv]
        else:
            argv += [f"--{k}={as_text(v)}" for k, v in passed.items()]
        return argv, env, work

    def judge(self, run: Run) -> EvalResult:
        """Turn a finished process into a status, the metric, other summary numbers, a log tail."""
        text = run.output
        tail = text.splitlines()[-TAIL_LINES:]
        matches = list(self.pattern.finditer(text))
        raw = matches[-1].group(1) if matches else None
        value = to_float(raw)
        missing = (
            f"no line matching {self.metric_pattern!r} in the output"
            if self.metric_pattern
            else f"no '{self.metric}:' line in the output"
        )
        metric = None
        if run.returncode is None:
            status, reason = "crash", "the command did not start"
        elif run.timed_out:
            status, reason = "timeout", f"killed the process group after {self.timeout_s:g}s"
        elif raw is not None and value is None:
            status, reason = "crash", f"{self.metric} value {raw!r} is not a number"
        elif value is not None and not math.isfinite(value):
            status, reason = "nan", f"{self.metric} is {raw}"
        elif value is not None:
            status, metric = "ok", value
            reason = "" if run.returncode == 0 else f"exit status {run.returncode} after the metric"
        elif run.returncode == -signal.SIGKILL:
            status, reason = "oom", "killed by SIGKILL (the kernel's OOM killer?); " + missing
        elif OOM_TEXT.search(text):
            status, reason = "oom", "out of memory; " + missing
        elif run.returncode != 0:
            status, reason = "crash", f"{exit_text(run.returncode)}; {missing}"
        else:
            status, reason = "crash", missing
        if reason:
            tail.append(f"[bilevel] {status}: {reason}")
        extra = summary_numbers(text, skip=self.metric)
        return EvalResult(
            metric=metric, status=status, seconds=run.seconds, extra=extra, log_tail="\n".join(tail)
        )


def as_text(value: Any) -> str:
    """A value as an environment variable or argument: strings raw, the rest as JSON (true, 3)."""
    return value if isinstance(value, str) else json.dumps(value)


def to_float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def summary_numbers(text: str, skip: str) -> dict[str, float]:
    """Every `key: number` line (the last one of each key), e.g. training_seconds, num_steps."""
    out: dict[str, float] = {}
    for match in SUMMARY_LINE.finditer(text):
        key, number = match.group(1), to_float(match.group(2))
        if key != skip and number is not None and math.isfinite(number):
            out[key] = int(number) if number.is_integer() and "." not in match.group(2) else number
    return out


def copy_project(src: Path, dst: Path, exclude: list[str], link: list[str], avoid: Path) -> None:
    """Copy src to dst without junk, bilevel run directories or avoid; symlink `link` globs."""
    links: list[tuple[Path, Path]] = []

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skipped = set()
        for name in names:
            path = here / name
            if any(fnmatch(name, pattern) for pattern in link):
                links.append((path, dst / path.relative_to(src)))
                skipped.add(name)
            elif (
                name in JUNK
                or name.endswith(".pyc")
                or any(fnmatch(name, pattern) for pattern in exclude)
                or path == avoid
                or (path / "ledger.sqlite").exists()  # a run directory, written to right now
            ):
                skipped.add(name)
        return skipped

    shutil.copytree(src, dst, symlinks=True, ignore=ignore)
    for target, where in links:
        where.symlink_to(target.resolve())


@register("script")
def make_script_objective(
    command: str | None = None,
    space: str | dict[str, Any] | None = None,
    metric: str = "val_bpb",
    direction: str = "minimize",
    workdir: str | None = None,
    config_via: str = "constants",
    file: str | None = None,
    metric_pattern: str | None = None,
    timeout_s: float = 600.0,
    env_prefix: str = "",
    seed_param: str | None = None,
    exclude: list[str] | None = None,
    link: list[str] | None = None,
) -> ScriptObjective:
    """The user's command as an objective; checks the options, not yet the user's files.

    space is a TOML file's path or its tables as a dict; a run records it as
    {"params": [{"name": ..., ...}, ...]}, a list, because JSON with sorted keys would lose the
    order of a mapping (and the order is the researcher's preference).
    """
    if not command or space is None:
        raise UnknownObjective(
            "objective 'script' needs options: command (--command \"python train.py\") and "
            "space (--space FILE; draft one with `bilevel space draft train.py`)"
        )
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ScriptError(f"--command {command!r} does not parse: {exc}") from None
    if not argv:
        raise ScriptError("--command is empty")
    if direction not in ("minimize", "maximize"):
        raise ScriptError(f"--direction must be minimize or maximize, got {direction!r}")
    if config_via not in CONFIG_MODES:
        raise ScriptError(
            f"--config-via must be one of {', '.join(CONFIG_MODES)}, got {config_via!r}"
        )
    if not metric or not isinstance(timeout_s, int | float) or timeout_s <= 0:
        raise ScriptError("--metric must be a name and --eval-timeout a positive number of seconds")
    if metric_pattern is not None:
        try:
            if re.compile(metric_pattern).groups < 1:
                raise ScriptError(
                    f"metric_pattern {metric_pattern!r} needs a (group) for the value"
                )
        except re.error as exc:
            raise ScriptError(f"metric_pattern {metric_pattern!r} is not a regex: {exc}") from None
    root = Path(workdir or Path.cwd()).resolve()
    objective = ScriptObjective(
        command=command,
        space=load_space(space),
        workdir=root,
        metric=metric,
        direction=direction,  # type: ignore[arg-type]  # checked above
        config_via=config_via,
        file=_train_file(file, argv, root) if config_via == "constants" else file,
        metric_pattern=metric_pattern,
        timeout_s=float(timeout_s),
        env_prefix=env_prefix,
        seed_param=seed_param,
        exclude=list(exclude or []),
        link=list(link or []),
    )
    _check_names(objective)
    return objective


def _train_file(file: str | None, argv: list[str], root: Path) -> str:
    """The file whose constants are rewritten, relative to the workdir (default: the .py run)."""
    file = file or next((a for a in argv[1:] if a.endswith(".py")), None)
    if not file:
        raise ScriptError("--config-via constants needs --train-file (the file with the constants)")
    path = (root / file).resolve()
    if not path.is_relative_to(root):
        raise ScriptError(f"--train-file {file} is outside --workdir {root}: only that is copied")
    return str(path.relative_to(root))


def _check_names(obj: ScriptObjective) -> None:
    for name in obj.passed_names():
        if obj.config_via in ("constants", "env") and not name.isidentifier():
            raise ScriptError(
                f"parameter {name!r} must be a Python identifier for {obj.config_via}"
            )
        if obj.config_via == "env" and obj.env_prefix + name.upper() in RESERVED_ENV:
            raise ScriptError(f"parameter {name!r} would overwrite ${name.upper()}: set env_prefix")


def cli_options(options: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """`bilevel run --objective script` flags as objective options, checked against the files.

    Paths become absolute and the space is stored inline, so the run's ledger alone says what
    was searched, and `bilevel show` / `resume` work from anywhere.
    """
    options = {**options, **{k: v for k, v in flags.items() if v is not None}}
    if not options.get("command"):
        raise ScriptError('--objective script needs --command, e.g. --command "python train.py"')
    if options.get("space") is None:
        raise ScriptError(
            "--objective script needs --space FILE (draft one: bilevel space draft train.py)"
        )
    workdir = Path(options.get("workdir") or Path.cwd()).resolve()
    options["workdir"] = str(workdir)
    space = options["space"]
    if not isinstance(space, dict):
        # As typed from the current directory, else inside --workdir (next to train.py).
        space = Path(space) if Path(space).exists() else workdir / space
    options["space"] = space_tables(load_space(space))
    objective = make_script_objective(**options)
    objective.preflight()
    if objective.file is not None:
        options["file"] = objective.file
    return options
