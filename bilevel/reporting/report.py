"""Run summaries from the ledger: what `bilevel show` prints and `--json` returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bilevel.graphs.assessment import improvement
from bilevel.reporting.results import best_of
from bilevel.store.ledger import Ledger, open_ledger


def summarize(run_dir: str | Path) -> dict[str, Any]:
    ledger = open_ledger(run_dir)
    try:
        return summary_of(ledger)
    finally:
        ledger.close()


def summary_of(ledger: Ledger) -> dict[str, Any]:
    from bilevel.objectives import make_objective

    config = ledger.get_meta("config") or {}
    objective = make_objective(config["objective"], **config.get("objective_options", {}))
    direction = objective.direction
    trials = ledger.trials()
    best_trial = best_of(trials, config, direction)
    best = best_trial["metric"] if best_trial else None
    noise = ledger.get_meta("noise")
    # with --noise-repeats the baseline is the mean of its repeated evaluations
    baseline = noise["mean"] if noise else trials[0]["metric"] if trials else None
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
        "metric_name": objective.metric,
        "optimum": getattr(objective, "optimum", None),  # where the objective knows it
        "trials": len(trials),
        "budget": 1 + config.get("iterations", 0) * parallel_of(config),
        "baseline_metric": baseline,
        "best_metric": best,
        "best": best_trial,
        "improvement": improvement(baseline, best, direction) if best is not None else 0.0,
        "cycles": len(cycles),
        "finished": ledger.get_meta("finished") is True,
        "failed": ledger.get_meta("failed"),
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
            "by_node": (usage := ledger.llm_usage()),
            "all_failed": all_llm_failed(usage),
            "tokens": tokens,
            "cost_usd": cost,
        },
        "evaluation": evaluation_use(ledger, parallel_of(config)),
        "problems": problems(ledger, trials, usage),
        "warnings": trial_warnings(trials),
        "trial_copy": trial_copy(trials),
        "noise": noise,
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


TAIL_LINES = 3  # of a failed trial's log, in a problem line


def all_llm_failed(usage: dict[str, dict[str, Any]]) -> bool:
    """usage (ledger.llm_usage()) holds calls, and none of them succeeded."""
    return bool(usage) and all(u["calls"] == u["failed"] for u in usage.values())


def problems(
    ledger: Ledger, trials: list[dict[str, Any]], usage: dict[str, dict[str, Any]]
) -> list[str]:
    """What makes a run's result unusable, one line each (the CLI prints them and exits 1):
    no trial succeeded (with the log tail of the first failure), or every LLM call failed
    (usage: ledger.llm_usage())."""
    out = []
    failed = [t for t in trials if t["status"] != "ok" or t["metric"] is None]
    if trials and len(failed) == len(trials):
        first = failed[0]
        tail = " | ".join((first["log_tail"] or "").strip().splitlines()[-TAIL_LINES:])
        out.append(
            f"no trial succeeded ({len(failed)} of {len(trials)} failed; trial "
            f"{first['trial']}: {first['status']}" + (f"; its log ends: {tail})" if tail else ")")
        )
    if all_llm_failed(usage):
        (example,) = ledger.query(
            "SELECT COALESCE(error, outcome) AS error FROM llm_calls WHERE outcome != 'ok' "
            "ORDER BY rowid DESC LIMIT 1"
        )
        calls = sum(u["calls"] for u in usage.values())
        out.append(
            f"every LLM call failed ({calls} calls; e.g. {example['error']}): the run used "
            "the offline fallbacks instead"
        )
    return out


def trial_warnings(trials: list[dict[str, Any]], most: int = 5) -> list[str]:
    """The distinct warnings trials recorded (a config echo that disagrees, a stale metric, a
    linked file written), each with how many trials gave it, the commonest first."""
    counts: dict[str, list[int]] = {}
    for t in trials:
        for warning in (t.get("extra") or {}).get("warnings", []):
            counts.setdefault(warning, []).append(t["trial"])
    ranked = sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    return [
        f"{w} (trial {ids[0]})" if len(ids) == 1 else f"{w} ({len(ids)} trials, first {ids[0]})"
        for w, ids in ranked[:most]
    ]


def trial_copy(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The mean per-trial project copy (script objectives): seconds, MB copied and linked."""
    copies = [c for t in trials if (c := (t.get("extra") or {}).get("trial_copy"))]
    if not copies:
        return None
    n = len(copies)
    return {
        "trials": n,
        **{k: sum(c.get(k, 0) for c in copies) / n for k in ("seconds", "copied_mb", "linked_mb")},
        "linked_files": max(c.get("linked_files", 0) for c in copies),
        "linked_dirs": max(c.get("linked_dirs", 0) for c in copies),
    }


