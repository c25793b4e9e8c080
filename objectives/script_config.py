"""How a user's script is configured: search-space files, top-level constants, draft spaces.

A search space file is TOML, one table per parameter, in the order a person would try them:

    [params.LR]
    type = "logfloat"          # float | logfloat | int | categorical
    low = 1e-4
    high = 1e-1
    default = 3e-3
    description = "AdamW learning rate"   # optional, shown to the researcher

Categorical parameters have `choices = [...]` instead of low/high.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bilevel.objectives.space import Param, SearchSpace


class ScriptError(ValueError):
    """A misconfigured script objective; the message is one line that says what to fix."""


PARAM_KEYS = (
    "type", "default", "low", "high", "choices", "step", "scale", "literal", "pow2", "description"
)  # fmt: skip
KINDS = ("float", "logfloat", "int", "categorical")


def arg_text(value: Any) -> str:
    """A value as `--name=value` passes it (args mode): strings raw, the rest as Python
    literals (True, None, 0.0006), which `ast.literal_eval` reads back as the same type."""
    return value if isinstance(value, str) else repr(value)


def toml_value(value: Any) -> str:
    """A value as TOML writes it (`space draft`, `bilevel best --format toml`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def env_text(value: Any) -> str:
    """A value as an environment variable (env mode): strings raw, the rest as JSON (true, 3,
    null), which `json.loads` reads back."""
    return value if isinstance(value, str) else json.dumps(value)


# --- search space files ---------------------------------------------------------------------


def load_space(source: str | Path | dict[str, Any]) -> SearchSpace:
    """A SearchSpace from a TOML file's path or from the same tables as a dict."""
    if isinstance(source, dict):
        return space_from_tables(source, "space", "")
    path = Path(source)
    if not path.is_file():
        raise ScriptError(f"space file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"space file {path} does not parse: {exc}") from None
    return space_from_tables(data, str(path), text)


def space_from_tables(data: dict[str, Any], where: str, text: str) -> SearchSpace:
    """Build the space from {"params": {NAME: {...}}} (a TOML file's shape, or the bare mapping)
    or {"params": [{"name": NAME, ...}]} (the shape runs record: a list keeps its order through
    JSON with sorted keys, and the order is the researcher's preference).

    text is the file's source, used only to say on which line a bad table starts.
    """
    tables = data.get("params", data)
    stray = [k for k in data if k != "params"] if "params" in data else []
    if stray:
        raise ScriptError(f"{where}: unknown top-level key {stray[0]!r} (use [params.NAME] tables)")
    if isinstance(tables, list) and all(isinstance(t, dict) and "name" in t for t in tables):
        tables = {t["name"]: {k: v for k, v in t.items() if k != "name"} for t in tables}
    if not isinstance(tables, dict) or not tables:
        raise ScriptError(f"{where}: no parameters: add tables like [params.LR]")
    params = []
    for name, table in tables.items():
        at = f"{where}{_line_of(text, name)}: [params.{name}]"
        if not isinstance(table, dict):
            raise ScriptError(f"{at} must be a table with type, default and low/high or choices")
        unknown = [k for k in table if k not in PARAM_KEYS]
        if unknown:
            raise ScriptError(
                f"{at}: unknown key {unknown[0]!r} (allowed: {', '.join(PARAM_KEYS)})"
            )
        kind = table.get("type")
        if kind not in KINDS:
            raise ScriptError(f"{at}: type must be one of {', '.join(KINDS)}, got {kind!r}")
        if "default" not in table:
            raise ScriptError(f"{at}: needs a default (the baseline value)")
        fields = {k: v for k, v in table.items() if k != "type"}
        try:
            params.append(Param(name=name, kind=kind, **fields))
        except ValidationError as exc:
            msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ScriptError(f"{at}: {msg}") from None
    return SearchSpace(params=params)


def space_tables(space: SearchSpace) -> dict[str, Any]:
    """The space as plain JSON in the order-keeping list shape, so a run records it exactly."""
    return {
        "params": [
            {
                "name": p.name,
                **p.to_json(),
                **({"description": p.description} if p.description else {}),
            }
            for p in space.params
        ]
    }


def _line_of(text: str, name: str) -> str:
    match = re.search(rf"^[ \t]*\[\s*params\.\"?{re.escape(name)}\"?\s*\]", text, re.MULTILINE)
    return f" line {text.count(chr(10), 0, match.start()) + 1}" if match else ""


# --- top-level constants --------------------------------------------------------------------


def top_level_constants(tree: ast.Module) -> dict[str, list[ast.expr]]:
    """Value nodes of the module's top-level `NAME = value` (or `NAME: T = value`) statements."""
    found: dict[str, list[ast.expr]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            found.setdefault(target.id, []).append(value)
    return found


def parse_module(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise ScriptError(f"{filename} line {exc.lineno}: not valid Python: {exc.msg}") from None


def check_constants(source: str, names: list[str], filename: str) -> None:
    """Raise naming every parameter that has no top-level `NAME = value` in the file."""
    constants = top_level_constants(parse_module(source, filename))
    missing = [n for n in names if n not in constants]
    if missing:
        upper = [n for n in constants if n.isupper()] or list(constants)
        raise ScriptError(
            f"{filename}: no top-level assignment for {', '.join(missing)} "
            f"(--config-via constants rewrites lines like `NAME = value`; "
            f"the file has: {', '.join(upper) or 'none'})"
        )


def rewrite_constants(source: str, values: dict[str, Any], filename: str) -> str:
    """The source with each named top-level constant's value replaced by repr(value).

    Only the value's own characters change, so comments and layout on the line are kept. Every
    top-level assignment of a name is rewritten, so a later one cannot undo the change.
    """
    check_constants(source, list(values), filename)
    constants = top_level_constants(parse_module(source, filename))
    data = source.encode("utf-8")  # ast column offsets count UTF-8 bytes
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == 0x0A]
    spans = []
    for name, value in values.items():
        for node in constants[name]:
            begin = starts[node.lineno - 1] + node.col_offset
            end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
            spans.append((begin, end, repr(value).encode("utf-8")))
    for begin, end, text in sorted(spans, reverse=True):  # back to front keeps offsets valid
        data = data[:begin] + text + data[end:]
    return data.decode("utf-8")
