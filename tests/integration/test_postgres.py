"""A real PostgreSQL server (Debian's package) on loopback as the checkpoint store: run, SIGKILL,
resume -- no trial lost or repeated."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import bilevel, ledger_rows
from tests.integration.test_resume import ARGS, start, trials_done

BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (BIN / "initdb").exists() or shutil.which("runuser") is None or os.geteuid() != 0,
        reason="needs Debian's postgresql-15 and root (to run it as postgres)",
    ),
]


def as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def postgres() -> str:
    # pytest's tmp dirs are private to root; the server runs as the postgres user
    data = Path(tempfile.mkdtemp(prefix="bilevel-pg-"))
    data.chmod(0o755)
    shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    as_postgres(str(BIN / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
    as_postgres(
        str(BIN / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-l",
        str(data / "log"),
        "-w",
        "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -k {data}",
        "start",
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    yield url
    as_postgres(str(BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop")
    shutil.rmtree(data, ignore_errors=True)


def test_run_kill_resume_against_postgres(postgres: str, tmp_path: Path):
    reference = tmp_path / "reference"
    bilevel("run", "--run-dir", str(reference), *ARGS)  # SQLite, uninterrupted

    run_dir = tmp_path / "pg"
    proc = start("run", "--run-dir", str(run_dir), "--checkpointer", postgres, *ARGS)
    for target in (15, 50):
        deadline = time.monotonic() + 60
        while trials_done(run_dir) < target:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = start("resume", str(run_dir), "--checkpointer", postgres)
    assert proc.wait(timeout=120) == 0
    got, want = ledger_rows(run_dir), ledger_rows(reference)
    assert [r[0] for r in got["trials"]] == list(range(len(want["trials"])))
    assert got == want
    assert not (run_dir / "checkpoints.sqlite").exists()  # the checkpoints went to Postgres


def test_resume_needs_the_same_checkpointer(postgres: str, tmp_path: Path):
    run_dir = tmp_path / "pg"
    bilevel(
        "run",
        "--run-dir",
        str(run_dir),
        "--checkpointer",
        postgres,
        "--iterations",
        "4",
        "--cycle",
        "2",
    )
    proc = bilevel("resume", str(run_dir), check=False)
    assert proc.returncode == 2 and "resume it with the same --checkpointer" in proc.stderr
    bad = bilevel(
        "run",
        "--run-dir",
        str(tmp_path / "x"),
        "--checkpointer",
        "postgresql://postgres@127.0.0.1:1/none",
        check=False,
    )
    assert bad.returncode == 2 and "cannot reach" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
