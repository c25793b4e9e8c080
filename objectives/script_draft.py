"""`bilevel space draft`: a first search space from a training script's top-level constants.

Each constant becomes a table with a guessed range; constants that are not knobs of the model
(reporting, evaluation, budget and system settings, values with nothing to choose between) stay
in the draft as commented-out tables that say why, so nothing is dropped without a word.
"""

from __future__ import annotations

import ast
import io
import math
import operator
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bilevel.objectives.script_config import (
    ScriptError,
    parse_module,
    toml_value,
    top_level_constants,
)

_FOLD: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
DRAFT_ORDER = ("type", "low", "high", "step", "scale", "choices", "literal", "default")
# Words of a name (split at _ and digits: BETA1 -> BETA) that say what kind of constant it is.
FRACTION_WORDS = {"FRAC", "FRACTION", "RATIO", "DROPOUT", "BETA", "MOMENTUM", "PROB", "SUBSAMPLE"}
DOUBLING_WORDS = {"BATCH", "TOKENS", "EMBD", "EMBED", "EMB", "DIM", "WIDTH", "HIDDEN", "CHANNELS"}
DOUBLING_PAIRS = ("BLOCK_SIZE", "SEQ_LEN", "CONTEXT_LEN", "CONTEXT_LENGTH")
COUNT_WORDS = {"FOLD", "FOLDS", "SPLIT", "SPLITS", "CV"}  # fewer than 2 is not a count of these
LEFT_OUT = (
    (
        {"EVAL", "VAL", "VALID", "VALIDATION", "TEST", "METRIC", "BUDGET"},
        "sets how the metric is measured, not the model: searching it would game the metric",
    ),
    (
        {
            "PEAK",
            "FLOPS",
            "MFU",
            "LOG",
            "PRINT",
            "VERBOSE",
            "DEBUG",
            "WANDB",
            "SAVE",
            "CKPT",
            "CHECKPOINT",
            "DIR",
            "PATH",
            "FILE",
            "PROJECT",
            "SEED",
        },  # fmt: skip
        "looks like reporting or I/O, not a hyperparameter",
    ),
    (
        {"DEVICE", "DTYPE", "COMPILE", "BACKEND", "WORKERS", "THREADS"},
        "a system setting: it changes speed or memory, not what is learned",
    ),
)
BUDGET_NAME = re.compile(
    r"^(?:(?:MAX|NUM|TOTAL|N)_?)?(?:TRAIN_?)?(?:ITERS?|STEPS|EPOCHS|ITERATIONS)$|TIME_BUDGET"
)  # STEPS, MAX_ITERS, NUM_TRAIN_EPOCHS; not WARMUP_STEPS or GRADIENT_ACCUMULATION_STEPS
REPORT_CALLS = {"print", "log", "info", "debug", "warning", "write", "add_scalar"}
# A printed value labelled with one of these is a result (the metric), not a report.
RESULT_WORDS = ("loss", "bpb", "acc", "score", "error", "perplexity", "ppl", "metric")


def constant_value(node: ast.expr) -> Any:
    """The value of a literal or constant arithmetic (`2**19`); tuples and None as a
    ("literal", source) pair; else None."""
    if isinstance(node, ast.Constant) and node.value is None:
        return ("literal", "None")
    if isinstance(node, ast.Tuple):
        try:
            return ("literal", repr(ast.literal_eval(node)))
        except (ValueError, SyntaxError):
            return None
    return _number_or_text(node)


