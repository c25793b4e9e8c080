"""results.tsv: one line per trial, Karpathy's columns plus ours, regenerated from the ledger.

No timing column, so the same seed gives a byte-identical file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bilevel.ledger import Ledger

RESULTS_FILE = "results.tsv"
COLUMNS = (
    "trial",
    "cycle",
    "iteration",
    "metric",
    "status",
    "accepted",
    "mechanism",
    "source",
    "changes",
    "description",
)


def format_metric(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def write_results(run_dir: str | Path, ledger: Ledger) -> Path:
    path = Path(run_dir) / RESULTS_FILE
    lines = ["\t".join(COLUMNS)]
    for t in ledger.trials():
        accepted = {None: "", True: "keep", False: "discard"}[t["accepted"]]
        row = (
            t["trial"],
            t["cycle"],
            t["iteration"],
            format_metric(t["metric"]),
            t["status"],
            accepted,
            t["mechanism"],
            t["source"],
            json.dumps(t["changes"], sort_keys=True),
            t["description"].replace("\t", " "),
        )
        lines.append("\t".join(str(v) for v in row))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written file
    return path
