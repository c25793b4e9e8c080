"""Running a command in its own process group, keeping the tail of its output.

The command runs under objectives/reaper.py, a child subreaper: when the command exits, every
process it left behind is killed, daemons that left its process group and session included, so
the output closes and the trial is decided at once. A timeout (or cancellation) asks the reaper
to sweep, then kills the whole group, so a training script's data-loader workers or `torchrun`
children die with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KEEP_BYTES = 256 * 1024  # the metric is read from the last 256 KiB of output
REAPER = str(Path(__file__).with_name("reaper.py"))
SWEEP_GRACE_S = 2.0  # how long the reaper gets to kill what a timed-out command left


@dataclass
class Run:
    """What one process did: exit status (None if it never started), its output, its time."""

    returncode: int | None
    output: str
    seconds: float
    timed_out: bool = False


async def run_command(
    argv: list[str], cwd: Path | None, env: dict[str, str], timeout_s: float | None
) -> Run:
    """Run argv in its own session; on timeout or cancellation kill its whole process group.
    The one way this project runs a child that may hang (script trials, tinygpt training,
    evaluation subprocesses)."""
    start = time.perf_counter()
    if (
        shutil.which(argv[0], path=env.get("PATH")) is None
        and not (cwd or Path()).joinpath(argv[0]).is_file()
    ):
        return Run(None, f"could not start {argv[0]!r}: not found", time.perf_counter() - start)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            REAPER,
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    except OSError as exc:
        return Run(None, f"could not start {argv[0]!r}: {exc}", time.perf_counter() - start)
    buffer = bytearray()
    reader = asyncio.create_task(_keep_tail(proc.stdout, buffer))  # type: ignore[arg-type]
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        timed_out = True
    except asyncio.CancelledError:
        reader.cancel()
        raise
    finally:
        if proc.returncode is None:  # timeout or cancellation: the reaper sweeps, then dies
            try:
                os.kill(proc.pid, signal.SIGTERM)
                await asyncio.wait_for(asyncio.shield(proc.wait()), SWEEP_GRACE_S)
            except (ProcessLookupError, TimeoutError):
                pass
        # Also after a normal exit: anything still in the group would hold the pipe open.
        _kill_group(proc.pid)
        await proc.wait()
    try:
        await asyncio.wait_for(reader, 5.0)
    except TimeoutError:  # a grandchild that left the group still holds the pipe
        pass
    seconds = time.perf_counter() - start
    output = bytes(buffer[-KEEP_BYTES:]).decode("utf-8", errors="replace")
    return Run(proc.returncode, output, seconds, timed_out)


async def _keep_tail(stream: asyncio.StreamReader, buffer: bytearray) -> None:
    while chunk := await stream.read(65536):
        buffer += chunk
        if len(buffer) > 2 * KEEP_BYTES:
            del buffer[:-KEEP_BYTES]


def die_with_parent() -> None:
    """In a child process before exec: the kernel SIGKILLs it when its parent dies, so a killed
    run leaves no model server or evaluation behind (Linux only)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
