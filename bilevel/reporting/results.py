"""A run's results as data: the best trial's whole config, every trial as a flat row, and the
runs under a directory with their state. `bilevel best`, `apply`, `export` and `list` print
these; `bilevel show`, report.md and best.json carry the best config.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
from pathlib import Path
from typing import Any

from bilevel.execution.evaluator import eval_seed
from bilevel.objectives.script_config import arg_text, env_text, toml_value
from bilevel.store.ledger import LEDGER_FILE, Ledger
from bilevel.store.rundir import LOCK_FILE

BEST_FILE = "best.json"
FIXED_COLUMNS = (
    "trial", "cycle", "iteration", "trace", "source", "mechanism", "status", "metric",
    "accepted", "incumbent_metric", "seconds", "description", "hypothesis",
)  # fmt: skip


def best_trial(trials: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The trial with the best metric (the earliest of equals): with an accepting mechanism
    (annealing) the final incumbent need not be it."""
    ok = [t for t in trials if t["status"] == "ok" and t["metric"] is not None]
    if not ok:
        return None
    sign = 1 if direction == "minimize" else -1
    return min(ok, key=lambda t: (sign * t["metric"], t["trial"]))


def best_of(trials: list[dict[str, Any]], config: dict[str, Any], direction: str) -> Any:
    """The best trial as a record: its whole config, what differs from the baseline's, the seed
    it was evaluated with, where it came from. None when no trial succeeded."""
    best = best_trial(trials, direction)
    if best is None:
        return None
    baseline = trials[0]["config"] if trials else {}
    per_trial = config.get("seed_per_trial", False) or best["source"] == "baseline-repeat"
    return {
        "trial": best["trial"],
        "metric": best["metric"],
        "seed": eval_seed(config.get("seed", 0), best["trial"], per_trial),
        "config": best["config"],
        "changed": {k: v for k, v in best["config"].items() if baseline.get(k) != v},
        "cycle": best["cycle"],
        "source": best["source"],
        "mechanism": best["mechanism"],
        "description": best["description"],
        # a --code-edits run's best trial ran edited source: its version (store/sources.py)
        **({"code": best["code"]} if best.get("code") else {}),
    }


def best_record(summary: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """What best.json holds: the best trial, its run and objective, and for a script objective
    how to run it (command, config mode, workdir, train file)."""
    script = {k: options[k] for k in ("command", "config_via", "workdir", "file") if k in options}
    return {
        "run_dir": summary["run_dir"],
        "objective": summary["objective"],
        "metric_name": summary["metric_name"],
        "direction": summary["direction"],
        **summary["best"],
        **({"script": script} if script else {}),
    }


def write_best(run_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> Path | None:
    """best.json in the run directory (replaced atomically); None when no trial succeeded."""
    if summary.get("best") is None:
        return None
    path = run_dir / BEST_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(best_record(summary, options), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def config_as(config: dict[str, Any], fmt: str, env_prefix: str = "") -> str:
    """A config as TOML lines, shell environment assignments or `--name=value` arguments."""
    if fmt == "toml":
        return "".join(f"{k} = {toml_value(v)}\n" for k, v in config.items())
    if fmt == "env":
        return "".join(f"{env_prefix}{k.upper()}={shlex.quote(env_text(v))}\n"
                       for k, v in config.items())  # fmt: skip
    if fmt == "args":
        return " ".join(shlex.quote(f"--{k}={arg_text(v)}") for k, v in config.items()) + "\n"
    raise ValueError(f"unknown format {fmt!r}: choose json, toml, env or args")


# --- export -------------------------------------------------------------------------------


def trial_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Every trial as one flat row: the fixed columns, `config.NAME` per parameter (the whole
    config, not only the changes), `extra.KEY` per number the trial reported."""
    rows = []
    for t in ledger.trials():
        row = {k: t.get(k) for k in FIXED_COLUMNS}
        row["accepted"] = None if t.get("accepted") is None else bool(t["accepted"])
        row.update({f"config.{k}": v for k, v in t["config"].items()})
        for key, value in flatten(t.get("extra") or {}).items():
            row[f"extra.{key}"] = value
        rows.append(row)
    return rows


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[prefix + key] = " | ".join(map(str, value))
        else:
            out[prefix + key] = value
    return out


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """Fixed columns, then config and extra columns in the order they first appear."""
    seen: dict[str, None] = dict.fromkeys(FIXED_COLUMNS)
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


# --- list -----------------------------------------------------------------------------------


def find_runs(root: Path, depth: int = 3) -> list[Path]:
    """Run directories (holding a ledger) under root, down to depth levels, sorted."""
    found: list[Path] = []
    if (root / LEDGER_FILE).is_file():
        return [root]
    if depth == 0 or not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            found += find_runs(child, depth - 1)
    return found


def run_state(run_dir: Path, summary: dict[str, Any]) -> str:
    """running (a process holds its lock), finished, failed (it stopped on an error, or no
    trial succeeded), or interrupted (stopped part-way: `bilevel resume` continues it)."""
    if locked(run_dir / LOCK_FILE):
        return "running"
    if summary.get("failed") or summary.get("problems"):
        return "failed"
    return "finished" if summary.get("finished") else "interrupted"


def locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def run_identity(run_dir: Path, s: dict[str, Any]) -> dict[str, Any]:
    """Which run this is and how far it got, from its summary s (`list` and bench rows)."""
    return {
        "run_dir": str(run_dir),
        "objective": s["objective"],
        "arm": s["arm"],
        "seed": s["seed"],
        "trials": s["trials"],
        "budget": s["budget"],
        "best": s["best_metric"],
    }


def list_row(run_dir: Path, s: dict[str, Any]) -> dict[str, Any]:
    """One line of `bilevel list`."""
    return {**run_identity(run_dir, s), "state": run_state(run_dir, s)}
