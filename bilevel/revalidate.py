"""The bench's "validated improvement": each run's best config and its baseline re-evaluated on
K fresh seeds, so an arm is credited with a better config and not with a lucky seed.

Fresh seeds are FRESH_SEED + j (never a run seed or a trial seed), the same for every run, so
arms are compared on the same draws. Each evaluation lands in the run's ledger (a note of kind
`validation_eval`) and the summary in its meta (`validated`), from which bench tables are rebuilt.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bilevel.execution.evaluator import evaluate
from bilevel.graphs.assessment import best_point, improvement
from bilevel.objectives import make_objective
from bilevel.store.ledger import LEDGER_FILE, Ledger

FRESH_SEED = 1_000_000_007


async def revalidate(run_dir: Path, k: int) -> dict[str, Any] | None:
    """The run's validated improvement on k fresh seeds (kept in its ledger; computed once)."""
    ledger = Ledger(Path(run_dir) / LEDGER_FILE)
    try:
        done = ledger.get_meta("validated")
        if done is not None and done.get("k") == k:
            return done
        config = ledger.get_meta("config")
        options = config.get("objective_options", {})
        objective = make_objective(config["objective"], **options)
        # a finished run: every trial is decided
        best, baseline = best_point(ledger, None, objective.direction), ledger.trial(0)
        if best is None or baseline is None:
            return None
        metrics: dict[str, list[float | None]] = {"baseline": [], "best": []}
        for j in range(k):
            seed = FRESH_SEED + j
            for who, cfg in (("baseline", baseline["config"]), ("best", best["config"])):
                result = await evaluate(objective, cfg, options, seed)
                metrics[who].append(result.metric if result.status == "ok" else None)
                ledger.add_note(
                    f"validation:{who}:{j}", -1, -1, "validation_eval",
                    {"trial": best["trial"] if who == "best" else 0, "seed": seed,
                     "metric": result.metric, "status": result.status},
                )  # fmt: skip
        means = {w: statistics.fmean([m for m in v if m is not None] or [float("nan")])
                 for w, v in metrics.items()}  # fmt: skip
        summary = {
            "k": k,
            "trial": best["trial"],
            "baseline_mean": means["baseline"],
            "best_mean": means["best"],
            "improvement": improvement(means["baseline"], means["best"], objective.direction),
        }
        ledger.set_meta("validated", summary)
        return summary
    finally:
        ledger.close()


async def revalidate_all(out: Path, k: int) -> int:
    """Every finished run under out; how many were validated."""
    n = 0
    for path in sorted(Path(out).rglob(LEDGER_FILE)):
        ledger = Ledger(path, readonly=True)
        try:
            finished = ledger.get_meta("finished") is True
        finally:
            ledger.close()
        if finished and await revalidate(path.parent, k) is not None:
            n += 1
    return n
