"""--approve: a LangGraph interrupt before each adoption; a person's answer decides."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from bilevel import RunConfig, arun
from tests.helpers import BILEVEL

pytestmark = pytest.mark.slow
CONFIG = dict(
    objective="synthetic:late-lever", arm="mechanism", iterations=6, cycle=2, approve=True
)


def statuses(run_dir: Path) -> dict[str, str]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    return dict(db.execute("SELECT id, status FROM mechanisms WHERE origin = 'library'"))


async def test_approved_mechanisms_go_on_probation_and_declined_ones_never_run(tmp_path: Path):
    questions: list[dict] = []

    async def yes(question: dict) -> str:
        questions.append(question)
        return "yes"

    await arun(RunConfig(**CONFIG), tmp_path / "yes", approver=yes)
    assert questions and all(
        q["diff"].startswith("---") and q["validation"]["ok"] for q in questions
    )
    assert set(statuses(tmp_path / "yes").values()) <= {"adopted", "reverted"}

    summary = await arun(RunConfig(**CONFIG), tmp_path / "no")  # no approver: decline all
    assert set(statuses(tmp_path / "no").values()) == {"declined"}
    assert all(sum(m["hook_calls"].values()) == 0 for m in summary["mechanisms"])
    assert summary["trials"] == 7


def test_cli_asks_on_the_terminal(tmp_path: Path):
    proc = subprocess.run(
        [
            *BILEVEL,
            "run",
            "--approve",
            "--arm",
            "mechanism",
            "--iterations",
            "4",
            "--cycle",
            "2",
            "--objective",
            "synthetic:late-lever",
            "--run-dir",
            str(tmp_path / "cli"),
        ],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "adopt it? [y/N]" in proc.stderr and "passed validation" in proc.stderr
    assert set(statuses(tmp_path / "cli").values()) <= {"adopted", "reverted"}
