"""Real faults lose nothing and mix nothing: two processes on one run directory, a run moved
or copied between a kill and its resume, a script that leaves a daemon behind, a corrupt or
empty ledger, a disk that fills up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import BILEVEL, bilevel, show_json, trials, trials_done

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "script"
ARGS = ["--objective", "synthetic:trainsim", "--iterations", "40", "--cycle", "8", "--seed", "5"]
SLOW = ["--objective", "synthetic:sleep", "--objective-opt", "seconds=3", "--iterations", "8",
        "--cycle", "3", "--arm", "inner"]  # fmt: skip


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*BILEVEL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def wait_for(run_dir: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while trials_done(run_dir) < n:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "ended early"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_two_processes_on_one_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = start("run", "--run-dir", str(run_dir), *SLOW)
    wait_for(run_dir, 1, first)
    for args in (["run", "--run-dir", str(run_dir), *SLOW], ["resume", str(run_dir)]):
        proc = bilevel(*args, check=False)
        assert proc.returncode == 2
        assert "in use by another bilevel process" in one_line(proc)
    assert first.wait(timeout=120) == 0
    rows = trials(run_dir)
    assert [r["trial"] for r in rows] == list(range(9))  # the budget, once
    assert show_json(run_dir)["trials"] == 9


@pytest.mark.parametrize("how", ["move", "copy"])
def test_a_moved_or_copied_run_resumes_in_place(tmp_path: Path, how: str) -> None:
    reference = tmp_path / "reference"
    bilevel("run", "--run-dir", str(reference), *ARGS)
    run_dir = tmp_path / "killed"
    proc = start("run", "--run-dir", str(run_dir), *ARGS)
    wait_for(run_dir, 15, proc)
    kill(proc)
    where = tmp_path / "elsewhere" / "run"
    where.parent.mkdir()
    if how == "move":
        shutil.move(run_dir, where)
    else:
        shutil.copytree(run_dir, where)
        left = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    bilevel("resume", str(where))
    assert (where / "results.tsv").read_text() == (reference / "results.tsv").read_text()
    assert show_json(where)["trials"] == 41
    if how == "move":
        assert not run_dir.exists()  # nothing was re-created at the old path
    else:  # the original was not touched
        assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == left


def leftover(marker: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(int(pid))
        except OSError:
            pass
    return out


def test_a_daemonizing_script_is_decided_and_swept(tmp_path: Path, monkeypatch) -> None:
    marker = f"bilevel-daemon-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("DAEMON_MARKER", marker)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    run_dir = tmp_path / "run"
    started = time.monotonic()
    bilevel(
        "run", "--objective", "script", "--command", "python daemonize.py", "--space",
        "space.toml", "--workdir", str(FIXTURES), "--eval-timeout", "60", "--iterations", "3",
        "--cycle", "3", "--arm", "inner", "--run-dir", str(run_dir),
    )  # fmt: skip
    assert time.monotonic() - started < 50  # no trial waited for its daemon's timeout
    rows = trials(run_dir)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}, rows
    assert all(r["metric"] is not None for r in rows)
    time.sleep(0.2)
    assert leftover(marker) == [], "a daemon outlived its trial"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    bilevel("run", "--run-dir", str(run_dir), "--iterations", "6", "--cycle", "3")
    return run_dir


def state_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_read_only_commands_never_write(finished: Path) -> None:
    before = state_of(finished)
    bilevel("show", str(finished))
    bilevel("show", str(finished), "--json")
    assert state_of(finished) == before


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_a_damaged_ledger_gives_one_line(finished: Path, tmp_path: Path, damage: str) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    ledger = run_dir / "ledger.sqlite"
    data = ledger.read_bytes()
    ledger.write_bytes(
        {"garbage": os.urandom(8192), "empty": b"", "truncated": data[: len(data) // 3]}[damage]
    )
    damaged = ledger.read_bytes()
    for args in (["show", str(run_dir)], ["show", str(run_dir), "--json"], ["resume", str(run_dir)],
                 ["report", str(run_dir)]):  # fmt: skip
        proc = bilevel(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        line = one_line(proc)
        assert str(ledger) in line and ("not a readable ledger" in line or "is not" in line), line
    assert ledger.read_bytes() == damaged  # nothing wrote into it, not even a schema


UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare(1) for a private tmpfs")
def test_disk_full_stops_with_one_line_and_resumes(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    bilevel("run", "--run-dir", str(reference), *ARGS)
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    cli = " ".join([sys.executable, "-m", "bilevel.cli"])
    script = f"""
set -u
mount -t tmpfs -o size=700k tmpfs {mnt} || exit 90
{cli} run --run-dir {mnt}/run --json {" ".join(ARGS)} >/dev/null 2>{out}/err1
echo $? >{out}/rc1
mount -o remount,size=64m {mnt}
{cli} resume {mnt}/run --json >/dev/null 2>{out}/err2
echo $? >{out}/rc2
cp {mnt}/run/results.tsv {out}/results.tsv
"""
    proc = subprocess.run(
        [UNSHARE, "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True, text=True, timeout=600, env={**os.environ, "BILEVEL_LIBRARY": "off"},
    )  # fmt: skip
    if proc.returncode == 90:
        pytest.skip("this kernel refuses a tmpfs in a user namespace")
    assert (out / "rc1").read_text().strip() == "1", (out / "err1").read_text()
    err = (out / "err1").read_text().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the disk is full"), err
    assert "bilevel resume" in err[0]
    assert (out / "rc2").read_text().strip() == "0", (out / "err2").read_text()
    assert (out / "results.tsv").read_text() == (reference / "results.tsv").read_text()


ADDRESS_SEEDED = '''"""Seeds its proposals from object addresses (what repr and str show)."""


def propose(ctx):
    digits = [int(c, 16) for c in str(propose).split(" at ")[-1][:-1][2:]]
    ctx["memory"]["n"] = ctx["memory"].get("n", 0) + len(repr([]))
    value = 0.0005 + (sum(d * (i + 1) for i, d in enumerate(digits)) % 97) / 1000
    return [{"lr": round(value, 6)}]
'''


def test_same_seed_same_results_when_a_mechanism_reads_addresses(tmp_path: Path) -> None:
    # Workers run without address-space randomisation and hold one mechanism each, so even
    # a mechanism that turns object addresses into proposals replays exactly.
    mechanism = tmp_path / "addresses.py"
    mechanism.write_text(ADDRESS_SEEDED)
    args = ["--mechanism", str(mechanism), "--objective", "synthetic:interact", "--iterations",
            "8", "--cycle", "4", "--arm", "inner", "--json"]  # fmt: skip
    for name in ("a", "b"):
        bilevel("run", "--run-dir", str(tmp_path / name), *args)
    first = (tmp_path / "a" / "results.tsv").read_text()
    assert first == (tmp_path / "b" / "results.tsv").read_text()
    assert '"lr"' in first  # the mechanism's proposals were evaluated
