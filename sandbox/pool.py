"""A pool of sandbox worker processes that run mechanism hooks with a wall-clock timeout.

Mechanism faults never raise here: every call returns a CallResult whose outcome says what
happened. A worker that overruns, dies, writes garbage or answers too much is killed (its
whole process group) and replaced on next use. A worker holds one mechanism for its life:
a call for another mechanism goes to a worker that holds it, or to a fresh process, so no
mechanism ever sees interpreter state another one left. Workers start with address-space
randomisation off, so object addresses (which reprs show) are the same on every replay.
"""

from __future__ import annotations

import asyncio
import ctypes
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
LOAD_TIMEOUT_S = 10.0  # compiling and running a module body: its own limit, not a hook's
CLOSE_GRACE_S = 1.0
ADDR_NO_RANDOMIZE = 0x0040000
REQUIRE_ENV = "BILEVEL_REQUIRE_CONFINEMENT"

log = logging.getLogger("bilevel.sandbox")
_warned: set[str] = set()  # once per process, not per worker: every respawn would repeat it


class ConfinementError(RuntimeError):
    """--require-confinement, and this machine cannot confine a worker (the line says why)."""


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


def missing_confinement(ready: dict[str, Any]) -> str | None:
    """What an OS layer the worker reported missing, or None when both hold."""
    missing = [n for n, ok in (("seccomp", ready.get("seccomp") is True),
                               ("Landlock", bool(ready.get("landlock")))) if not ok]  # fmt: skip
    if not missing:
        return None
    return f"{' and '.join(missing)} unavailable ({ready.get('why') or 'not reported'})"


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning(
            "sandbox workers are not fully confined: %s; the policy, rlimits and timeouts "
            "still apply (--require-confinement refuses to run so)",
            what,
        )


def _worker_preexec() -> None:
    """In the forked child before exec: no address-space randomisation, so a mechanism that
    prints an object's address (repr, str) sees the same one on every replay."""
    try:
        libc = ctypes.CDLL(None)
        current = libc.personality(0xFFFFFFFF)
        if current != -1:
            libc.personality(current | ADDR_NO_RANDOMIZE)
    except (OSError, AttributeError):
        pass


