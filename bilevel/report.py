"""Run summaries from the ledger: what `bilevel show` prints and `--json` returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bilevel.graphs.assessment import improvement
from bilevel.ledger import LEDGER_FILE, Ledger


class NotARunDir(ValueError):
    pass


def open_ledger(run_dir: str | Path) -> Ledger:
    path = Path(run_dir) / LEDGER_FILE
    if not path.is_file():
        raise NotARunDir(
            f"{run_dir} is not a run directory (no {LEDGER_FILE}); "
            "start one with `bilevel run --run-dir DIR`"
        )
    return Ledger(path)


def summarize(run_dir: str | Path) -> dict[str, Any]:
    ledger = open_ledger(run_dir)
    try:
        return summary_of(ledger)
    finally:
        ledger.close()


def summary_of(ledger: Ledger) -> dict[str, Any]:
    from bilevel.objectives import make_objective

    config = ledger.get_meta("config") or {}
    direction = make_objective(config["objective"], **config.get("objective_options", {})).direction
    trials = ledger.trials()
    ok = [t["metric"] for t in trials if t["status"] == "ok" and t["metric"] is not None]
    best = (min(ok) if direction == "minimize" else max(ok)) if ok else None
    baseline = trials[0]["metric"] if trials else None
    counts = ledger.hook_counts()
    cycles = ledger.cycles()
    tokens, cost = ledger.llm_spent()
    return {
        "run_dir": str(ledger.path.parent),
        "objective": config.get("objective"),
        "arm": config.get("arm"),
        "seed": config.get("seed"),
        "researcher": config.get("researcher"),
        "meta": config.get("meta"),
        "labels": ledger.get_meta("labels") or {},
        "direction": direction,
        "trials": len(trials),
        "budget": 1 + config.get("iterations", 0) * config.get("slots", 1),
        "baseline_metric": baseline,
        "best_metric": best,
        "improvement": improvement(baseline, best, direction) if best is not None else 0.0,
        "cycles": len(cycles),
        "finished": ledger.get_meta("finished") is True,
        "mechanisms": [
            {
                "id": m["id"],
                "name": m["name"],
                "origin": m["origin"],
                "status": m["status"],
                "adopted": m["status"] == "adopted",
                "hook_calls": counts.get(m["id"], {}),
                "failed_calls": failed_calls(ledger, m["id"]),
            }
            for m in ledger.mechanisms()
        ],
        "llm": {
            "by_node": ledger.llm_usage(),
            "tokens": tokens,
            "cost_usd": cost,
        },
        "evaluation": slot_use(ledger, config.get("slots", 1)),
        "cycle_log": [
            {
                "cycle": c["cycle"],
                "mechanism": c["mechanism"],
                "improvement": c["improvement"],
                "accepted": c["accepted"],
                "decision": c["decision"],
            }
            for c in cycles
        ],
    }


def failed_calls(ledger: Ledger, mech_id: str) -> int:
    rows = ledger.query(
        "SELECT COUNT(*) AS n FROM hook_calls WHERE mechanism = ? AND outcome != 'ok'", (mech_id,)
    )
    return rows[0]["n"]


def slot_use(ledger: Ledger, slots: int) -> dict[str, Any]:
    """How busy the W evaluation slots were, from the trials' start and finish times:
    utilisation = busy slot-seconds / (W x the span from the first trial's start to the last
    one's finish). The baseline (trial 0) is left out: every later trial waits for it."""
    rows = ledger.query(
        "SELECT started, finished, worker FROM trials WHERE trial > 0 AND started IS NOT NULL"
    )
    lost = ledger.query("SELECT COUNT(*) AS n FROM notes WHERE kind = 'worker_lost'")[0]["n"]
    if not rows:
        return {
            "slots": slots,
            "utilisation": None,
            "busy_s": 0.0,
            "span_s": 0.0,
            "workers_lost": lost,
        }
    busy = sum(r["finished"] - r["started"] for r in rows)
    span = max(r["finished"] for r in rows) - min(r["started"] for r in rows)
    return {
        "slots": slots,
        "utilisation": busy / (slots * span) if span > 0 else None,
        "busy_s": busy,
        "span_s": span,
        "workers": sorted({r["worker"].rsplit(":", 1)[0] for r in rows if r["worker"]}),
        "workers_lost": lost,
    }
