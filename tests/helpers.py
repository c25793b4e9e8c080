"""Shared test helpers: run the real CLI, read ledgers for comparison."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bilevel.store.ledger import TIMING_COLUMNS

BILEVEL = [sys.executable, "-m", "bilevel.cli"]
TABLES = ("trials", "notes", "mechanisms", "cycles", "hook_calls")


def bilevel(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [*BILEVEL, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"bilevel {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def show_json(run_dir: Path) -> dict[str, Any]:
    return json.loads(bilevel("show", str(run_dir), "--json").stdout)


def ledger_rows(run_dir: Path) -> dict[str, list[tuple]]:
    """Every ledger table without its timing columns, in key order."""
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    out = {}
    for table in TABLES:
        cols = [
            r[1] for r in db.execute(f"PRAGMA table_info({table})") if r[1] not in TIMING_COLUMNS
        ]
        out[table] = db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1").fetchall()
    db.close()
    return out


def ledger_query(run_dir: Path, sql: str) -> list[dict[str, Any]]:
    """Rows of one query on a run's ledger, as dicts."""
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute(sql)]
    db.close()
    return rows


def trials(run_dir: Path) -> list[dict[str, Any]]:
    """Every trial row of a run's ledger, in trial order."""
    return ledger_query(run_dir, "SELECT * FROM trials ORDER BY trial")


def trial_ids(run_dir: Path) -> list[int]:
    """The trial ids a run's ledger holds so far; [] while another process is still creating it
    (the file can exist before its tables do)."""
    if not (run_dir / "ledger.sqlite").exists():
        return []
    try:
        return [
            t["trial"] for t in ledger_query(run_dir, "SELECT trial FROM trials ORDER BY trial")
        ]
    except sqlite3.OperationalError:
        return []


def trials_done(run_dir: Path) -> int:
    """Trials in a run's ledger so far (0 while it does not exist yet), read without locking
    out the run that writes it."""
    try:
        db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def plant_escape_targets(tmp_path: Path, proj: Path, monkeypatch: Any) -> tuple[Any, str]:
    """What tests/fixtures/script/escape.py tries to reach, planted: a secret in a fresh $HOME,
    a loopback listener, files to write outside the trial, an API key in the environment.
    Returns the listener (nothing may connect) and the mark of the process it leaves behind."""
    import socket
    import uuid

    home = tmp_path / "home"
    home.mkdir()
    (home / ".secret").write_text("hunter2\n")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    token = uuid.uuid4().hex
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ORIGINAL", str(proj / "escaped.txt"))
    monkeypatch.setenv("OUTSIDE", str(tmp_path / "outside.txt"))
    monkeypatch.setenv("PORT", str(listener.getsockname()[1]))
    monkeypatch.setenv("HOME_FILE", str(home / ".secret"))
    monkeypatch.setenv("MARK", token)
    monkeypatch.setenv("SOME_API_KEY", "sk-test")
    return listener, token