def failed_calls(ledger: Ledger, mech_id: str) -> int:
    rows = ledger.query(
        "SELECT COUNT(*) AS n FROM hook_calls WHERE mechanism = ? AND outcome != 'ok'", (mech_id,)
    )
    return rows[0]["n"]


def parallel_of(config: dict[str, Any]) -> int:
    """W of a stored config (runs recorded before 0.2 call it slots)."""
    return config.get("parallel", config.get("slots", 1))


def evaluation_use(ledger: Ledger, parallel: int) -> dict[str, Any]:
    """How busy the W parallel evaluations were, from the trials' start and finish times:
    utilisation = busy slot-seconds / (W x the span from the first trial's start to the last
    one's finish). The baseline (trial 0) is left out: every later trial waits for it."""
    rows = ledger.query(
        "SELECT started, finished, worker FROM trials WHERE trial > 0 AND started IS NOT NULL"
    )
    lost = ledger.query("SELECT COUNT(*) AS n FROM notes WHERE kind = 'worker_lost'")[0]["n"]
    if not rows:
        return {
            "parallel": parallel,
            "utilisation": None,
            "busy_s": 0.0,
            "span_s": 0.0,
            "workers_lost": lost,
        }
    busy = sum(r["finished"] - r["started"] for r in rows)
    span = max(r["finished"] for r in rows) - min(r["started"] for r in rows)
    return {
        "parallel": parallel,
        "utilisation": busy / (parallel * span) if span > 0 else None,
        "busy_s": busy,
        "span_s": span,
        "workers": sorted({r["worker"].rsplit(":", 1)[0] for r in rows if r["worker"]}),
        "workers_lost": lost,
    }


def mechanism_use(ledger: Ledger) -> dict[str, Any]:
    """Cycles whose mechanism in the slots (other than the default) was called at all, and those
    whose calls changed a decision; mechanisms that sat in the slots and never changed one."""
    cycles = [c for c in ledger.cycles() if c["mechanism"] != "default"]
    rows = ledger.query(
        "SELECT mechanism, cycle, COUNT(*) AS calls, SUM(changed) AS changed FROM hook_calls "
        "GROUP BY mechanism, cycle"
    )
    calls = {(r["mechanism"], r["cycle"]): r for r in rows}
    invoked = [c for c in cycles if (c["mechanism"], c["cycle"]) in calls]
    effective = [c for c in invoked if calls[(c["mechanism"], c["cycle"])]["changed"]]
    in_slots = {c["mechanism"] for c in cycles}
    changed_any = {m for (m, _), r in calls.items() if r["changed"]}
    return {
        "cycles": len(cycles),
        "invoked": len(invoked),
        "effective": len(effective),
        "not_effective": sorted(in_slots - changed_any),
    }


def hook_stats(ledger: Ledger) -> list[dict[str, Any]]:
    """Per mechanism and hook: calls, how many changed the outcome, how many failed."""
    return ledger.query(
        "SELECT mechanism, hook, COUNT(*) AS calls, SUM(changed) AS changed, "
        "SUM(outcome != 'ok') AS failed FROM hook_calls GROUP BY mechanism, hook "
        "ORDER BY MIN(rowid)"
    )


