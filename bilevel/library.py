"""The mechanism library: every validated mechanism of every finished run, kept across runs.

One SQLite file (`$BILEVEL_LIBRARY`, default `~/.local/share/bilevel/library.sqlite`;
`BILEVEL_LIBRARY=off` turns it off). A mechanism is keyed by the hash of its source, with its
name, parent, diff and constants; each run that tried it adds a `uses` row: the objective, the
arm and seed, what became of it, and the improvement of its probation cycle. From these:
`bilevel mechanisms list|show|diff`, the best mechanism for a similar objective
(`bilevel run --from-library`), and a prior for the offline meta-researcher
(`--learn-from-library`), both written into the new run's config so it stays reproducible.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import sqlite3
import statistics
from pathlib import Path
from typing import Any

from bilevel.agents.meta_researcher import reward
from bilevel.store.ledger import Ledger

SCHEMA = """
CREATE TABLE IF NOT EXISTS mechanisms (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, parent TEXT,
    diff TEXT NOT NULL, params TEXT NOT NULL, origin TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uses (
    mechanism TEXT NOT NULL, run TEXT NOT NULL, run_mechanism TEXT NOT NULL,
    objective TEXT NOT NULL, metric TEXT NOT NULL, arm TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, improvement REAL, previous_improvement REAL, reward REAL,
    PRIMARY KEY (mechanism, run, run_mechanism)
);
"""
KEPT = ("validated", "installed", "probation", "adopted", "reverted", "declined")


def library_path() -> Path | None:
    """Where the library lives, or None when BILEVEL_LIBRARY=off."""
    value = os.environ.get("BILEVEL_LIBRARY", "")
    if value.lower() in ("off", "0", "none"):
        return None
    if value:
        return Path(value)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "bilevel" / "library.sqlite"


def source_id(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


class Library:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def record_run(self, ledger: Ledger, metric: str) -> int:
        """Add a finished run's validated mechanisms and their outcomes; returns how many."""
        config = ledger.get_meta("config") or {}
        run = str(ledger.path.parent)
        baseline = ledger.trial(0)
        if baseline is None:  # the run evaluated nothing
            return 0
        rows = ledger.mechanisms()
        by_run_id = {m["id"]: m for m in rows}
        n = 0
        for m in rows:
            if m["id"] == "default" or m["status"] not in KEPT:
                continue
            parent = by_run_id.get(m["parent"] or "")
            effect = m["effect"] or {}
            gain = effect.get("improvement")
            self.db.execute(
                "INSERT OR IGNORE INTO mechanisms VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    source_id(m["source"]),
                    m["name"],
                    m["source"],
                    source_id(parent["source"]) if parent and parent["id"] != "default" else None,
                    m["diff"],
                    json.dumps(m["params"] or {}, sort_keys=True),
                    m["origin"],
                ),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO uses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    source_id(m["source"]),
                    run,
                    m["id"],
                    config.get("objective", ""),
                    metric,
                    config.get("arm", ""),
                    config.get("seed", 0),
                    m["status"],
                    gain,
                    effect.get("previous_improvement"),
                    None if gain is None else reward(gain, baseline["metric"]),
                ),
            )
            n += 1
        return n

    def mechanisms(self, objective: str | None = None) -> list[dict[str, Any]]:
        """One row per mechanism: its uses, objectives, adoptions and mean reward."""
        where, params = ("WHERE u.objective = ?", (objective,)) if objective else ("", ())
        rows = self.db.execute(
            "SELECT m.id, m.name, m.parent, m.origin, COUNT(u.run) AS uses, "
            "GROUP_CONCAT(DISTINCT u.objective) AS objectives, "
            "SUM(u.status = 'adopted') AS adopted, AVG(u.reward) AS mean_reward "
            f"FROM mechanisms m JOIN uses u ON u.mechanism = m.id {where} "
            "GROUP BY m.id ORDER BY mean_reward DESC NULLS LAST, m.id",
            params,
        ).fetchall()
        return [dict(r) for r in rows]

    def get(self, prefix: str) -> dict[str, Any]:
        rows = self.db.execute(
            "SELECT * FROM mechanisms WHERE id LIKE ? ORDER BY id", (prefix + "%",)
        ).fetchall()
        if len(rows) != 1:
            what = "no" if not rows else f"{len(rows)}"
            raise ValueError(
                f"{what} library mechanisms match {prefix!r}: see `bilevel mechanisms list`"
            )
        out = dict(rows[0])
        uses = self.db.execute("SELECT * FROM uses WHERE mechanism = ? ORDER BY run", (out["id"],))
        out["uses"] = [dict(u) for u in uses.fetchall()]
        return out

    def diff(self, a: str, b: str) -> str:
        ma, mb = self.get(a), self.get(b)
        return "".join(
            difflib.unified_diff(
                ma["source"].splitlines(keepends=True),
                mb["source"].splitlines(keepends=True),
                f"{ma['id']} ({ma['name']})",
                f"{mb['id']} ({mb['name']})",
            )
        )

    def similar(self, objective: str, metric: str) -> tuple[str, str]:
        """(where clause, value): the objective's own uses if there are any, else the uses on
        the same metric."""
        own = self.db.execute("SELECT 1 FROM uses WHERE objective = ? LIMIT 1", (objective,))
        return ("objective = ?", objective) if own.fetchone() else ("metric = ?", metric)

    def best_for(self, objective: str, metric: str) -> dict[str, Any] | None:
        """The adopted-at-least-once mechanism with the best mean reward on a similar
        objective (the same one if it has any uses, else the same metric)."""
        clause, key = self.similar(objective, metric)
        row = self.db.execute(
            "SELECT m.id, m.name, m.source, AVG(u.reward) AS mean_reward FROM mechanisms m "
            f"JOIN uses u ON u.mechanism = m.id WHERE u.{clause} GROUP BY m.id "
            "HAVING SUM(u.status = 'adopted') > 0 AND AVG(u.reward) IS NOT NULL "
            "ORDER BY mean_reward DESC, m.id LIMIT 1",
            (key,),
        ).fetchone()
        return dict(row) if row else None

    def prior_for(self, objective: str, metric: str) -> dict[str, Any]:
        """Starting statistics for the library meta-researcher, per mechanism name: one pull
        worth the mean reward seen on similar objectives, and the best constants found."""
        clause, key = self.similar(objective, metric)
        rows = self.db.execute(
            "SELECT m.name, m.params, u.reward FROM mechanisms m JOIN uses u "
            f"ON u.mechanism = m.id WHERE u.{clause} AND u.reward IS NOT NULL",
            (key,),
        ).fetchall()
        by_name: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for r in rows:
            by_name.setdefault(r["name"], []).append((r["reward"], json.loads(r["params"])))
        stats = {}
        for name, seen in sorted(by_name.items()):
            best_reward, best = max(seen, key=lambda x: x[0])
            stats[name] = {
                "n": 1,
                "reward": statistics.fmean(r for r, _ in seen),
                "best": best or None,
                "best_reward": best_reward,
            }
        return stats


def open_library() -> Library | None:
    path = library_path()
    return None if path is None else Library(path)
