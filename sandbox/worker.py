"""Sandbox worker: runs mechanism hooks for the parent pool, one JSON line in, one JSON line out.

Run as `python -m bilevel.sandbox.worker PARENT_PID`. The process confines itself before it
reads the first request (rlimits, Landlock: no filesystem at all, seccomp), says
`{"ok": true, "ready": true, "seccomp": bool, "landlock": abi, "why": str}` (why only when a
layer is missing), then serves until stdin closes.

A worker holds one mechanism for its whole life: a fresh process per mechanism, so nothing one
mechanism does to the interpreter (caches, registries, module state) is seen by another.

Requests and replies (one line of JSON each):
  {"op": "load", "hash": H, "source": S}
      -> {"ok": true, "hooks": {name: [params]}, "functions": [names]}
  {"op": "call", "hash": H, "hook": name, "args": [...], "seed": int}
      -> {"ok": true, "value": V, "memory": M}
  failures -> {"ok": false, "kind": "policy" | "error" | "missing" | "not_loaded", "error": str}

`--unrestricted-test` (tests only; the pool never passes it) adds {"op": "raw", "code": S}:
S runs as plain Python with real builtins, bypassing the policy on purpose, so a test can show
what the OS layers alone stop.
"""

from __future__ import annotations

import ctypes
import inspect
import json
import os
import random
import signal
import sys
import tempfile
import types
from typing import IO, Any

from bilevel.contract import HOOKS, MAX_MEMORY_BYTES, MAX_VALUE_BYTES
from bilevel.sandbox import landlock, seccomp
from bilevel.sandbox.policy import FILENAME, PolicyError, compile_mechanism, restricted_globals

MAX_ERROR_CHARS = 500
UNRESTRICTED_FLAG = "--unrestricted-test"
CO_VARARGS, CO_VARKEYWORDS = inspect.CO_VARARGS, inspect.CO_VARKEYWORDS

# Resource limits. CPU is per process lifetime, and workers are persistent (recycled by the
# pool after many calls), so it is a backstop against a runaway worker, not a per-call limit:
# the pool's wall-clock timeout is that.
LIMIT_CPU_S = 600
LIMIT_AS_BYTES = 1 << 30
LIMIT_NOFILE = 32

Module = dict[str, Any]
# The loaded entry is either an executed module namespace or the encoded failure reply for it
# (bytes, so that no name a mechanism defines can make a namespace look like a failure).
Entry = Module | bytes


# --- confinement -----------------------------------------------------------------------------


def _die_with_parent(parent_pid: int | None) -> None:
    """Ask the kernel to SIGKILL us when the parent goes, so no worker outlives its pool.

    Linux ties this to the parent *thread* that forked us; the pool forks from its event loop
    thread, which lives as long as the pool can be used.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG = 1, SIGKILL = 9
        except (OSError, AttributeError):
            pass
    # The parent may have died before prctl took effect; then nobody will ever read our output.
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)


def _claim_protocol_fds() -> tuple[IO[bytes], IO[bytes]]:
    """Keep private copies of stdin/stdout for the protocol and point fds 0-2 at /dev/null.

    Nothing a mechanism (or a stray warning) writes can then interleave with protocol lines.
    """
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    return proto_in, proto_out


def _enter_empty_dir() -> None:
    # chdir into a fresh directory and then remove it: the cwd is now a deleted directory in
    # which no file can be created, and a killed worker leaves nothing behind in /tmp.
    path = tempfile.mkdtemp(prefix="bilevel-sandbox-")
    os.chdir(path)
    os.rmdir(path)


def _set_limits() -> None:
    # With RLIMIT_FSIZE at 0 a write to a regular file raises SIGXFSZ, whose default action
    # kills the process; ignored, the write fails with EFBIG and the hook gets an error.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        import resource
    except ImportError:  # not POSIX: the pool's timeout is the only limit
        return
    limits = {
        "RLIMIT_CPU": (LIMIT_CPU_S, LIMIT_CPU_S + 10),
        "RLIMIT_FSIZE": (0, 0),
        "RLIMIT_NOFILE": (LIMIT_NOFILE, LIMIT_NOFILE),
        "RLIMIT_NPROC": (0, 0),
        "RLIMIT_AS": (LIMIT_AS_BYTES, LIMIT_AS_BYTES),
        "RLIMIT_CORE": (0, 0),
    }
    for name, (soft, hard) in limits.items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            pass  # e.g. RLIMIT_NPROC refused in some containers; the other limits still hold


def _confine() -> bytes:
    """Landlock, then the syscall filter; the ready line that reports both.

    Last, after every file the worker needs is open and every module imported: nothing the
    worker does from here on needs the filesystem or a denied syscall.
    """
    abi, why_landlock = landlock.restrict_self()
    ok, why_seccomp = seccomp.install()
    ready: dict[str, Any] = {"ok": True, "ready": True, "seccomp": ok, "landlock": abi}
    why = "; ".join(w for w in (why_landlock, why_seccomp) if w)
    if why:
        ready["why"] = why
    return _encode(ready)


# --- mechanisms ------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    """`ExcType: message (line N)`, N being the deepest line of mechanism source involved."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    if line is not None:
        text += f" (line {line})"
    return text[:MAX_ERROR_CHARS]


