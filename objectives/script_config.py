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
import io
import json
import math
import operator
import re
import tokenize
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bilevel.objectives.space import Param, SearchSpace


class ScriptError(ValueError):
    """A misconfigured script objective; the message is one line that says what to fix."""


PARAM_KEYS = ("type", "default", "low", "high", "choices", "step", "pow2", "description")
KINDS = ("float", "logfloat", "int", "categorical")


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


# --- draft spaces ---------------------------------------------------------------------------

_FOLD: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
DRAFT_ORDER = ("type", "low", "high", "choices", "default", "description")
FRACTION_WORDS = ("FRAC", "RATIO", "DROPOUT", "BETA", "MOMENTUM", "PROB")


def constant_value(node: ast.expr) -> Any:
    """The value of a literal or constant arithmetic (e.g. `2**19`), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = constant_value(node.operand)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _FOLD:
        left, right = constant_value(node.left), constant_value(node.right)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
        if numbers and not (isinstance(node.op, ast.Pow) and abs(right) > 64):
            try:
                return _FOLD[type(node.op)](left, right)
            except (ArithmeticError, ValueError):
                return None
    return None


def draft_param(name: str, value: Any) -> dict[str, Any] | None:
    """A starting range for one constant, or None when its value is not a knob we can range."""
    if isinstance(value, bool):
        return {"type": "categorical", "choices": [value, not value], "default": value}
    if isinstance(value, str):
        return {"type": "categorical", "choices": [value], "default": value}
    if isinstance(value, int):
        if value > 0:
            return {"type": "int", "low": max(1, value // 4), "high": value * 4, "default": value}
        return {"type": "int", "low": value * 4, "high": 0 if value < 0 else 4, "default": value}
    if not isinstance(value, float) or not math.isfinite(value):
        return None
    if 0 <= value <= 1 and any(word in name for word in FRACTION_WORDS):
        return {"type": "float", "low": 0.0, "high": 1.0, "default": value}
    if value > 0:
        return {
            "type": "logfloat",
            "low": _round(value / 10),
            "high": _round(value * 10),
            "default": value,
        }
    if value == 0:
        return {"type": "float", "low": 0.0, "high": 1.0, "default": value}
    return {"type": "float", "low": _round(value * 2), "high": 0.0, "default": value}


def _round(x: float) -> float:
    return float(f"{x:.3g}")  # 3 significant digits: 0.0003, not 0.00030000000000000003


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def _comments(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def draft_space(path: str | Path) -> str:
    """A draft search-space TOML from the UPPER_CASE constants of a training script."""
    path = Path(path)
    if not path.is_file():
        raise ScriptError(f"{path} does not exist")
    source = path.read_text(encoding="utf-8")
    tree = parse_module(source, str(path))
    comments = _comments(source)
    lines = [
        f"# DRAFT search space inferred from {path.name} by `bilevel space draft`.",
        "# The ranges are guesses (ints x/4..x*4, positive floats x/10..x*10): edit them, delete",
        "# the constants that are not hyperparameters, and reorder (the researcher tries the first",
        "# ones first) before passing this file to `bilevel run --space`.",
    ]
    seen = set()
    for name, nodes in top_level_constants(tree).items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or name in seen:
            continue
        seen.add(name)
        param = draft_param(name, constant_value(nodes[0]))
        if param is None:
            continue
        note = comments.get(nodes[0].lineno) or comments.get(nodes[0].end_lineno or 0)
        if note:
            param["description"] = note
        seed = name == "SEED" or name.endswith("_SEED")
        prefix = "# " if seed else ""
        lines.append("")
        if seed:
            lines.append("# a seed is not a hyperparameter: bilevel passes one in $BILEVEL_SEED")
        lines.append(f"{prefix}[params.{name}]")
        lines += [f"{prefix}{key} = {_toml(param[key])}" for key in DRAFT_ORDER if key in param]
    if not seen:
        raise ScriptError(f"{path}: no top-level UPPER_CASE constants (like `LR = 3e-3`) found")
    return "\n".join(lines) + "\n"