class _Worker:
    """One worker of the pool; proc is None until first use or after a kill."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.mechanism: str | None = None  # hash of the one mechanism this process loaded
        self.loaded: dict[str, Any] | None = None  # the worker's reply to that load
        self.calls = 0
        self.used = 0  # when it last served (pool call counter), to evict the least recent
        self.ready: dict[str, Any] | None = None  # the ready line; None until started

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
        load_timeout_s: float = LOAD_TIMEOUT_S,
        require_confinement: bool | None = None,
        worker_args: tuple[str, ...] = (),
    ) -> None:
        self.size = max(1, workers)
        self.timeout_s = timeout_s
        self.max_result_bytes = max_result_bytes
        self.recycle_after = recycle_after
        self.load_timeout_s = load_timeout_s
        # None: $BILEVEL_REQUIRE_CONFINEMENT (what `--require-confinement` sets), so every
        # pool of the process, Studio's and a batch's included, follows the one flag.
        if require_confinement is None:
            require_confinement = os.environ.get(REQUIRE_ENV, "") not in ("", "0")
        self.require_confinement = require_confinement
        self.worker_args = worker_args  # tests only (e.g. the worker's --unrestricted-test)
        self._workers = [_Worker(i) for i in range(self.size)]
        self._idle: list[_Worker] | None = None
        self._idle_changed: asyncio.Condition | None = None
        self._served = 0
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

    def _idle_list(self) -> list[_Worker]:
        if self._idle is None:
            self._idle = list(self._workers)
            self._idle_changed = asyncio.Condition()
        return self._idle

    async def _acquire(self, digest: str) -> _Worker:
        """An idle worker for this mechanism: one that holds it, else a fresh one, else the
        least recently used (which will be replaced by a fresh process). Deterministic for
        calls made one at a time."""
        idle = self._idle_list()
        assert self._idle_changed is not None
        async with self._idle_changed:
            await self._idle_changed.wait_for(lambda: bool(idle))
            worker = (
                next((w for w in idle if w.alive and w.mechanism == digest), None)
                or next((w for w in idle if w.mechanism is None), None)
                or min(idle, key=lambda w: w.used)
            )
            idle.remove(worker)
        self._served += 1
        worker.used = self._served
        return worker

    async def _release(self, worker: _Worker) -> None:
        idle = self._idle_list()
        assert self._idle_changed is not None
        async with self._idle_changed:
            idle.append(worker)
            idle.sort(key=lambda w: w.index)
            self._idle_changed.notify()

    async def start(self) -> None:
        """Start every worker now instead of on first use; RuntimeError if they cannot start
        (ConfinementError with --require-confinement on a machine that cannot confine)."""
        idle = self._idle_list()
        assert self._idle_changed is not None
        async with self._idle_changed:  # out of the idle list while they start: a call made
            starting = [w for w in idle if not w.alive]  # meanwhile must not read their pipes
            for w in starting:
                idle.remove(w)
        try:
            await asyncio.gather(*(self._spawn(w) for w in starting))
        except _Fault as fault:
            if fault.outcome == "confinement":
                raise ConfinementError(fault.error) from None
            raise RuntimeError(fault.error) from None
        finally:
            for w in starting:
                await self._release(w)

    async def close(self) -> None:
        """Stop every worker and wait for it; no process outlives this call."""
        self._closed = True
        await asyncio.gather(*(self._stop(worker) for worker in self._workers))
        self._finalizer()

    async def _stop(self, worker: _Worker) -> None:
        proc, worker.proc = worker.proc, None
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

    async def _kill(self, worker: _Worker) -> None:
        proc, worker.proc = worker.proc, None
        worker.mechanism, worker.loaded = None, None
        if proc is not None:
            await self._reap(proc)

    async def _spawn(self, worker: _Worker) -> None:
        if self._closed:
            raise _Fault("crash", "sandbox pool is closed")
        if worker.proc is not None:
            await self._kill(worker)
        proc = await asyncio.create_subprocess_exec(
            # -P: do not put the cwd on sys.path, so nothing there can shadow our modules.
            # The pid is padded so that every worker's start-up allocates the same sizes.
            sys.executable, "-P", "-m", "bilevel.sandbox.worker", f"{os.getpid():010d}",
            *self.worker_args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_worker_env(),
            cwd="/",
            start_new_session=True,
            preexec_fn=_worker_preexec,
            limit=self.max_result_bytes + 1,
        )  # fmt: skip
        self._pids.add(proc.pid)
        worker.proc, worker.mechanism, worker.loaded, worker.calls = proc, None, None, 0
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await proc.stdout.readline()
        except TimeoutError:
            line = b""
        ready = _parse_ready(line)
        if ready is None:
            await self._kill(worker)
            err = await proc.stderr.read() if proc.stderr is not None else b""
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no ready line"]
            raise _Fault("crash", f"sandbox worker failed to start: {last[0]}")
        worker.ready = ready
        missing = missing_confinement(ready)
        if missing is not None:
            if self.require_confinement:
                await self._kill(worker)
                raise _Fault(
                    "confinement",
                    f"--require-confinement: sandbox workers cannot be confined here: {missing}",
                )
            _warn_once(missing)

    # --- requests ------------------------------------------------------------------------

    def _hash(self, source: str) -> str:
        digest = self._hashes.get(source)
        if digest is None:
            if len(self._hashes) > 256:
                self._hashes.clear()
            digest = hashlib.blake2b(source.encode(), digest_size=16).hexdigest()
            self._hashes[source] = digest
        return digest

    async def _roundtrip(self, worker: _Worker, payload: bytes, timeout: float) -> dict[str, Any]:
        """Send one request line, return the parsed reply, or raise _Fault (worker killed)."""
        proc = worker.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        worker.calls += 1
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
                await asyncio.shield(self._kill(worker))

    async def _ensure_loaded(self, worker: _Worker, digest: str, source: str) -> dict[str, Any]:
        """A live worker holding exactly this mechanism (a fresh process if it held another);
        the worker's reply to loading it. Loading has its own time limit."""
        stale = worker.calls >= self.recycle_after or worker.mechanism not in (None, digest)
        if not worker.alive or stale:
            await self._spawn(worker)
        if worker.mechanism == digest and worker.loaded is not None:
            return worker.loaded
        body = {"op": "load", "hash": digest, "source": source}
        payload = json.dumps(body, separators=(",", ":")).encode() + b"\n"
        try:
            reply = await self._roundtrip(worker, payload, self.load_timeout_s)
        except _Fault as fault:
            raise _Fault(fault.outcome, f"loading the mechanism: {fault.error}") from None
        worker.mechanism, worker.loaded = digest, reply
        return reply

    async def _run(
        self, source: str, req: dict[str, Any] | None, timeout_s: float | None
    ) -> tuple[dict[str, Any], float]:
        """Load source in a worker, then (unless req is None) send req; (reply, call ms)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        digest = self._hash(source)
        body = b""
        if req is not None:
            req["hash"] = digest
            try:  # serialise before taking a worker: bad arguments are the caller's bug
                body = json.dumps(req, separators=(",", ":")).encode() + b"\n"
            except (TypeError, ValueError) as exc:
                raise TypeError(f"sandbox arguments must be JSON data: {exc}") from exc
        worker = await self._acquire(digest)
        start = time.perf_counter()
        try:
            for attempt in range(2):
                fresh = not worker.alive
                try:
                    loaded = await self._ensure_loaded(worker, digest, source)
                    if req is None or not loaded.get("ok"):
                        return loaded, 0.0
                    start = time.perf_counter()  # loading is not the hook's time
                    reply = await self._roundtrip(worker, body, timeout)
                    return reply, (time.perf_counter() - start) * 1000
                except _Fault as fault:
                    # A worker that died between calls (killed from outside, CPU limit reached)
                    # takes the first attempt down with it; that is not this call's fault, so a
                    # crash on a worker that had served before is retried once on a fresh one.
                    if fault.outcome != "crash" or attempt or fresh:
                        fault.ms = (time.perf_counter() - start) * 1000
                        raise
            raise AssertionError("unreachable")
        finally:
            await self._release(worker)

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
        kind = reply.get("kind")
        outcome = kind if kind in ("policy", "too_large") else "error"
        return CallResult(outcome, None, None, str(reply.get("error")), ms)

    async def inspect(self, source: str, timeout_s: float | None = None) -> InspectResult:
        """Which hooks source defines (with parameter names, read from their code objects)
        and all its top-level functions."""
        try:
            reply, _ = await self._run(source, None, timeout_s)
        except _Fault as fault:
            return InspectResult(False, {}, f"{fault.outcome}: {fault.error}")
        if not reply["ok"]:
            return InspectResult(False, {}, str(reply.get("error")))
        return InspectResult(True, reply.get("hooks", {}), None, reply.get("functions", []))

    async def raw(self, code: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """Tests only (the worker must run with --unrestricted-test): run code in a fresh,
        confined worker with no policy at all; the worker's reply."""
        digest = self._hash(f"raw:{code}")
        worker = await self._acquire(digest)
        try:
            await self._spawn(worker)
            payload = json.dumps({"op": "raw", "code": code}).encode() + b"\n"
            try:
                return await self._roundtrip(worker, payload, timeout_s)
            except _Fault as fault:
                return {"ok": False, "kind": fault.outcome, "error": fault.error}
        finally:
            await self._kill(worker)
            await self._release(worker)

    def confinement(self) -> list[dict[str, Any]]:
        """Each live worker's ready line: seccomp (bool), landlock (ABI, 0: none), why."""
        return [dict(worker.ready or {}) for worker in self._workers if worker.alive]

    def seccomp(self) -> list[bool]:
        """Whether each live worker reported its seccomp filter installed."""
        return [(w.ready or {}).get("seccomp") is True for w in self._workers if w.alive]

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.proc.pid for w in self._workers if w.proc is not None and w.alive]
