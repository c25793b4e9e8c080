"""What the outer loop measures after each cycle, and the adoption rule it applies."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from bilevel.graphs.state import BilevelState, decided_before
from bilevel.store.ledger import Ledger


def improvement(start: float | None, end: float | None, direction: str) -> float:
    """How much better end is than start (positive = better)."""
    if end is None:
        return 0.0
    if start is None:
        return abs(end) or 1.0
    return start - end if direction == "minimize" else end - start


def config_key(config: dict[str, Any]) -> str:
    return repr(sorted(config.items()))


def assess_cycle(
    state: BilevelState,
    ledger: Ledger,
    direction: str,
    names: list[str],
    trace: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per-cycle improvement, accept rate, repeats, fixation, untouched and flat parameters,
    hook calls. trace: the trace's decided trials (read from the ledger when not given).
    Blocking (SQLite): call it from a worker thread in async code."""
    cycle, first = state["cycle_index"], max(1, state["cycle_first_trial"])
    # The cycle's trials are those it decided: with W parallel evaluations a few were proposed in
    # the cycle before, and the ones still in flight are left to the next.
    if trace is None:
        trace = ledger.trials(trace=state["trace"], before=decided_before(state))
    trials = [t for t in trace if t["trial"] >= first]
    seen = {config_key(t["config"]) for t in trace if t["trial"] < first}
    repeats = 0
    for t in trials:
        repeats += config_key(t["config"]) in seen
        seen.add(config_key(t["config"]))
    changed = Counter(n for t in trials for n in t["changes"])
    effects: dict[str, list[float]] = {}
    before_metric = None
    for t in trace:  # |metric - incumbent's metric when proposed|, per changed parameter
        if t["trial"] >= first and t["status"] == "ok" and before_metric is not None:
            for n in t["changes"]:
                effects.setdefault(n, []).append(abs(t["metric"] - before_metric))
        if t["incumbent_metric"] is not None:
            before_metric = t["incumbent_metric"]
    code = code_edit_effects(ledger, trace, first, cycle)
    gained = {n for t in trials if t["accepted"] for n in t["changes"]}
    touched = {n for t in trace for n in t["changes"]}
    frozen = set(state["inner_params"]["frozen"])
    calls = ledger.query(
        "SELECT hook, COUNT(*) AS n, SUM(changed) AS changed FROM hook_calls "
        "WHERE cycle = ? GROUP BY hook",
        (cycle,),
    )
    return {
        "cycle": cycle,
        "first_trial": first,
        "end_trial": decided_before(state),  # the cycle decided trials first .. end_trial - 1
        "trials": len(trials),
        "accepted": sum(bool(t["accepted"]) for t in trials),
        "improvement": improvement(
            state["cycle_start_metric"], state["incumbent"]["metric"], direction
        ),
        "repeat_rate": repeats / len(trials) if trials else 0.0,
        "fixation": max(changed.values()) / sum(changed.values()) if changed else 0.0,
        "untouched": [n for n in names if n not in touched and n not in frozen],
        "changed_without_gain": [n for n, c in changed.most_common() if c >= 2 and n not in gained],
        "changed": dict(changed),
        "sensitivity": {n: sum(v) / len(v) for n, v in sorted(effects.items())},
        "metric": state["incumbent"]["metric"],
        "hook_calls": {r["hook"]: {"calls": r["n"], "changed": r["changed"] or 0} for r in calls},
        **({"code_edits": code} if code else {}),
    }