def _fail(kind: str, error: str) -> bytes:
    return _encode({"ok": False, "kind": kind, "error": error[:MAX_ERROR_CHARS]})


class Worker:
    def __init__(self, unrestricted: bool = False) -> None:
        self.loaded: tuple[str, Entry] | None = None
        self.unrestricted = unrestricted

    def load(self, req: dict[str, Any]) -> bytes:
        """Compile and run the module body (once: one mechanism per worker), then say which
        hooks it defines with the parameters of their real code objects."""
        key, source = req.get("hash"), req.get("source")
        if not isinstance(key, str) or not isinstance(source, str):
            return _fail("error", "ValueError: load needs a hash and a source")
        if self.loaded is None:
            self.loaded = (key, self._load(source))
        elif self.loaded[0] != key:
            return _fail("not_loaded", "this worker holds another mechanism")
        module = self.loaded[1]
        if isinstance(module, bytes):
            return module
        hooks: dict[str, list[str]] = {}
        for name in HOOKS:
            if name not in module:
                continue
            params = _code_params(module[name])
            if params is None:
                return _fail("policy", f"'{name}' must be a function defined in the mechanism")
            hooks[name] = params
        functions = [
            name
            for name, value in module.items()
            if not name.startswith("_") and isinstance(value, types.FunctionType)
        ]
        return _encode({"ok": True, "hooks": hooks, "functions": functions})

    @staticmethod
    def _load(source: str) -> Entry:
        try:
            code = compile_mechanism(source)
        except PolicyError as exc:
            return _fail("policy", str(exc))
        namespace = restricted_globals()
        random.seed(0)  # the module body runs once per worker; keep it the same in every one
        try:
            exec(code, namespace)
        except BaseException as exc:  # noqa: BLE001 - mechanism faults of any kind
            return _fail("error", "module body raised " + _one_line(exc))
        return namespace

    def call(self, req: dict[str, Any]) -> bytes:
        if self.loaded is None or self.loaded[0] != req.get("hash"):
            return _fail("not_loaded", "mechanism not loaded in this worker")
        module = self.loaded[1]
        if isinstance(module, bytes):
            return module
        hook = req.get("hook")
        func = module.get(hook) if hook in HOOKS else None
        if not callable(func):
            return _fail("missing", f"mechanism does not define {hook!r}")
        args = req.get("args") or []
        random.seed(req.get("seed", 0))
        try:
            value = func(*args)
        except BaseException as exc:  # noqa: BLE001 - includes SystemExit raised by the mechanism
            return _fail("error", _one_line(exc))
        ctx = args[-1] if args else None
        memory = ctx.get("memory") if isinstance(ctx, dict) else None
        if memory is not None and not isinstance(memory, dict):
            return _fail("error", "TypeError: ctx['memory'] must stay a dict")
        # Sizes are bounded here, before anything reaches the host's state or ledger; the
        # encoder stops as soon as a part is over its budget, so 80 MB costs no more than 64 kB.
        try:
            value_json = _encode_part(value, MAX_VALUE_BYTES, f"{hook} returned")
            memory_json = _encode_part(memory, MAX_MEMORY_BYTES, "ctx['memory'] grew")
        except _TooLarge as exc:
            return _fail("too_large", str(exc))
        except (TypeError, ValueError, RecursionError):
            part = "memory holds" if _is_json(value) else "returned"
            return _fail("error", f"TypeError: {hook} {part} non-JSON value")
        return b'{"ok":true,"value":' + value_json + b',"memory":' + memory_json + b"}\n"

    def raw(self, req: dict[str, Any]) -> bytes:
        """Tests only: run code with no policy at all; `result` comes back as text."""
        if not self.unrestricted:
            return _fail("error", "ValueError: unknown request")
        namespace: dict[str, Any] = {}
        try:
            exec(str(req.get("code", "")), namespace)  # noqa: S102 - the point of this op
        except BaseException as exc:  # noqa: BLE001
            return _fail("error", f"{type(exc).__name__}: {exc}")
        return _encode({"ok": True, "value": str(namespace.get("result"))})