def _number_or_text(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _number_or_text(node.operand)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _FOLD:
        left, right = _number_or_text(node.left), _number_or_text(node.right)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
        if numbers and not (isinstance(node.op, ast.Pow) and abs(right) > 64):
            try:
                return _FOLD[type(node.op)](left, right)
            except (ArithmeticError, ValueError):
                return None
    return None


def words(name: str) -> set[str]:
    return set(re.findall(r"[A-Z]+", name.upper()))


def draft_param(name: str, value: Any) -> tuple[dict[str, Any], str]:
    """A starting table for one constant's value and a note on the guess ("" when plain)."""
    upper, kind = name.upper(), words(name)
    if isinstance(value, tuple):  # ("literal", source): None or a tuple
        table = {"type": "categorical", "choices": [value[1]], "literal": True, "default": value[1]}
        return table, "nothing to choose yet: add alternatives (Python literals) to search it"
    if isinstance(value, bool):
        return {"type": "categorical", "choices": [value, not value], "default": value}, ""
    if isinstance(value, str):
        table = {"type": "categorical", "choices": [value], "default": value}
        return table, "nothing to choose yet: add the alternatives to search it"
    if isinstance(value, int):
        doubling = kind & DOUBLING_WORDS or any(p in upper for p in DOUBLING_PAIRS)
        if value >= 2 and doubling:
            low = value
            for _ in range(2):  # the grid's point nearest value / 4
                low = low // 2 if low % 2 == 0 else low
            table = {"type": "int", "low": low, "high": value * 4, "scale": "log2"}
            return {**table, "default": value}, (
                "doubling grid (default x 2^k): keeps the multiples a script may assert"
            )
        if value >= 15 and (value + 1) & value == 0:  # 2^k - 1: 255, 1023, 65535
            low = max(1, value // 4)
            return {"type": "int", "low": low, "high": value, "default": value}, (
                f"check this: {value} = 2^{value.bit_length()} - 1 is often a library's maximum"
            )
        if value > 0:
            counts = bool(kind & COUNT_WORDS)
            low = max(2 if counts else 1, value // 4)
            note = "check this: a count of folds or splits is at least 2" if counts else ""
            return {"type": "int", "low": min(low, value), "high": value * 4, "default": value}, (
                note
            )
        high = 0 if value < 0 else 4
        return {"type": "int", "low": value * 4, "high": high, "default": value}, ""
    if not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(value)
    if 0 <= value <= 1 and kind & FRACTION_WORDS:
        low, high = _round(value / 2), _round(value + (1 - value) / 2)
        return {"type": "float", "low": low, "high": high, "default": value}, (
            "check this: a fraction, kept inside [0, 1]"
        )
    if value > 0:
        low, high = _round(value / 10), _round(value * 10)
        return {"type": "logfloat", "low": low, "high": high, "default": value}, ""
    if value == 0:
        return {"type": "float", "low": 0.0, "high": 1.0, "default": value}, "check this: 0..1"
    return {"type": "float", "low": _round(value * 2), "high": 0.0, "default": value}, ""


@dataclass
class Reads:
    """What the draft asks of a module, indexed once: each node's parent, every read of each
    name, and the names bound again inside a module-level loop (functions and classes are not
    looked into)."""

    parents: dict[ast.AST, ast.AST]
    loads: dict[str, list[ast.Name]]
    looped: set[str]

    @classmethod
    def of(cls, tree: ast.Module) -> Reads:
        parents: dict[ast.AST, ast.AST] = {}
        loads: dict[str, list[ast.Name]] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                loads.setdefault(node.id, []).append(node)
        looped: set[str] = set()
        todo: list[tuple[ast.AST, bool]] = [(node, False) for node in tree.body]
        while todo:
            node, in_loop = todo.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                continue
            if in_loop and isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                looped.add(node.id)
            looping = in_loop or isinstance(node, ast.For | ast.While | ast.AsyncFor)
            todo.extend((child, looping) for child in ast.iter_child_nodes(node))
        return cls(parents, loads, looped)


def why_left_out(name: str, reads: Reads, metric: str) -> str:
    """Why a constant is not a knob of the model, or "" when it looks like one."""
    if name.upper() == "SEED" or name.upper().endswith("_SEED"):
        return "a seed is not a hyperparameter: bilevel passes one in $BILEVEL_SEED"
    if BUDGET_NAME.search(name.upper()):
        return "sets the training budget: searching it trades compute for the metric"
    for vocabulary, reason in LEFT_OUT:
        if words(name) & vocabulary:
            return reason
    # Bound again inside a module-level loop (`iter_num += 1`, `best_val_loss = loss`): module
    # state. A one-off adjustment under an `if` (`steps //= world_size`) keeps it a setting.
    if name in reads.looped:
        return "assigned again later in the script (state such as a step counter), not a setting"
    if reporting_only(reads, name, metric):
        return "only reaches printed or logged values: it does not change the training"
    return ""


def reporting_only(reads: Reads, name: str, metric: str) -> bool:
    """Every read of name flows (through at most a few assignments) only into print/log calls,
    and not into the metric (a variable named like it is what the script reports on purpose)."""

    def only_reported(target: str, seen: frozenset[str]) -> bool:
        uses = reads.loads.get(target, [])
        return bool(uses) and all(reported(use, seen | {target}) for use in uses)

    def reported(node: ast.AST, seen: frozenset[str]) -> bool:
        label = ""  # the text printed just before the value: "val loss " says it is a result
        while (parent := reads.parents.get(node)) is not None:
            if isinstance(parent, ast.JoinedStr | ast.Call):
                label = label or _label_before(parent, node)
            if isinstance(parent, ast.Call) and _call_name(parent.func) in REPORT_CALLS:
                return not any(word in label.lower() for word in (*RESULT_WORDS, metric.lower()))
            if isinstance(parent, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                if len(names) != len(targets) or len(seen) > 4 or metric in names:
                    return False
                return all(n in seen or only_reported(n, seen) for n in names)
            if isinstance(parent, ast.stmt):
                return False
            node = parent
        return False

    return only_reported(name, frozenset())


def _label_before(parent: ast.JoinedStr | ast.Call, child: ast.AST) -> str:
    """The string literal right before child among an f-string's parts or a call's args."""
    parts = parent.values if isinstance(parent, ast.JoinedStr) else parent.args
    if child not in parts:
        return ""
    i = parts.index(child)  # type: ignore[arg-type]
    before = parts[i - 1] if i > 0 else None
    if isinstance(before, ast.Constant) and isinstance(before.value, str):
        return before.value
    return ""


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _round(x: float) -> float:
    return float(f"{x:.3g}")  # 3 significant digits: 0.0003, not 0.00030000000000000003


def _comments(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


HEADER = """\
# DRAFT search space for {file}, written by `bilevel space draft`. Review it before
# `bilevel run --space`:
#   - the ranges are guesses (ints x/4..x*4, positive floats x/10..x*10, fractions inside
#     [0, 1]); a "check this" note marks a guessed domain: make sure the script accepts it;
#   - delete what is not a hyperparameter, and put the most promising first (the researcher
#     tries parameters in this order);
#   - commented-out tables were left out on purpose (the note says why): uncomment to search."""


def draft_space(
    path: str | Path, all_constants: bool = False, match: str | None = None, metric: str = "val_bpb"
) -> str:
    """A draft search-space TOML from a script's constants: UPPER_CASE ones by default, every
    module-level name with all_constants, or the names that fully match the regex match.
    metric: the name the script reports its score under (what reaches it is a knob)."""
    path = Path(path)
    if not path.is_file():
        raise ScriptError(f"{path} does not exist")
    try:
        pattern = re.compile(match) if match else None
    except re.error as exc:
        raise ScriptError(f"--match {match!r} is not a regex: {exc}") from None
    source = path.read_text(encoding="utf-8")
    tree = parse_module(source, str(path))
    comments = _comments(source)
    constants = top_level_constants(tree)
    reads = Reads.of(tree)

    def wanted(name: str) -> bool:
        if pattern is not None:
            return pattern.fullmatch(name) is not None
        if all_constants:
            return not name.startswith("_")
        return re.fullmatch(r"[A-Z][A-Z0-9_]*", name) is not None

    chosen = [name for name in constants if wanted(name)]
    if not chosen:
        lower = [n for n in constants if not n.startswith("_")][:6]
        hint = (
            f" (it has {', '.join(lower)}: pass --all-constants, or --match 'NAME|NAME')"
            if lower and pattern is None
            else ""
        )
        what = f"matching {match!r}" if pattern else "UPPER_CASE" if not all_constants else ""
        raise ScriptError(f"{path}: no top-level {what} constants (like `LR = 3e-3`) found{hint}")
    lines, skipped = [HEADER.format(file=path.name)], []
    for name in chosen:
        nodes = constants[name]
        try:
            table, note = draft_param(name, constant_value(nodes[0]))
        except ValueError:
            skipped.append(name)
            continue
        reason = why_left_out(name, reads, metric)
        described = comments.get(nodes[0].lineno) or comments.get(nodes[0].end_lineno or 0)
        if described:
            table["description"] = described
        cannot_move = table.get("choices") is not None and len(table["choices"]) < 2
        prefix = "# " if reason or cannot_move else ""
        lines.append("")
        for text in (reason, note):
            if text:
                lines.append(f"# {text}")
        lines.append(f"{prefix}[params.{name}]")
        keys = [*DRAFT_ORDER, "description"]
        lines += [f"{prefix}{key} = {toml_value(table[key])}" for key in keys if key in table]
    if skipped:
        lines += ["", f"# not drafted (not a literal number, string, bool, tuple or None): "
                      f"{', '.join(skipped)}"]  # fmt: skip
    return "\n".join(lines) + "\n"
