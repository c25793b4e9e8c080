"""The figures of `bilevel report`, each drawn from the ledger alone and saved as a PNG.

One function per figure; each takes the ledger rows it needs and a path, and says in its title
what it shows.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402

from bilevel.config import ARMS  # noqa: E402
from bilevel.objectives import SearchSpace  # noqa: E402
from bilevel.reporting.stats import bootstrap_ci  # noqa: E402

DPI = 110
DECISION_COLOURS = {"adopt": "tab:green", "revert": "tab:red", None: "tab:gray"}
STATUS_ORDER = [
    "default",
    "installed",
    "probation",
    "adopted",
    "reverted",
    "declined",
    "validated",
    "rejected",
    "proposed",
]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def trials_plot(trials: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Each trial's metric (kept, discarded, failed) and the incumbent after it."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ok = [t for t in trials if t["status"] == "ok" and t["metric"] is not None]
    kept = [t for t in ok if t["accepted"]]
    dropped = [t for t in ok if not t["accepted"]]
    ax.scatter(
        [t["trial"] for t in dropped],
        [t["metric"] for t in dropped],
        s=14,
        color="tab:gray",
        alpha=0.6,
        label="discarded",
    )
    ax.scatter(
        [t["trial"] for t in kept],
        [t["metric"] for t in kept],
        s=30,
        color="tab:green",
        label="kept (new incumbent)",
        zorder=3,
    )
    steps = [
        (t["trial"], t["incumbent_metric"]) for t in trials if t["incumbent_metric"] is not None
    ]
    if steps:
        ax.step(
            [s[0] for s in steps],
            [s[1] for s in steps],
            where="post",
            color="tab:blue",
            label="incumbent",
        )
    failed = [t["trial"] for t in trials if t["status"] != "ok"]
    if failed and ok:
        low = min(t["metric"] for t in ok)
        ax.scatter(
            failed,
            [low] * len(failed),
            marker="x",
            color="tab:red",
            label="failed (crash / nan / timeout)",
        )
    first_of_cycle: dict[int, int] = {}
    for t in sorted(trials, key=lambda t: t["trial"]):
        first_of_cycle.setdefault(t["cycle"], t["trial"])
    for cycle, boundary in first_of_cycle.items():
        if cycle > 0:
            ax.axvline(boundary - 0.5, color="k", alpha=0.1, linestyle=":")
    ax.set(title=f"{metric} per trial, with the incumbent", xlabel="trial", ylabel=metric)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def cycles_plot(cycles: list[dict[str, Any]], path: Path) -> Path:
    """Improvement of the incumbent in each outer cycle, coloured by the adoption decision."""
    fig, ax = plt.subplots(figsize=(9, 4))
    decisions = [(c["decision"] or "").split(" ")[0] or None for c in cycles]
    colours = [DECISION_COLOURS.get(d, "tab:gray") for d in decisions]
    xs = [c["cycle"] for c in cycles]
    heights = [c["improvement"] for c in cycles]
    ax.bar(xs, heights, color=colours)
    # a cycle that gained nothing has a bar of height 0: its marker still shows the decision
    ax.scatter(xs, heights, color=colours, marker="D", s=28, edgecolors="black", zorder=3)
    for x, c in zip(xs, cycles, strict=True):
        ax.annotate(
            c["mechanism"],
            (x, 0),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
            rotation=90,
        )
    handles = [plt.Rectangle((0, 0), 1, 1, color=v) for v in DECISION_COLOURS.values()]
    ax.legend(
        handles, ["adopted after probation", "reverted after probation", "no decision"], fontsize=8
    )
    ax.set(
        title="improvement per cycle (mechanism in use; adoption decision)",
        xlabel="cycle",
        ylabel="improvement of the incumbent",
    )
    ax.set_xticks(xs)
    return _save(fig, path)


def mechanisms_plot(
    mechanisms: list[dict[str, Any]], cycles: list[dict[str, Any]], path: Path
) -> Path:
    """Which mechanism was in the slots in each cycle, and what became of each one proposed."""
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.35 * len(mechanisms) + 1.2)))
    ids = [m["id"] for m in mechanisms]
    ys = {m: i for i, m in enumerate(ids)}
    in_use = [(c["cycle"], ys[c["mechanism"]]) for c in cycles if c["mechanism"] in ys]
    ax.scatter(
        [x for x, _ in in_use],
        [y for _, y in in_use],
        marker="s",
        s=60,
        color="tab:blue",
        label="in the slots this cycle",
    )
    colours = {
        "adopted": "tab:green",
        "reverted": "tab:red",
        "rejected": "black",
        "declined": "tab:orange",
    }
    for m in mechanisms:
        colour = colours.get(m["status"])
        if colour:
            ax.scatter([m["cycle"]], [ys[m["id"]]], marker="o", s=25, color=colour, zorder=3)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c) for c in colours.values()]
    ax.legend(
        [plt.Line2D([], [], marker="s", linestyle="", color="tab:blue"), *handles],
        ["in the slots", *colours],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1, 1),
    )
    ax.set_yticks(range(len(ids)), ids, fontsize=7)
    ax.set(title="mechanism timeline: in use per cycle, and each one's fate", xlabel="cycle")
    return _save(fig, path)


def hooks_plot(calls: list[dict[str, Any]], path: Path) -> Path:
    """Hook calls per mechanism and hook, and how many of them changed a decision."""
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.3 * len(calls) + 1.2)))
    labels = [f"{c['mechanism']}.{c['hook']}" for c in calls]
    ys = range(len(calls))
    ax.barh(ys, [c["calls"] for c in calls], color="tab:gray", label="calls")
    ax.barh(ys, [c["changed"] for c in calls], color="tab:green", label="changed a decision")
    failed = [c["failed"] for c in calls]
    if any(failed):
        ax.barh(ys, failed, color="tab:red", label="failed (default used)")
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()  # in the order the hooks were first called
    ax.set(title="hook calls per mechanism (and how many changed a decision)", xlabel="calls")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))  # beside the bars, not on one
    return _save(fig, path)


def coverage_plot(trials: list[dict[str, Any]], space: SearchSpace, path: Path) -> Path:
    """For each parameter: the values tried (position in its range) and how often it changed."""
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=(10, max(3, 0.4 * len(space.params) + 1.2)),
        gridspec_kw={"width_ratios": [3, 1]},
        sharey=True,
    )
    names = space.names
    changed = Counter(n for t in trials for n in t["changes"])
    for y, name in enumerate(names):
        param = space[name]
        xs = [param.unit(t["config"][name]) for t in trials if name in t["config"]]
        left.scatter(xs, [y] * len(xs), s=12, alpha=0.35, color="tab:blue")
        left.scatter([param.unit(param.default)], [y], marker="|", s=200, color="k")
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.invert_yaxis()  # the first parameter on top, as the space lists them
    left.set(title="values tried (0 = low end, 1 = high end; | = baseline)", xlim=(-0.05, 1.05))
    right.barh(range(len(names)), [changed[n] for n in names], color="tab:orange")
    right.set(title="trials that changed it")
    fig.suptitle("parameter coverage")
    return _save(fig, path)


def bench_plot(rows: list[dict[str, Any]], objective: str, path: Path) -> Path:
    """Improvement over the baseline per arm: every seed as a dot, the mean with its 95% CI."""

    arms = [a for a in ARMS if any(r["arm"] == a for r in rows)]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(arms) + 2), 4))
    for x, arm in enumerate(arms):
        values = [r["improvement"] for r in rows if r["arm"] == arm]
        ax.scatter([x] * len(values), values, color="tab:gray", alpha=0.6, s=16, zorder=2)
        mean = sum(values) / len(values)
        low, high = bootstrap_ci(values)
        ax.errorbar(
            [x],
            [mean],
            yerr=[[mean - low], [high - mean]],
            fmt="o",
            color="tab:blue",
            capsize=5,
            zorder=3,
        )
    ax.set_xticks(range(len(arms)), arms)
    ax.axhline(0, color="k", alpha=0.2)
    ax.set(
        title=f"{objective}: improvement over baseline by arm (mean, 95% CI; dots = seeds)",
        ylabel="improvement",
    )
    ax.title.set_fontsize(9)
    return _save(fig, path)