def _code_params(func: Any) -> list[str] | None:
    """A hook's parameters read from its code object (what really runs), None if it is not a
    plain function compiled from the mechanism's own source (a wrapper, a builtin, a partial)."""
    if not isinstance(func, types.FunctionType):
        return None
    code = func.__code__
    if code.co_filename != FILENAME:
        return None
    names = list(code.co_varnames)
    n = code.co_argcount
    params = names[:n]
    extra = n + code.co_kwonlyargcount
    params += names[n:extra]
    if code.co_flags & CO_VARARGS:
        params.append("*" + names[extra])
        extra += 1
    if code.co_flags & CO_VARKEYWORDS:
        params.append("**" + names[extra])
    if code.co_kwonlyargcount or code.co_posonlyargcount:
        params.append("*keyword-only or positional-only parameters")
    return params


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


class _TooLarge(Exception):
    pass


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _encode_part(value: Any, limit: int, what: str) -> bytes:
    """value as JSON (ASCII), or _TooLarge once the text passes limit characters."""
    chunks, size = [], 0
    for chunk in _ENCODER.iterencode(value):
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"{what} over {limit} bytes")
        chunks.append(chunk)
    return "".join(chunks).encode()


def _encode(reply: dict[str, Any]) -> bytes:
    # ASCII output escapes every newline inside strings, so one reply is exactly one line.
    return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


def serve(proto_in: IO[bytes], proto_out: IO[bytes], unrestricted: bool = False) -> None:
    worker = Worker(unrestricted)
    handlers = {"call": worker.call, "load": worker.load, "raw": worker.raw}
    readline, write, flush = proto_in.readline, proto_out.write, proto_out.flush
    while True:
        line = readline()
        if not line:
            return  # parent closed stdin: clean exit
        try:
            req = json.loads(line)
            handler = handlers.get(req.get("op")) if isinstance(req, dict) else None
            if handler is None:
                reply = _fail("error", "ValueError: unknown request")
            else:
                reply = handler(req)
        except BaseException as exc:  # noqa: BLE001 - never die on a bad request
            reply = _fail("error", _one_line(exc))
        write(reply)
        flush()


def main() -> None:
    parent = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else None
    _die_with_parent(parent)  # first: before anything else can go wrong
    proto_in, proto_out = _claim_protocol_fds()
    _enter_empty_dir()
    _set_limits()
    unrestricted = UNRESTRICTED_FLAG in sys.argv[2:]
    if unrestricted:  # what the bypass tests call must be loaded before the filesystem closes
        import mmap  # noqa: F401
        import socket  # noqa: F401
    ready = _confine()
    proto_out.write(ready)
    proto_out.flush()
    serve(proto_in, proto_out, unrestricted=unrestricted)


if __name__ == "__main__":
    main()
