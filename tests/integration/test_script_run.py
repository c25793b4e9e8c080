"""The script objective through the real CLI: the shipped example, broken scripts, bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import bilevel, show_json, trials

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures" / "script"


@pytest.fixture(autouse=True)
def venv_python_on_path(monkeypatch):
    # `--command "python train.py"` must find the interpreter that has torch, as in an
    # activated virtual environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_example_train_py_through_a_full_bilevel_run(tmp_path: Path):
    before, source = snapshot(EXAMPLES), (EXAMPLES / "train.py").read_bytes()
    run_dir = tmp_path / "run"
    bilevel(
        "run", "--objective", "script", "--command", "python train.py", "--metric", "val_bpb",
        "--space", "train_space.toml", "--config-via", "constants", "--train-file", "train.py",
        "--workdir", str(EXAMPLES), "--arm", "full", "--iterations", "6", "--cycle", "3",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert (EXAMPLES / "train.py").read_bytes() == source
    assert snapshot(EXAMPLES) == before  # nothing written into examples/
    rows = trials(run_dir)
    assert len(rows) == 7 and all(r["status"] == "ok" for r in rows)
    configs = [json.loads(r["config"]) for r in rows]
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 7
    for config, row in zip(configs, rows, strict=True):
        extra = json.loads(row["extra"])  # the example prints the constants it ran with
        assert (extra["lr"], extra["batch_size"], extra["hidden"]) == (
            config["LR"], config["BATCH_SIZE"], config["HIDDEN"]
        )  # fmt: skip
        assert extra["num_steps"] == 300 and "training_seconds" in extra
        assert "val_bpb:" in row["log_tail"]
    assert len({r["metric"] for r in rows}) > 1
    summary = show_json(run_dir)
    assert summary["objective"] == "script" and summary["trials"] == 7
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    (stored,) = db.execute("SELECT value FROM run WHERE key = 'config'").fetchone()
    db.close()
    options = json.loads(stored)["objective_options"]
    assert options["workdir"] == str(EXAMPLES)  # absolute: show and resume work from anywhere
    names = [p["name"] for p in options["space"]["params"]]  # inline, in the file's order
    assert names == list(tomllib.loads((EXAMPLES / "train_space.toml").read_text())["params"])


@pytest.mark.parametrize(
    "script, status, reason",
    [
        ("crash.py", "crash", "exit status 1; no 'val_bpb:' line in the output"),
        ("no_metric.py", "crash", "[bilevel] crash: no 'val_bpb:' line in the output"),
        ("overrun.py", "timeout", "[bilevel] timeout: killed the process group after 1s"),
    ],
)
def test_broken_scripts_are_recorded_and_the_run_goes_on(tmp_path, script, status, reason):
    run_dir = tmp_path / "run"
    proc = bilevel(
        "run", "--objective", "script", "--command", f"python {script}", "--space", "space.toml",
        "--workdir", str(FIXTURES), "--eval-timeout", "1", "--iterations", "2", "--cycle", "1",
        "--run-dir", str(run_dir), check=False,
    )  # fmt: skip
    # the run goes on to the end, then says loudly that nothing succeeded (exit 1)
    assert proc.returncode == 1 and "error: no trial succeeded (3 of 3 failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    rows = trials(run_dir)
    assert len(rows) == 3 and {r["status"] for r in rows} == {status}
    assert all(reason in r["log_tail"] for r in rows)
    assert len({r["config"] for r in rows}) == 3  # the researcher kept proposing
    if script == "crash.py":
        assert "RuntimeError: deliberate crash" in rows[0]["log_tail"]
    tsv = (run_dir / "results.tsv").read_text().splitlines()[1:]
    assert [line.split("\t")[4] for line in tsv] == [status] * 3


def test_bad_script_input_exits_with_one_line(tmp_path: Path):
    (tmp_path / "broken.toml").write_text('[params.LR]\ntype = "logfloat"\nlow = \n')
    (tmp_path / "other.toml").write_text(
        '[params.WIDTH]\ntype = "int"\nlow = 1\nhigh = 8\ndefault = 4\n'
    )
    base = ["run", "--objective", "script", "--workdir", str(EXAMPLES), "--run-dir"]
    cases = [
        (["--space", "train_space.toml"], "needs --command"),
        (["--command", "python train.py"], "needs --space FILE"),
        (
            ["--command", "python train.py", "--space", str(tmp_path / "broken.toml")],
            "does not parse: Invalid value (at line 3, column 7)",
        ),
        (
            ["--command", "python train.py", "--space", str(tmp_path / "other.toml")],
            "no top-level assignment for WIDTH",
        ),
    ]
    for i, (args, needle) in enumerate(cases):
        proc = bilevel(*base, str(tmp_path / f"r{i}"), *args, check=False)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = bilevel("run", "--command", "python train.py", "--run-dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "--command is only for --objective script" in proc.stderr


def test_objectives_lists_script_and_draft_prints_a_space():
    listing = bilevel("objectives").stdout
    assert "script\t(from --metric)\t(from --direction)\t(from --space)" in listing
    draft = bilevel("space", "draft", str(EXAMPLES / "train.py")).stdout
    assert draft.startswith("# DRAFT")
    assert list(tomllib.loads(draft)["params"])[:2] == ["LR", "BATCH_SIZE"]


def test_the_single_file_gpt_example_runs_under_bilevel(tmp_path: Path):
    example = tmp_path / "gpt"
    example.mkdir()
    for name in ("train.py", "train_space.toml"):
        (example / name).write_text((EXAMPLES / "gpt" / name).read_text())
    train = example / "train.py"  # a short budget: this checks the plumbing, not the model
    train.write_text(train.read_text().replace("STEPS = 300 ", "STEPS = 30 "))
    run_dir = tmp_path / "run"
    bilevel("run", "--objective", "script", "--command", "python train.py", "--workdir",
            str(example), "--space", "train_space.toml", "--iterations", "1", "--cycle", "1",
            "--run-dir", str(run_dir))  # fmt: skip
    rows = trials(run_dir)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    extra = json.loads(rows[0]["extra"])
    assert extra["num_steps"] == 30 and 0 < rows[0]["metric"] < 8.0  # bits per byte
