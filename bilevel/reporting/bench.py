"""`bilevel bench`: arms side by side at an equal evaluation budget, and the statistics a sceptical
reader asks for, computed from the run ledgers alone.

Per (objective, arm): the mean improvement over the baseline with a 95% bootstrap CI; paired
comparisons (same seeds) against `inner`, `restart` and the Optuna arms: mean difference, effect
size d_z and an exact sign-flip permutation p-value; and for the arms with an outer loop, the
fraction of cycles whose mechanism in the slots was called at all, and the fraction whose calls
changed a decision.
A mechanism that spent a cycle in the slots without changing a single decision is listed as not
effective. `bench_table(DIR)` rebuilds everything from the ledgers under DIR.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bilevel.config import ARMS
from bilevel.reporting import plots
from bilevel.reporting.report import mechanism_use, summary_of
from bilevel.reporting.results import run_identity
from bilevel.reporting.stats import bootstrap_ci, paired
from bilevel.store.ledger import open_ledger

REFERENCES = ("inner", "restart", "optuna-tpe", "optuna-gp", "optuna-cmaes")  # paired against


def run_row(run_dir: Path) -> dict[str, Any]:
    ledger = open_ledger(run_dir)
    try:
        s = summary_of(ledger)
        use = mechanism_use(ledger)
        validated = ledger.get_meta("validated")
    finally:
        ledger.close()
    return {
        **run_identity(run_dir, s),
        "finished": s["finished"],
        "baseline": s["baseline_metric"],
        "improvement": s["improvement"],
        "validated": validated["improvement"] if validated else None,  # on fresh seeds
        "gap_closed": gap_closed(s),
        **{f"mech_{k}": v for k, v in use.items()},
    }


def gap_closed(summary: dict[str, Any]) -> float | None:
    """The share of the baseline's gap to the objective's known optimum that the run closed."""
    optimum, baseline = summary["optimum"], summary["baseline_metric"]
    if optimum is None or baseline is None or summary["best_metric"] is None:
        return None
    gap = abs(baseline - optimum)
    return summary["improvement"] / gap if gap > 0 else None


def arm_stats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (objective, arm), arms in the canonical order."""
    by_key: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["objective"], r["arm"]), {})[r["seed"]] = r
    out = []
    for objective in sorted({r["objective"] for r in rows}):
        for arm in [a for a in ARMS if (objective, a) in by_key]:
            runs = by_key[(objective, arm)]
            values = [runs[s]["improvement"] for s in sorted(runs)]
            low, high = bootstrap_ci(values)
            line: dict[str, Any] = {
                "objective": objective,
                "arm": arm,
                "n": len(values),
                "mean": statistics.fmean(values),
                "ci_low": low,
                "ci_high": high,
                "budget": sorted({r["budget"] for r in runs.values()}),
                "spent_min": min(r["trials"] for r in runs.values()),  # evaluations spent
                "spent_max": max(r["trials"] for r in runs.values()),
            }
            for key, prefix in (("improvement", "vs_"), ("validated", "vvs_")):
                for ref in REFERENCES:
                    other = by_key.get((objective, ref), {})
                    seeds = [s for s in sorted(set(runs) & set(other))
                             if runs[s][key] is not None and other[s][key] is not None]  # fmt: skip
                    diffs = [runs[s][key] - other[s][key] for s in seeds]
                    line[f"{prefix}{ref}"] = None if ref == arm else paired(diffs)
            checked = [
                runs[s]["validated"] for s in sorted(runs) if runs[s]["validated"] is not None
            ]
            line["vmean"] = statistics.fmean(checked) if checked else None
            line["vci_low"], line["vci_high"] = bootstrap_ci(checked) if checked else (None, None)
            line["vn"] = len(checked)
            closed = [r["gap_closed"] for r in runs.values() if r["gap_closed"] is not None]
            line["gap_closed"] = statistics.fmean(closed) if closed else None
            cycles = sum(r["mech_cycles"] for r in runs.values())
            line["mech_cycles"] = cycles
            line["invoked"] = (
                sum(r["mech_invoked"] for r in runs.values()) / cycles if cycles else None
            )
            line["effective"] = (
                sum(r["mech_effective"] for r in runs.values()) / cycles if cycles else None
            )
            line["not_effective"] = sorted(
                {f"s{r['seed']}:{m}" for r in runs.values() for m in r["mech_not_effective"]}
            )
            out.append(line)
    return out


