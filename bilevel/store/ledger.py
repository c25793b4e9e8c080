"""The append-only ledger: every trial, mechanism, cycle and hook call of a run, in SQLite.

Rows are keyed deterministically (trial id, mechanism id, cycle, call key) and written with
INSERT OR IGNORE, so a node that LangGraph re-executes after a crash neither duplicates nor
changes what was already recorded. Timing columns are the only ones that vary between runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

LEDGER_FILE = "ledger.sqlite"
MAX_NOTE_BYTES = 4096  # a note's detail past this is stored as a truncated preview
TIMING_COLUMNS = {"seconds", "ms", "created", "started", "finished", "worker"}
TRIAL_JSON = ("config", "changes", "base", "extra", "patch")

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    key TEXT PRIMARY KEY, value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    trial INTEGER PRIMARY KEY, trace INTEGER NOT NULL, cycle INTEGER NOT NULL,
    iteration INTEGER NOT NULL, config TEXT NOT NULL, changes TEXT NOT NULL, base TEXT NOT NULL,
    source TEXT NOT NULL, description TEXT NOT NULL, mechanism TEXT NOT NULL,
    metric REAL, status TEXT NOT NULL, seconds REAL, extra TEXT, log_tail TEXT,
    accepted INTEGER, incumbent_metric REAL, started REAL, finished REAL, worker TEXT,
    code TEXT, patch TEXT, hypothesis TEXT
);
CREATE TABLE IF NOT EXISTS notes (
    key TEXT PRIMARY KEY, cycle INTEGER NOT NULL, iteration INTEGER NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mechanisms (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, origin TEXT NOT NULL, parent TEXT,
    cycle INTEGER NOT NULL, source TEXT NOT NULL, diff TEXT NOT NULL, params TEXT NOT NULL,
    validation TEXT, status TEXT NOT NULL, effect TEXT
);
CREATE TABLE IF NOT EXISTS cycles (
    cycle INTEGER PRIMARY KEY, trace INTEGER NOT NULL, mechanism TEXT NOT NULL,
    inner_params TEXT NOT NULL, trials INTEGER NOT NULL, accepted INTEGER NOT NULL,
    start_metric REAL, end_metric REAL, improvement REAL NOT NULL, stats TEXT NOT NULL,
    decision TEXT
);
CREATE TABLE IF NOT EXISTS llm_calls (
    key TEXT PRIMARY KEY, cycle INTEGER NOT NULL, iteration INTEGER NOT NULL,
    node TEXT NOT NULL, role TEXT NOT NULL, purpose TEXT NOT NULL, model TEXT NOT NULL,
    outcome TEXT NOT NULL, input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0, cost REAL NOT NULL DEFAULT 0, error TEXT, ms REAL
);
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hook_calls (
    key TEXT PRIMARY KEY, mechanism TEXT NOT NULL, hook TEXT NOT NULL, cycle INTEGER NOT NULL,
    iteration INTEGER NOT NULL, outcome TEXT NOT NULL, changed INTEGER NOT NULL,
    error TEXT, ms REAL
);
"""


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class LedgerError(ValueError):
    """The ledger file cannot be read as a ledger (corrupt, truncated, not SQLite, empty)."""


def ledger_error(path: Path, exc: Exception) -> LedgerError:
    reason = str(exc) or type(exc).__name__
    return LedgerError(
        f"{path} is not a readable ledger ({reason}): restore the file from a copy, "
        "or start a new run in another --run-dir"
    )


