"""Failures that used to pass silently now fail loudly: one line, a non-zero exit status."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.helpers import bilevel, show_json
from tests.openai_server import OpenAIServer, status

QUICK = ("--iterations", "4", "--cycle", "2")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


def one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("error:"), proc.stderr
    return lines[-1]


def test_an_llm_server_nobody_runs_fails_before_the_run(tmp_path: Path):
    run_dir = tmp_path / "run"
    url = f"http://127.0.0.1:{closed_port()}/v1"
    proc = bilevel("run", "--llm", url, "--run-dir", str(run_dir), *QUICK, check=False)
    assert proc.returncode == 2
    assert "nothing answers there" in one_error_line(proc)
    assert not run_dir.exists()  # refused before anything ran


def test_a_run_whose_llm_calls_all_failed_says_so_and_exits_1(tmp_path: Path):
    run_dir = tmp_path / "run"
    with OpenAIServer(lambda request, i: status(500)) as server:
        proc = bilevel(
            "run", "--llm", server.url, "--llm-model", "fake", "--llm-retries", "0",
            "--arm", "mechanism", "--run-dir", str(run_dir), *QUICK, check=False,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "every LLM call failed" in one_error_line(proc)
    assert "researcher: llm" in proc.stdout and "every LLM call failed" in proc.stdout
    summary = show_json(run_dir)
    assert summary["finished"] and summary["llm"]["all_failed"]  # the run itself went on


def test_a_mechanism_that_fails_validation_exits_2_with_the_reason(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("def propose(ctx)\n    return []\n")
    run_dir = tmp_path / "run"
    proc = bilevel("run", "--mechanism", str(bad), "--run-dir", str(run_dir), *QUICK, check=False)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "was rejected" in line and "syntax error" in line
    assert not run_dir.exists()


def test_a_script_whose_metric_never_prints_exits_1_with_the_log_tail(tmp_path: Path):
    (tmp_path / "train.py").write_text(
        "LR = 0.1\nprint('training with', LR)\nprint('loss: 1.5')  # not the metric asked for\n"
    )
    (tmp_path / "space.toml").write_text(
        '[params.LR]\ntype = "logfloat"\nlow = 0.01\nhigh = 1.0\ndefault = 0.1\n'
    )
    run_dir = tmp_path / "run"
    proc = bilevel(
        "run", "--objective", "script", "--command", "python train.py", "--workdir",
        str(tmp_path), "--space", str(tmp_path / "space.toml"), "--metric", "val_bpb",
        "--run-dir", str(run_dir), *QUICK, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc)
    assert "no trial succeeded (5 of 5 failed" in line and "loss: 1.5" in line
    decisions = [c["decision"] for c in show_json(run_dir)["cycle_log"] if c["decision"]]
    assert not any(d.startswith("adopt") for d in decisions), decisions  # nothing to adopt on
