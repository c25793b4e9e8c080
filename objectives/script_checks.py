"""Checks that a script trial measured what the search thinks it measured.

Before a run: in constants mode, the command must not set a rewritten constant itself (a
`--name=value` flag, or a config file it names that the script executes after its constants,
as nanoGPT's configurator does). After each trial: the values the script echoed (`name = value`,
`Overriding: name = value`) must be the ones passed, and the metric must not be a stale reading
(printed at step 0, or long before the last logged step).
"""

from __future__ import annotations

import ast
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from bilevel.objectives.script_config import top_level_constants

STEP = re.compile(r"\b(?:step|iter(?:ation)?)[ \t]*[:=#]?[ \t]*(\d+)", re.IGNORECASE)
STALE_FRACTION = 0.9  # a metric read before 90% of the logged steps is not the final one
YAML_KEY = re.compile(r"^[ \t]*([A-Za-z_]\w*)[ \t]*:", re.MULTILINE)


def command_overrides(argv: list[str], workdir: Path, train_file: str, names: list[str]) -> str:
    """Where the command itself sets a constant that constants mode rewrites ("" if nowhere)."""
    wanted = set(names)
    flags = sorted(
        {key for arg in argv[1:] if arg.startswith("--")
         if (key := arg[2:].split("=", 1)[0].replace("-", "_")) in wanted}
    )  # fmt: skip
    if flags:
        return (
            f"--command sets {', '.join('--' + f for f in flags)} itself, which --config-via "
            f"constants rewrites in {train_file}: remove {'it' if len(flags) == 1 else 'them'} "
            "from --command (bilevel sets each trial's value)"
        )
    train = (workdir / train_file).resolve()
    for arg in argv[1:]:
        path = (workdir / arg).resolve() if not arg.startswith("-") else None
        if path is None or path == train or not path.is_file():
            continue
        clash = sorted(wanted & keys_set_by(path))
        if clash:
            return (
                f"{arg} (named in --command) sets {', '.join(clash)}, so the values --config-via "
                f"constants writes into {train_file} would be overridden in every trial: remove "
                f"{'it' if len(clash) == 1 else 'them'} from {arg}, or pass the config with "
                "--config-via args (flags after the config file win)"
            )
    return ""


def keys_set_by(path: Path) -> set[str]:
    """The names a config file sets: a .py's top-level assignments, a JSON/TOML/YAML's keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    suffix = path.suffix.lower()
    try:
        if suffix == ".py":
            return set(top_level_constants(ast.parse(text)))
        if suffix == ".json":
            data = json.loads(text)
            return set(data) if isinstance(data, dict) else set()
        if suffix == ".toml":
            data = tomllib.loads(text)
            nested = {k for v in data.values() if isinstance(v, dict) for k in v}
            return set(data) | nested
    except (SyntaxError, ValueError):
        return set()
    if suffix in (".yaml", ".yml"):
        return set(YAML_KEY.findall(text))
    return set()


def echo_mismatches(text: str, passed: dict[str, Any]) -> list[str]:
    """Passed values the script echoed only as something else: `name = value` lines (a printed
    config, nanoGPT's `Overriding: name = value`) of which none shows the value passed."""
    out = []
    for name, value in passed.items():
        pattern = rf"^[ \t]*(?:Overriding:[ \t]*)?{re.escape(name)}[ \t]*=[ \t]*(.+?)[ \t]*$"
        echoes = re.findall(pattern, text, re.MULTILINE)
        if echoes and not any(same_value(echo, value) for echo in echoes):
            out.append(
                f"this trial set {name} = {value!r} but the script printed "
                f"{name} = {echoes[-1]}: something else sets it (a config file, a flag, code)"
            )
    return out


def same_value(echo: str, value: Any) -> bool:
    """An echoed value's text shows value (to the digits it prints)."""
    echo = echo.split("#", 1)[0].strip()
    try:
        seen = ast.literal_eval(echo)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        seen = echo.strip("'\"")
    if isinstance(value, bool) or isinstance(seen, bool):
        return seen is value or str(seen) == str(value)
    if isinstance(seen, int | float) and isinstance(value, int | float):
        if math.isclose(seen, value, rel_tol=1e-9, abs_tol=0.0):
            return True
        digits = len(re.sub(r"[^0-9]", "", echo.split("e")[0].split("E")[0]).lstrip("0")) or 1
        return f"{float(seen):.{digits}g}" == f"{float(value):.{digits}g}"
    return seen == value or str(seen) == str(value)


def stale_metric(text: str, matches: list[re.Match[str]], metric: str) -> str:
    """Why the metric read is not the run's final one ("" when it looks final): the last match
    comes at step 0, or well before the last step the log reports."""
    steps = [(m.start(), int(m.group(1))) for m in STEP.finditer(text)]
    if not matches or len(steps) < 3:
        return ""
    last = matches[-1]
    line_end = min(p for p in (text.find("\n", last.end()), len(text)) if p >= 0)
    before = [step for pos, step in steps if pos < line_end]
    at = before[-1] if before else 0
    final = max(step for _, step in steps)
    if final <= 0 or at >= STALE_FRACTION * final:
        return ""
    times = "once" if len(matches) == 1 else f"{len(matches)} times"
    return (
        f"{metric} was printed {times} and last at step {at}, but the log goes on to step "
        f"{final}: the value read is not the final one (does the script evaluate only every N "
        "steps, e.g. eval_interval > max_iters?)"
    )