def bench_table(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-run rows, per-arm statistics) from every run ledger under out."""
    dirs = sorted(p.parent for p in out.rglob("ledger.sqlite"))
    rows = [run_row(d) for d in dirs]
    return rows, arm_stats(rows)


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def _vs(c: dict[str, Any] | None) -> str:
    if c is None:
        return "—"
    if not c["n"]:
        return "-"
    return f"{_fmt(c['mean_diff'], '+.4g')} (d={_fmt(c['d_z'], '.2f')}, p={_fmt(c['p'], '.3f')})"


def markdown(stats: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    arms = {s["arm"] for s in stats}
    refs = [r for r in REFERENCES if r in arms]  # only the references this bench ran
    lines = [
        "| objective | arm | n | evaluations spent / budget | improvement: mean [95% CI] | "
        + " | ".join(f"vs {r}: Δ (d_z, p)" for r in refs)
        + " | cycles invoked | cycles effective | gap to the optimum closed |",
        "|" + "---|" * (8 + len(refs)),
    ]
    for s in stats:
        spent = (
            f"{s['spent_min']}"
            if s["spent_min"] == s["spent_max"]
            else (f"{s['spent_min']}-{s['spent_max']}")
        )
        lines.append(
            f"| {s['objective']} | {s['arm']} | {s['n']} | {spent} / {max(s['budget'])} "
            f"| {_fmt(s['mean'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}] | "
            + " | ".join(_vs(s[f"vs_{r}"]) for r in refs)
            + f" | {_fmt(s['invoked'], '.0%')} | {_fmt(s['effective'], '.0%')} "
            f"| {_fmt(s['gap_closed'], '.0%')} |"
        )
    if any(s["vn"] for s in stats):
        lines += [
            "",
            "Validated improvement: each run's best config and its baseline re-evaluated on fresh "
            "seeds (bilevel/revalidate.py).",
            "",
            "| objective | arm | n | validated: mean [95% CI] | "
            + " | ".join(f"vs {r}: Δ (d_z, p)" for r in refs)
            + " |",
            "|" + "---|" * (4 + len(refs)),
        ]
        for s in stats:
            lines.append(
                f"| {s['objective']} | {s['arm']} | {s['vn']} | {_fmt(s['vmean'])} "
                f"[{_fmt(s['vci_low'])}, {_fmt(s['vci_high'])}] | "
                + " | ".join(_vs(s[f"vvs_{r}"]) for r in refs)
                + " |"
            )
    flagged = [(s["objective"], s["arm"], m) for s in stats for m in s["not_effective"]]
    if flagged:
        lines += ["", "Not effective (in the slots for a cycle, never changed a decision):", ""]
        lines += [f"- {o} / {a}: {m}" for o, a, m in flagged]
    unfinished = [r["run_dir"] for r in rows if not r["finished"]]
    if unfinished:
        lines += ["", f"Unfinished runs (resume the bench): {len(unfinished)}"]
    return "\n".join(lines) + "\n"


def write_bench(out: Path) -> Path:
    """bench.md, bench.json and one PNG per objective in out, from the ledgers under out."""
    rows, stats = bench_table(out)
    text = ["# bench", "", markdown(stats, rows)]
    for objective in sorted({r["objective"] for r in rows}):
        slug = objective.replace(":", "-")
        path = plots.bench_plot(
            [r for r in rows if r["objective"] == objective], objective, out / f"bench-{slug}.png"
        )
        text += [f"![{objective}]({path.name})", ""]
    (out / "bench.json").write_text(json.dumps({"runs": rows, "arms": stats}, indent=2) + "\n")
    report = out / "bench.md"
    report.write_text("\n".join(text))
    return report
