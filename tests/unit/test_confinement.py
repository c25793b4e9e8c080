"""The OS layers alone: a worker started with --unrestricted-test runs plain Python (real
builtins, real imports, no RestrictedPython), so each check below bypasses the policy on
purpose and shows what Landlock and seccomp stop by themselves."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bilevel.sandbox import landlock
from bilevel.sandbox.pool import SandboxPool, missing_confinement
from bilevel.sandbox.worker import UNRESTRICTED_FLAG

ABI, WHY = landlock.abi_version()
pytestmark = pytest.mark.skipif(ABI == 0, reason=f"no Landlock here: {WHY}")
SECRET = "confinement-secret-7d1f"


async def raw(code: str) -> dict:
    async with SandboxPool(workers=1, worker_args=(UNRESTRICTED_FLAG,)) as pool:
        (ready,) = pool.confinement()
        assert missing_confinement(ready) is None, ready
        return await pool.raw(code)


def run(code: str) -> dict:
    return asyncio.run(raw(code))


def denied(reply: dict) -> None:
    assert reply["ok"] is False, reply
    assert "PermissionError" in reply["error"] or "Operation not permitted" in reply["error"]


@pytest.fixture()
def planted(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    return secret


def test_plain_python_runs_unrestricted() -> None:
    # the entry point really bypasses the policy: os and real builtins are there
    reply = run("import os\nresult = (os.getpid() > 0, callable(open))")
    assert reply == {"ok": True, "value": "(True, True)"}


def test_open_a_file_fails(planted: Path) -> None:
    denied(run(f"result = open({str(planted)!r}).read()"))


def test_os_open_and_listdir_fail(planted: Path) -> None:
    denied(run(f"import os\nresult = os.open({str(planted)!r}, os.O_RDONLY)"))
    denied(run(f"import os\nresult = os.listdir({str(planted.parent)!r})"))
    denied(run("import os\nresult = os.listdir('/')"))


def test_parent_environ_and_memory_unreadable() -> None:
    os.environ["BILEVEL_CONFINEMENT_SECRET"] = SECRET
    try:
        for path in ("environ", "mem", "maps", "cmdline"):
            denied(run(f"import os\nresult = open(f'/proc/{{os.getppid()}}/{path}', 'rb').read()"))
        denied(run("result = open('/proc/self/environ', 'rb').read()"))
    finally:
        os.environ.pop("BILEVEL_CONFINEMENT_SECRET")


def test_no_process_view() -> None:
    denied(run("import os\nresult = os.listdir('/proc')"))


def test_mmap_of_a_file_fails() -> None:
    # fd 0 is /dev/null, opened before confinement: a shared map of it is still refused
    denied(run("import mmap\nresult = mmap.mmap(0, 4096, mmap.MAP_SHARED)"))
    ok = run("import mmap\nm = mmap.mmap(-1, 4096)\nm[:2] = b'ok'\nresult = m[:2]")
    assert ok == {"ok": True, "value": "b'ok'"}  # anonymous memory still works


def test_files_cannot_be_created_changed_or_removed(planted: Path, tmp_path: Path) -> None:
    target = tmp_path / "new.txt"
    denied(run(f"result = open({str(target)!r}, 'w').write('x')"))
    denied(run(f"import os\nos.rename({str(planted)!r}, {str(target)!r})"))
    denied(run(f"import os\nos.unlink({str(planted)!r})"))
    denied(run(f"import os\nos.mkdir({str(tmp_path / 'd')!r})"))
    denied(run(f"import os\nos.truncate({str(planted)!r}, 0)"))
    assert planted.read_text() == SECRET and not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt"]


def test_network_and_processes_fail() -> None:
    denied(run("import socket\nresult = socket.socket()"))
    denied(run("import os\nresult = os.fork()"))
    denied(run("import os, signal\nos.kill(os.getppid(), signal.SIGTERM)"))


def test_require_confinement_passes_here() -> None:
    async def start() -> list[dict]:
        async with SandboxPool(workers=1, require_confinement=True) as pool:
            return pool.confinement()

    (ready,) = asyncio.run(start())
    assert ready["seccomp"] is True and ready["landlock"] == ABI


def test_missing_layer_is_named() -> None:
    assert missing_confinement({"seccomp": True, "landlock": 7}) is None
    line = missing_confinement({"seccomp": True, "landlock": 0, "why": "Landlock disabled"})
    assert line == "Landlock unavailable (Landlock disabled)"
