"""The `script` objective: the user's own training command, run once per trial.

Each trial copies the user's project (objectives/script_copy.py: minus .git, runs and caches;
virtual environments and large files linked) into its own scratch directory, passes the config in,
runs the command in its own process group and reads the metric from the output, Karpathy-style
(`val_bpb: 0.9979`). The user's files are never written. How values are passed, per mode:

    constants  top-level `NAME = value` rewritten in the train file, as Python (repr)
    args       `--name=value` appended, as Python literals: True, None, 0.0006, 'text' raw
               (what `ast.literal_eval`, e.g. nanoGPT's configurator, reads)
    env        $NAME (env_prefix + NAME upper-cased): strings raw, the rest as JSON (true, null)
    json       a JSON file at {config} in the command and in $BILEVEL_CONFIG
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
from pathlib import Path
from typing import Any

from bilevel.objectives.base import Direction, EvalResult, UnknownObjective, register
from bilevel.objectives.jail import backend, check_jail, jail_argv, jailed_env
from bilevel.objectives.script_checks import command_overrides, echo_mismatches, stale_metric
from bilevel.objectives.script_config import (
    ScriptError,
    arg_text,
    check_constants,
    env_text,
    load_space,
    rewrite_constants,
    space_tables,
)
from bilevel.objectives.script_copy import LINK_OVER_MB, TrialCopy, copy_project
from bilevel.objectives.script_run import Run, run_command
from bilevel.objectives.space import SearchSpace, SpaceError, python_literal

CONFIG_MODES = ("constants", "env", "json", "args")
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
    link_over_mb: float = LINK_OVER_MB
    jail: bool = False  # run each trial in objectives/jail.py's jail (bubblewrap or namespaces)
    files: dict[str, str] = field(default_factory=dict)  # patched sources written over the copy
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
        if self.jail:
            check_jail()
        exe = shlex.split(self.command)[0]
        found = (self.workdir / exe).exists() if "/" in exe else shutil.which(exe)
        if not found:
            raise ScriptError(f"command {exe!r} not found (on PATH or in {self.workdir})")
        if self.config_via == "constants":
            path = self.workdir / self.file  # type: ignore[operator]
            if not path.is_file():
                raise ScriptError(f"{path} does not exist (--train-file is relative to --workdir)")
            check_constants(path.read_text(encoding="utf-8"), self.passed_names(), str(path))
            clash = command_overrides(
                shlex.split(self.command), self.workdir, self.file or "", self.passed_names()
            )
            if clash:
                raise ScriptError(clash)

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
                argv, env, cwd, copy = await asyncio.to_thread(
                    self.prepare, root, values, seed, budget
                )
            except (ScriptError, OSError) as exc:
                reason = f"[bilevel] crash: could not prepare the trial: {exc}"
                return EvalResult(metric=None, status="crash", log_tail=reason)
            if self.jail:
                linked = [*copy.linked, *copy.linked_dirs]
                argv = jail_argv(argv, root, cwd, env, linked)
                env = jailed_env(env, root)
            result = with_copy(
                self.judge(await run_command(argv, cwd, env, self.timeout_s), values), copy
            )
            if self.jail:  # the ledger says which trials ran jailed, and how
                result.extra["jail"] = backend()
            return result
        finally:
            await asyncio.to_thread(shutil.rmtree, root, True)

    def prepare(
        self, root: Path, values: dict[str, Any], seed: int, budget: float | None
    ) -> tuple[list[str], dict[str, str], Path, TrialCopy]:
        """Copy the project into root/work and put the config where the script will read it."""
        work, copy = self.copy_into(root)
        passed = self.passed_values(values, seed)
        argv, env = self.delivery(passed, work, root / "config.json")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BILEVEL_SEED": str(seed), **env}
        if budget is not None:
            env["BILEVEL_BUDGET"] = str(budget)
        return argv, env, work, copy

    def copy_into(self, root: Path) -> tuple[Path, TrialCopy]:
        """The project copied to root/work, with a code edit's files written over it."""
        work = root / "work"
        copy = copy_project(
            self.workdir, work, self.exclude, self.link, avoid=root, link_over_mb=self.link_over_mb
        )
        for name, text in self.files.items():  # a --code-edits trial's source (already checked)
            target = work / name
            if any(p.is_symlink() for p in target.parents if p.is_relative_to(work)):
                raise ScriptError(f"{name} is inside a linked directory: it cannot be edited")
            target.unlink(missing_ok=True)  # never through a link into the user's project
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return work, copy

    def passed_values(self, values: dict[str, Any], seed: int | None) -> dict[str, Any]:
        """What the script is given: the config (literal choices as their Python values' source)
        and the seed where seed_param names one."""
        passed = {
            k: PyLiteral(v) if k in self.space.names and self.space[k].literal else v
            for k, v in values.items()
        }
        if self.seed_param and seed is not None:
            passed[self.seed_param] = seed
        return passed

    def delivery(
        self, passed: dict[str, Any], work: Path, config_file: Path
    ) -> tuple[list[str], dict[str, str]]:
        """The command and environment that give the script passed; constants mode rewrites the
        train file under work, json mode writes config_file (outside the copy: it cannot
        clobber a user's file). `bilevel apply` prints the same for the best config."""
        argv, env = shlex.split(self.command), {}
        if self.config_via == "constants":
            path = work / self.file  # type: ignore[operator]
            source = path.read_text(encoding="utf-8")
            path.write_text(rewrite_constants(source, passed, self.file or ""), encoding="utf-8")
        elif self.config_via == "env":
            env = {self.env_prefix + k.upper(): env_text(v) for k, v in passed.items()}
        elif self.config_via == "json":
            plain = {k: v.value() if isinstance(v, PyLiteral) else v for k, v in passed.items()}
            config_file.write_text(json.dumps(plain, indent=2), encoding="utf-8")
            env = {"BILEVEL_CONFIG": str(config_file)}
            argv = [arg.replace("{config}", str(config_file)) for arg in argv]
        else:
            argv += [f"--{k}={arg_text(v)}" for k, v in passed.items()]
        return argv, env

    def judge(self, run: Run, passed: dict[str, Any] | None = None) -> EvalResult:
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
        warnings = echo_mismatches(text, passed or {})
        if metric is not None and (stale := stale_metric(text, matches, self.metric)):
            warnings.append(stale)
        tail += [f"[bilevel] warning: {w}" for w in warnings]
        extra: dict[str, Any] = summary_numbers(text, skip=self.metric)
        if warnings:
            extra["warnings"] = warnings
        return EvalResult(
            metric=metric, status=status, seconds=run.seconds, extra=extra, log_tail="\n".join(tail)
        )


