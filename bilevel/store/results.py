"""results.tsv: one line per decided trial, Karpathy's columns plus ours, appended from the ledger.

No timing column, so the same seed gives a byte-identical file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bilevel.store.ledger import Ledger, decode_trial
from bilevel.store.sources import ORIGINAL_KEY

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


def _row(t: dict, patch_column: bool) -> str:
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
        t["description"].replace("\t", " ").replace("\n", " "),
    )
    if patch_column:  # --code-edits runs: what the trial's patch did, e.g. "train.py +3 -1"
        row += ((t.get("patch") or {}).get("summary", ""),)
    return "\t".join(str(v) for v in row) + "\n"


def _last_trial(path: Path) -> int:
    """The trial id on the file's last complete line (-1: header only); a half-written last
    line (a kill mid-append) is cut off first."""
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read()
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            f.truncate(size - len(tail) + cut)
            tail = tail[:cut]
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1].split(b"\t", 1)[0]
    return int(last) if last.isdigit() else -1


def write_results(ledger: Ledger) -> Path:
    """Append the trials decided since the last call, in trial order (trials are decided
    oldest first), next to the ledger. Cost: the new rows only, never the whole history."""
    path = ledger.path.parent / RESULTS_FILE
    patch_column = ledger.get_meta(ORIGINAL_KEY) is not None
    if not path.exists():
        path.write_text("\t".join(COLUMNS + ("patch",) * patch_column) + "\n")
    last = _last_trial(path)
    rows = ledger.query(
        "SELECT * FROM trials WHERE trial > ? AND accepted IS NOT NULL ORDER BY trial", (last,)
    )
    lines = []
    for row in rows:
        if row["trial"] != last + 1:
            break  # an earlier trial is not decided yet: keep the file in trial order
        t = decode_trial(row)
        lines.append(_row(t, patch_column))
        last = t["trial"]
    if lines:
        with open(path, "a") as f:
            f.write("".join(lines))
    return path