class Ledger:
    """One run's ledger. Thread-safe; writes are committed immediately (nothing lost on kill).

    readonly: open without creating, migrating or writing anything (show, report, bench-report);
    a file that is not a ledger raises LedgerError, in either mode, before anything else."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            if readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(
                    uri, uri=True, check_same_thread=False, isolation_level=None
                )
                self._db.execute("SELECT key FROM run LIMIT 1").fetchall()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA quick_check(1)").fetchall()
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
                self._add_missing_columns()
        except sqlite3.DatabaseError as exc:
            if "disk is full" in str(exc) or "disk I/O" in str(exc):
                raise
            raise ledger_error(self.path, exc) from None
        self._db.row_factory = sqlite3.Row

    def _add_missing_columns(self) -> None:
        """Ledgers written before the slot timing (or source version) columns existed gain them
        (empty). code: the blob of the trial's edited source files (None: the user's own);
        patch: what the researcher's patch did (store/sources.py); hypothesis: why the
        researcher proposed the trial ("" where it gave none)."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(trials)")}
        added = (("started", "REAL"), ("finished", "REAL"), ("worker", "TEXT"), ("code", "TEXT"),
                 ("patch", "TEXT"), ("hypothesis", "TEXT"))  # fmt: skip
        for column, kind in added:
            if column not in have:
                self._db.execute(f"ALTER TABLE trials ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            if not self.readonly:
                # Back to a rollback journal: a reader of a closed run (show, report) then
                # needs no -wal/-shm files, so it creates nothing in the run directory.
                try:
                    self._db.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.Error:
                    pass  # another process has it open: it stays WAL, which is fine
            self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        params = tuple(storable(p) for p in params)
        with self._lock:
            self._db.execute(sql, params)

    def _insert(self, table: str, row: dict[str, Any], replace: bool = False) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        self._exec(f"{verb} INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    # --- run identity ------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        rows = self.query("SELECT value FROM run WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: Any) -> None:
        self._insert("run", {"key": key, "value": dumps(value)}, replace=True)

    # --- trials ------------------------------------------------------------------------------

    def trial(self, trial_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM trials WHERE trial = ?", (trial_id,))
        return decode_trial(rows[0]) if rows else None

    def add_trial(self, row: dict[str, Any]) -> None:
        self._insert("trials", encode(row, TRIAL_JSON))

    def set_accepted(self, trial_id: int, accepted: bool, incumbent_metric: float | None) -> None:
        self._exec(
            "UPDATE trials SET accepted = ?, incumbent_metric = ? WHERE trial = ?",
            (int(accepted), incumbent_metric, trial_id),
        )

    def trials(
        self,
        trace: int | None = None,
        limit: int | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> list[dict[str, Any]]:
        """Trials oldest first; only those of trace, with ids in (after, before), the last
        limit."""
        clauses, params = ["1 = 1"], []
        if after is not None:
            clauses.append("trial > ?")
            params.append(after)
        if trace is not None:
            clauses.append("trace = ?")
            params.append(trace)
        if before is not None:
            clauses.append("trial < ?")
            params.append(before)
        sql = f"SELECT * FROM trials WHERE {' AND '.join(clauses)} ORDER BY trial DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [decode_trial(r) for r in reversed(self.query(sql, tuple(params)))]

    # --- notes, mechanisms, cycles, hook calls -------------------------------------------------

    def add_note(self, key: str, cycle: int, iteration: int, kind: str, detail: Any) -> None:
        text = dumps(detail)
        if len(text) > MAX_NOTE_BYTES:  # untrusted content (a candidate's keys) stays bounded
            text = dumps({"truncated": len(text), "preview": text[:MAX_NOTE_BYTES]})
        self._insert(
            "notes",
            {"key": key, "cycle": cycle, "iteration": iteration, "kind": kind, "detail": text},
        )

    def put_blob(self, data: str) -> str:
        """Store text by its content hash (once); the hash. Graph state keeps the hash, so a
        checkpoint stays small however large a mechanism's memory grows."""
        digest = blob_hash(data)
        self._exec("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", (digest, data))
        return digest

    def blob(self, digest: str) -> str:
        rows = self.query("SELECT data FROM blobs WHERE hash = ?", (digest,))
        if not rows:
            raise LedgerError(f"{self.path}: blob {digest} is missing")
        return rows[0]["data"]

    def mechanism_source(self, mech_id: str) -> str:
        rows = self.query("SELECT source FROM mechanisms WHERE id = ?", (mech_id,))
        if not rows:
            raise LedgerError(f"{self.path}: mechanism {mech_id} is not recorded")
        return rows[0]["source"]

    def add_mechanism(self, row: dict[str, Any]) -> None:
        self._insert("mechanisms", encode(row, ("params", "validation", "effect")))

    def set_mechanism_status(self, mech_id: str, status: str, effect: Any = None) -> None:
        self._exec(
            "UPDATE mechanisms SET status = ?, effect = ? WHERE id = ?",
            (status, dumps(effect) if effect is not None else None, mech_id),
        )

    def set_validation(self, mech_id: str, status: str, validation: Any) -> None:
        self._exec(
            "UPDATE mechanisms SET status = ?, validation = ? WHERE id = ?",
            (status, dumps(validation), mech_id),
        )

    def mechanisms(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM mechanisms ORDER BY cycle, id")
        return [decode(r, ("params", "validation", "effect")) for r in rows]

    def add_cycle(self, row: dict[str, Any]) -> None:
        self._insert("cycles", encode(row, ("inner_params", "stats")))

    def set_cycle_decision(self, cycle: int, decision: str) -> None:
        self._exec("UPDATE cycles SET decision = ? WHERE cycle = ?", (decision, cycle))

    def cycles(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM cycles ORDER BY cycle")
        return [decode(r, ("inner_params", "stats")) for r in rows]

    def add_hook_call(self, row: dict[str, Any]) -> None:
        self._insert("hook_calls", row)

    def add_llm_call(self, row: dict[str, Any]) -> None:
        self._insert("llm_calls", row)

    def llm_spent(self) -> tuple[int, float]:
        """(tokens, USD) used by every LLM call of the run so far."""
        row = self.query(
            "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) AS t, "
            "COALESCE(SUM(cost), 0) AS c FROM llm_calls"
        )[0]
        return int(row["t"]), float(row["c"])

    def llm_usage(self) -> dict[str, dict[str, Any]]:
        """{node: {calls, failed, input_tokens, output_tokens, cost}}."""
        rows = self.query(
            "SELECT node, COUNT(*) AS calls, SUM(outcome != 'ok') AS failed, "
            "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
            "SUM(cost) AS cost FROM llm_calls GROUP BY node ORDER BY node"
        )
        return {r.pop("node"): r for r in rows}

    def hook_counts(self) -> dict[str, dict[str, int]]:
        """{mechanism: {hook: calls}}."""
        out: dict[str, dict[str, int]] = {}
        for r in self.query(
            "SELECT mechanism, hook, COUNT(*) AS n FROM hook_calls GROUP BY mechanism, hook"
        ):
            out.setdefault(r["mechanism"], {})[r["hook"]] = r["n"]
        return out


def blob_hash(data: str) -> str:
    return hashlib.blake2b(data.encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()


def storable(value: Any) -> Any:
    """Text SQLite can store: untrusted strings (error messages of mechanism code) may hold lone
    surrogates, which would make the insert fail."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def encode(row: dict[str, Any], json_cols: tuple[str, ...]) -> dict[str, Any]:
    return {k: dumps(v) if k in json_cols and v is not None else v for k, v in row.items()}


def decode(row: dict[str, Any], json_cols: tuple[str, ...]) -> dict[str, Any]:
    return {k: json.loads(v) if k in json_cols and v is not None else v for k, v in row.items()}


def decode_trial(row: dict[str, Any]) -> dict[str, Any]:
    out = decode(row, TRIAL_JSON)
    if out["accepted"] is not None:
        out["accepted"] = bool(out["accepted"])
    return out


class AsyncLedger:
    """The ledger for graph nodes: every call runs in a worker thread, off the event loop.

    (`langgraph dev` rejects blocking I/O on the loop; SQLite has no async driver we need.)
    """

    def __init__(self, ledger: Ledger) -> None:
        self.sync = ledger

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


class NotARunDir(ValueError):
    pass


def open_ledger(run_dir: str | Path) -> Ledger:
    path = Path(run_dir) / LEDGER_FILE
    if not path.is_file():
        raise NotARunDir(
            f"{run_dir} is not a run directory (no {LEDGER_FILE}); "
            "start one with `bilevel run --run-dir DIR`"
        )
    return Ledger(path, readonly=True)