class PyLiteral(str):
    """A literal choice's Python source (`None`, `(0.9, 0.95)`): its repr is the source itself,
    so the constants rewrite writes the literal, not a string."""

    def __repr__(self) -> str:
        return str(self)

    def value(self) -> Any:
        return python_literal("choice", str(self))


def with_copy(result: EvalResult, copy: TrialCopy) -> EvalResult:
    """The trial's result with what its copy cost, and a warning if it wrote a linked original."""
    extra = {**result.extra, "trial_copy": copy.numbers()}
    tail = result.log_tail
    written = copy.written_originals()
    if written:
        names = ", ".join(str(p) for p in written[:3])
        warning = (
            f"the trial wrote to {names}, linked from your project (not copied, as a large file): "
            "pass --exclude, or --objective-opt link_over_mb=N, to change what is linked"
        )
        extra["warnings"] = [*extra.get("warnings", []), warning]
        tail += f"\n[bilevel] warning: {warning}"
    return result.model_copy(update={"extra": extra, "log_tail": tail})


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
    exclude: list[str] | str | None = None,
    link: list[str] | str | None = None,
    link_over_mb: float = LINK_OVER_MB,
    jail: bool = False,
    files: dict[str, str] | None = None,
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
        exclude=globs("exclude", exclude),
        link=globs("link", link),
        link_over_mb=float(link_over_mb),
        jail=bool(jail),
        files=overlay_files(files, root),
    )
    _check_names(objective)
    return objective


def globs(option: str, value: list[str] | str | None) -> list[str]:
    """link / exclude as a list of globs: a TOML list, repeated flags, or one comma-separated
    string (`-o link=.venv,data/*.bin`)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ScriptError(f"{option} must be a glob or a list of globs, got {value!r}")
    return [i.strip() for i in items if i.strip()]


def overlay_files(files: dict[str, str] | None, root: Path) -> dict[str, str]:
    """files (path relative to the workdir -> text), each checked to stay inside the workdir."""
    if not files:
        return {}
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ScriptError("files must map paths to their text")
    for name in files:
        if Path(name).is_absolute() or not (root / name).resolve().is_relative_to(root):
            raise ScriptError(f"edited file {name} is outside --workdir {root}")
    return dict(files)


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
    for key in ("link", "exclude"):
        if key in options:
            options[key] = globs(key, options[key])
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
