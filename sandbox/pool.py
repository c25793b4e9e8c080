"""A pool of sandbox worker processes that run mechanism hooks with a wall-clock timeout.

Mechanism faults never raise here: every call returns a CallResult whose outcome says what
happened. A worker that overruns, dies, writes garbage or answers too much is killed (its
whole process group) and replaced on next use.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

Outcome = str  # "ok" | "error" | "policy" | "timeout" | "crash" | "too_large"

START_TIMEOUT_S = 15.0  # a cold interpreter on a loaded machine can take seconds
CLOSE_GRACE_S = 1.0

log = logging.getLogger("bilevel.sandbox")
_warned_no_seccomp = False  # once per process, not per worker: every respawn would repeat it


@dataclass
class CallResult:
    outcome: Outcome
    value: Any
    memory: dict[str, Any] | None
    error: str | None
    ms: float


@dataclass
class InspectResult:
    ok: bool
    hooks: dict[str, list[str]]
    error: str | None
    functions: list[str] = field(default_factory=list)


class _Fault(Exception):
    """The worker must be killed; outcome is what the caller is told."""

    def __init__(self, outcome: Outcome, error: str) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error
        self.ms = 0.0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # start_new_session made the worker a group leader
    except (ProcessLookupError, PermissionError):
        pass


def _kill_all(pids: set[int]) -> None:
    # Finaliser for a pool that was never closed: it must not touch the pool itself.
    for pid in list(pids):
        _kill_group(pid)
    pids.clear()


def _worker_env() -> dict[str, str]:
    """Only what the interpreter needs to import bilevel: no secrets, no proxies, no HOME."""
    path = os.pathsep.join(p for p in sys.path if p and os.path.isabs(p))
    return {"PYTHONPATH": path, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def _parse_ready(line: bytes) -> dict[str, Any] | None:
    try:
        ready = json.loads(line)
    except ValueError:
        return None
    if not isinstance(ready, dict) or ready.get("ok") is not True or ready.get("ready") is not True:
        return None
    return ready


def _warn_no_seccomp(why: str) -> None:
    global _warned_no_seccomp
    if not _warned_no_seccomp:
        _warned_no_seccomp = True
        log.warning(
            "sandbox workers run without a seccomp filter (%s); policy, rlimits and "
            "timeouts still apply",
            why,
        )


class _Worker:
    """One slot of the pool; proc is None until first use or after a kill."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.seen: set[str] = set()
        self.calls = 0
        self.seccomp: bool | None = None  # from the ready line; None until started

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class SandboxPool:
    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 1.0,
        max_result_bytes: int = 1_000_000,
        recycle_after: int = 5000,
    ) -> None:
        self.size = max(1, workers)
        self.timeout_s = timeout_s
        self.max_result_bytes = max_result_bytes
        self.recycle_after = recycle_after
        self._slots = [_Worker() for _ in range(self.size)]
        self._idle: asyncio.Queue[_Worker] | None = None
        self._pids: set[int] = set()
        self._hashes: dict[str, str] = {}
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._pids)

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for slot in self._slots:
                self._idle.put_nowait(slot)
        return self._idle

    async def start(self) -> None:
        """Start every worker now instead of on first use; RuntimeError if they cannot start."""
        self._queue()
        try:
            await asyncio.gather(*(self._spawn(slot) for slot in self._slots if not slot.alive))
        except _Fault as fault:
            raise RuntimeError(fault.error) from None

    async def close(self) -> None:
        """Stop every worker and wait for it; no process outlives this call."""
        self._closed = True
        await asyncio.gather(*(self._stop(slot) for slot in self._slots))
        self._finalizer()

    async def _stop(self, slot: _Worker) -> None:
        proc, slot.proc = slot.proc, None
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()  # the polite way: the worker exits on EOF
            try:
                await asyncio.wait_for(proc.wait(), CLOSE_GRACE_S)
            except TimeoutError:
                pass
        await self._reap(proc)

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        _kill_group(proc.pid)  # also catches anything the worker might have left in its group
        await proc.wait()
        self._pids.discard(proc.pid)

    async def _kill(self, slot: _Worker) -> None:
        proc, slot.proc = slot.proc, None
        slot.seen.clear()
        if proc is not None:
            await self._reap(proc)

    async def _spawn(self, slot: _Worker) -> None:
        if self._closed:
            raise _Fault("crash", "sandbox pool is closed")
        if slot.proc is not None:
            await self._kill(slot)
        proc = await asyncio.create_subprocess_exec(
            # -P: do not put the cwd on sys.path, so nothing there can shadow our modules
            sys.executable, "-P", "-m", "bilevel.sandbox.worker", str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_worker_env(),
            cwd="/",
            start_new_session=True,
            limit=self.max_result_bytes + 1,
        )  # fmt: skip
        self._pids.add(proc.pid)
        slot.proc, slot.seen, slot.calls = proc, set(), 0
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await proc.stdout.readline()
        except TimeoutError:
            line = b""
        ready = _parse_ready(line)
        if ready is None:
            await self._kill(slot)
            err = await proc.stderr.read() if proc.stderr is not None else b""
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no ready line"]
            raise _Fault("crash", f"sandbox worker failed to start: {last[0]}")
        slot.seccomp = ready.get("seccomp") is True
        if not slot.seccomp:
            _warn_no_seccomp(str(ready.get("why") or "not reported"))

    # --- requests ------------------------------------------------------------------------

    def _hash(self, source: str) -> str:
        digest = self._hashes.get(source)
        if digest is None:
            if len(self._hashes) > 256:
                self._hashes.clear()
            digest = hashlib.blake2b(source.encode(), digest_size=16).hexdigest()
            self._hashes[source] = digest
        return digest

    async def _roundtrip(self, slot: _Worker, payload: bytes, timeout: float) -> dict[str, Any]:
        """Send one request line, return the parsed reply, or raise _Fault (worker killed)."""
        if not slot.alive or slot.calls >= self.recycle_after:
            await self._spawn(slot)
        proc = slot.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        slot.calls += 1
        done = False
        try:
            try:
                proc.stdin.write(payload)
                await proc.stdin.drain()
                async with asyncio.timeout(timeout):
                    line = await proc.stdout.readline()
            except TimeoutError:
                raise _Fault("timeout", f"no result within {timeout:g} s") from None
            except (ValueError, asyncio.LimitOverrunError):  # readline past the stream limit
                raise _Fault("too_large", f"result over {self.max_result_bytes} bytes") from None
            except (BrokenPipeError, ConnectionResetError):
                raise _Fault("crash", "sandbox worker died") from None
            if not line.endswith(b"\n"):
                raise _Fault("crash", "sandbox worker died")
            try:
                reply = json.loads(line)
            except ValueError:
                raise _Fault("crash", "sandbox worker wrote garbage") from None
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
                raise _Fault("crash", "sandbox worker wrote garbage")
            done = True
            return reply
        finally:
            if not done:  # a fault, or our caller was cancelled: the worker's state is unknown
                await asyncio.shield(self._kill(slot))

    async def _request(
        self, slot: _Worker, digest: str, body: bytes, source: str, timeout: float
    ) -> dict[str, Any]:
        """Send body (a JSON object) on slot, adding the source only if the worker lacks it."""

        def with_source() -> bytes:
            return body[:-1] + b',"source":' + json.dumps(source).encode() + b"}\n"

        for attempt in range(2):
            fresh = not slot.alive or slot.calls >= self.recycle_after
            send_source = fresh or digest not in slot.seen
            payload = with_source() if send_source else body + b"\n"
            try:
                reply = await self._roundtrip(slot, payload, timeout)
                if reply.get("kind") == "need_source" and not send_source:
                    # The worker evicted it from its cache: send it again.
                    reply = await self._roundtrip(slot, with_source(), timeout)
            except _Fault as fault:
                # A worker that died between calls (killed from outside, CPU limit reached)
                # takes the first attempt down with it; that is not this call's fault, so a
                # crash on a worker that had served before is retried once on a fresh one.
                if fault.outcome != "crash" or attempt or fresh:
                    raise
                continue
            slot.seen.add(digest)
            return reply
        raise AssertionError("unreachable")

    async def _run(
        self, source: str, req: dict[str, Any], timeout_s: float | None
    ) -> tuple[dict[str, Any], float]:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        digest = self._hash(source)
        req["hash"] = digest
        try:  # serialise before taking a worker: bad arguments are the caller's bug
            body = json.dumps(req, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"sandbox arguments must be JSON data: {exc}") from exc
        queue = self._queue()
        slot = await queue.get()
        start = time.perf_counter()
        try:
            if not slot.alive or slot.calls >= self.recycle_after:
                await self._spawn(slot)  # start-up is not the hook's time
                start = time.perf_counter()
            reply = await self._request(slot, digest, body, source, timeout)
        except _Fault as fault:
            fault.ms = (time.perf_counter() - start) * 1000
            raise
        finally:
            queue.put_nowait(slot)
        return reply, (time.perf_counter() - start) * 1000

    async def call(
        self,
        source: str,
        hook: str,
        args: list[Any],
        seed: int = 0,
        timeout_s: float | None = None,
    ) -> CallResult:
        """Run hook(*args) from source; ctx (args[-1]) memory comes back in result.memory.

        Raises only for arguments that are not JSON data; mechanism faults are outcomes.
        """
        req = {"op": "call", "hook": hook, "args": args, "seed": seed}
        try:
            reply, ms = await self._run(source, req, timeout_s)
        except _Fault as fault:
            return CallResult(fault.outcome, None, None, fault.error, fault.ms)
        if reply["ok"]:
            return CallResult("ok", reply.get("value"), reply.get("memory"), None, ms)
        outcome = "policy" if reply.get("kind") == "policy" else "error"
        return CallResult(outcome, None, None, str(reply.get("error")), ms)

    async def inspect(self, source: str, timeout_s: float | None = None) -> InspectResult:
        """Which hooks source defines (with parameter names) and all its top-level functions."""
        try:
            reply, _ = await self._run(source, {"op": "inspect"}, timeout_s)
        except _Fault as fault:
            return InspectResult(False, {}, f"{fault.outcome}: {fault.error}")
        if not reply["ok"]:
            return InspectResult(False, {}, str(reply.get("error")))
        return InspectResult(True, reply.get("hooks", {}), None, reply.get("functions", []))

    def seccomp(self) -> list[bool]:
        """Whether each live worker reported its seccomp filter installed."""
        return [slot.seccomp is True for slot in self._slots if slot.alive]

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [slot.proc.pid for slot in self._slots if slot.proc is not None and slot.alive]