def code_edit_effects(
    ledger: Ledger, trace: list[dict[str, Any]], first: int, cycle: int
) -> dict[str, Any] | None:
    """--code-edits: what the cycle's patches did, so the meta-researcher sees which kinds of
    edits paid: each patched trial (summary, hypothesis, status, kept, metric change against the
    incumbent it was proposed from), and how many patches were refused before any evaluation."""
    edits, before_metric = [], None
    for t in trace:
        if t["trial"] >= first and t.get("patch"):
            delta = None
            if t["status"] == "ok" and before_metric is not None:
                delta = t["metric"] - before_metric
            edits.append(
                {
                    "trial": t["trial"],
                    "patch": t["patch"]["summary"],
                    "hypothesis": (t.get("hypothesis") or "")[:200],
                    "status": t["status"],
                    "kept": bool(t["accepted"]),
                    "metric_change": delta,
                    "fixes": t["patch"]["repair_of"],
                }
            )
        if t["incumbent_metric"] is not None:
            before_metric = t["incumbent_metric"]
    refused = ledger.query(
        "SELECT COUNT(*) AS n FROM notes WHERE kind = 'patch_rejected' AND cycle = ?", (cycle,)
    )[0]["n"]
    if not edits and not refused:
        return None
    return {
        "patched_trials": edits,
        "kept": sum(e["kept"] for e in edits),
        "crashed": sum(e["status"] != "ok" for e in edits),
        "refused_before_running": refused,
    }


def best_point(ledger: Ledger, trace: int | None, direction: str) -> dict[str, Any] | None:
    """The best decided ok trial of a trace (of the whole run: None), as an incumbent
    {config, metric, trial}; the earliest among equals."""
    order = "ASC" if direction == "minimize" else "DESC"
    rows = ledger.query(
        "SELECT trial FROM trials WHERE (? IS NULL OR trace = ?) AND status = 'ok' "
        f"AND metric IS NOT NULL AND accepted IS NOT NULL ORDER BY metric {order}, trial LIMIT 1",
        (trace, trace),
    )
    if not rows:
        return None
    t = ledger.trial(rows[0]["trial"])
    return {"config": t["config"], "metric": t["metric"], "trial": t["trial"]}  # type: ignore[index]


def mean_gain(gains: list[float]) -> float:
    """Gain per evaluation of a list of trial scores (trial_gains)."""
    return sum(gains) / len(gains) if gains else 0.0


def adopt_rule(candidate: list[float], parent: list[float]) -> bool:
    """The default adoption rule: on the probation cycle's matched trials (turn about with its
    parent), the candidate gained more per evaluation than its parent; a tie keeps the parent."""
    return mean_gain(candidate) > mean_gain(parent)


def trial_gains(
    ledger: Ledger, first: int, end: int, direction: str, mechanism: str | None = None
) -> list[float]:
    """Each decided trial's score: what keeping it gained over the incumbent it was judged
    against (negative when an accept hook kept a worse trial), 0 for a trial not kept; with
    mechanism, only the trials that mechanism's turns proposed."""
    rows = ledger.query(
        "SELECT trial, metric, status, accepted, incumbent_metric, mechanism FROM trials "
        "WHERE trial >= ? AND trial < ? ORDER BY trial",
        (first - 1, end),
    )
    gains: list[float] = []
    for before, t in zip(rows, rows[1:], strict=False):
        if mechanism is not None and t["mechanism"] != mechanism:
            continue
        base = before["incumbent_metric"]
        kept = t["accepted"] and t["metric"] is not None and base is not None
        gains.append(improvement(base, t["metric"], direction) if kept else 0.0)
    return gains


def gate_evidence(new: list[float], old: list[float], alpha: float, seed: int) -> dict[str, Any]:
    """The statistical adoption gate: is the improvement per trial under the candidate credibly
    larger than under its parent, on the probation cycle's matched trials (scores from
    trial_gains)? A one-sided permutation test on the difference of mean scores. Adopt only when
    p <= alpha."""
    a, b = list(new), list(old)
    if not a or not b:
        return {"adopt": False, "p": None, "n_new": len(a), "n_old": len(b), "alpha": alpha,
                "reason": "no trials to compare"}  # fmt: skip
    observed = sum(a) / len(a) - sum(b) / len(b)
    pooled, rng, hits, draws = a + b, random.Random(seed), 0, 2000
    for _ in range(draws):
        rng.shuffle(pooled)
        diff = sum(pooled[: len(a)]) / len(a) - sum(pooled[len(a) :]) / len(b)
        hits += diff >= observed - 1e-12
    p = (hits + 1) / (draws + 1)
    return {
        "adopt": observed > 0 and p <= alpha,
        "p": p,
        "mean_gain_new": sum(a) / len(a),
        "mean_gain_old": sum(b) / len(b),
        "n_new": len(a),
        "n_old": len(b),
        "alpha": alpha,
    }