def write_report(run_dir: str | Path) -> list[Path]:
    """report.md and its PNG figures in run_dir, all from the ledger. Returns the files written,
    report.md first."""
    from bilevel.objectives import make_objective
    from bilevel.reporting import plots

    run_dir = Path(run_dir)
    ledger = open_ledger(run_dir)
    try:
        s = summary_of(ledger)
        config = ledger.get_meta("config")
        objective = make_objective(config["objective"], **config.get("objective_options", {}))
        trials, cycles, mechs = ledger.trials(), ledger.cycles(), ledger.mechanisms()
        calls = hook_stats(ledger)
        not_effective = set(mechanism_use(ledger)["not_effective"])
    finally:
        ledger.close()
    figures = [
        ("metric per trial", plots.trials_plot(trials, objective.metric, run_dir / "trials.png"))
    ]
    if cycles:
        figures.append(("improvement per cycle", plots.cycles_plot(cycles, run_dir / "cycles.png")))
    if len(mechs) > 1:
        figures.append(
            ("mechanism timeline", plots.mechanisms_plot(mechs, cycles, run_dir / "mechanisms.png"))
        )
    if calls:
        figures.append(("hook calls", plots.hooks_plot(calls, run_dir / "hooks.png")))
    figures.append(
        (
            "parameter coverage",
            plots.coverage_plot(trials, objective.space, run_dir / "coverage.png"),
        )
    )
    lines = [
        f"# {s['arm']} on {s['objective']}, seed {s['seed']}",
        "",
        f"researcher: {s['labels'].get('researcher', s['researcher'])}  ",
        f"meta-researcher: {s['labels'].get('meta', s['meta'])}",
        "",
        "| baseline | best | improvement | trials / budget | cycles | parallel | utilisation |",
        "|---|---|---|---|---|---|---|",
        f"| {_num(s['baseline_metric'])} | {_num(s['best_metric'])} | {_num(s['improvement'])} "
        f"| {s['trials']} / {s['budget']} | {s['cycles']} | {s['evaluation']['parallel']} "
        f"| {_pct(s['evaluation']['utilisation'])} |",
        "",
    ]
    lines += best_lines(s, trials)
    for title, path in figures:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    if cycles:
        lines += [
            "## cycles",
            "",
            "| cycle | mechanism | trials | kept | improvement | decision |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['cycle']} | {c['mechanism']} | {c['trials']} | {c['accepted']} "
            f"| {_num(c['improvement'])} | {c['decision'] or ''} |"
            for c in cycles
        ]
        lines.append("")
    by_mech: dict[str, dict[str, int]] = {}
    for c in calls:
        m = by_mech.setdefault(c["mechanism"], {"calls": 0, "changed": 0, "failed": 0})
        for k in m:
            m[k] += c[k] or 0
    lines += [
        "## mechanisms",
        "",
        "| id | origin | parent | cycle | status | hook calls | changed a decision | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in mechs:
        u = by_mech.get(m["id"], {"calls": 0, "changed": 0, "failed": 0})
        flag = " (never changed a decision)" if m["id"] in not_effective else ""
        lines.append(
            f"| {m['id']} | {m['origin']} | {m['parent'] or ''} | {m['cycle']} | "
            f"{m['status']}{flag} | {u['calls']} | {u['changed']} | {u['failed']} |"
        )
    report = run_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return [report, *(path for _, path in figures)]


def best_lines(s: dict[str, Any], trials: list[dict[str, Any]]) -> list[str]:
    """report.md's best-config section: every parameter, its baseline value, what changed."""
    best = s["best"]
    if best is None:
        return ["## best config", "", "no trial succeeded", ""]
    baseline = trials[0]["config"] if trials else {}
    lines = [
        "## best config",
        "",
        f"trial {best['trial']} (cycle {best['cycle']}, {best['source']}, mechanism "
        f"{best['mechanism']}, seed {best['seed']}): {s['metric_name']} {_num(best['metric'])}",
        "",
        "| parameter | best | baseline |",
        "|---|---|---|",
    ]
    for name, value in best["config"].items():
        mark = " **changed**" if name in best["changed"] else ""
        lines.append(f"| {name} | {value!r}{mark} | {baseline.get(name)!r} |")
    return [*lines, ""]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
