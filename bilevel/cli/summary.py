"""What `bilevel run`, `resume` and `show` print of a run's summary."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from bilevel.cli.common import err, out
from bilevel.config import ARM_SPECS
from bilevel.terminal import safe


def print_summary(s: dict[str, Any]) -> None:
    out.print(f"[bold]{s['run_dir']}[/bold]")
    out.print(
        f"objective {s['objective']}  arm {s['arm']}  seed {s['seed']}  "
        f"trials {s['trials']}/{s['budget']}  cycles {s['cycles']}"
    )
    labels = s["labels"]
    dead = " -- every LLM call failed" if s["llm"].get("all_failed") else ""
    researcher = labels.get("researcher", s["researcher"])
    out.print(f"researcher: {researcher}{dead if s['researcher'] == 'llm' else ''}")
    if ARM_SPECS[s["arm"]].outer:
        meta = labels.get("meta", s["meta"])
        out.print(f"meta-researcher: {meta}{dead if s['meta'] == 'llm' else ''}")
    out.print(
        f"baseline {fmt(s['baseline_metric'])}  best {fmt(s['best_metric'])}  "
        f"improvement {fmt(s['improvement'])}"
    )
    if s.get("best"):
        b = s["best"]
        out.print(
            f"best config (trial {b['trial']}, seed {b['seed']}, {b['source']}): "
            + "  ".join(f"{k}={v!r}" for k, v in b["config"].items()),
            highlight=False,
            markup=False,
        )
        changed = ", ".join(f"{k}={v!r}" for k, v in b["changed"].items()) or "nothing"
        out.print(f"  changed from the baseline: {changed}", highlight=False, markup=False)
        if b.get("code"):
            text = f"  on edited source (version {b['code'][:12]}): `bilevel apply RUN` writes it"
            out.print(text, highlight=False, markup=False)
    if copy := s.get("trial_copy"):
        linked = copy["linked_files"] + copy["linked_dirs"]
        out.print(
            f"trial copy: {copy['seconds']:.3f} s each ({size(copy['copied_mb'])} copied"
            + (f"; {linked} linked, not copied: {size(copy['linked_mb'])}" if linked else "")
            + ")",
            highlight=False,
        )
    for warning in s.get("warnings", []):
        err.print(f"[yellow]warning:[/yellow] {escape(safe(warning))}", highlight=False)
    ev = s["evaluation"]
    if ev["utilisation"] is not None and ev["busy_s"] >= 1.0:  # not for millisecond objectives
        lost = f", {ev['workers_lost']} workers lost (retried)" if ev["workers_lost"] else ""
        out.print(
            f"evaluation: {ev['parallel']} parallel, utilisation {ev['utilisation']:.1%} "
            f"({ev['busy_s']:.1f} busy evaluation-s over {ev['span_s']:.1f} s){lost}"
        )
    for node, u in s["llm"]["by_node"].items():
        out.print(
            f"  llm {node:<16} {u['calls']} calls ({u['failed']} failed)  "
            f"tokens in {u['input_tokens']} out {u['output_tokens']}  ${u['cost']:.4f}"
        )
    for m in s["mechanisms"]:
        calls = ", ".join(f"{h}={n}" for h, n in sorted(m["hook_calls"].items())) or "no hook calls"
        out.print(f"  mechanism {m['id']:<22} {m['status']:<10} {calls}")


def size(mb: float) -> str:
    if mb < 1:
        return f"{mb * 1024:.0f} kB"
    return f"{mb:.1f} MB" if mb < 1024 else f"{mb / 1024:.1f} GB"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"
