"""The seccomp layer: the filter's verdicts on both architectures, and a real confined process."""

from __future__ import annotations

import errno
import json
import logging
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bilevel.sandbox import pool as pool_module
from bilevel.sandbox import seccomp
from bilevel.sandbox.pool import SandboxPool

ON_LINUX = sys.platform.startswith("linux")
ARCH, WHY_NOT = seccomp.current_arch()
needs_seccomp = pytest.mark.skipif(ARCH is None, reason=WHY_NOT or "no seccomp here")

ALLOW = seccomp.RET_ALLOW
EPERM = seccomp.RET_ERRNO | errno.EPERM
ENOSYS = seccomp.RET_ERRNO | errno.ENOSYS
CLONE_THREAD_FLAGS = 0x003D0F00  # what glibc's pthread_create passes
FORK_FLAGS = 0x01200011  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
READ = {"x86_64": 0, "aarch64": 63}


def _run_bpf(code: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """A minimal classic-BPF interpreter for the opcodes the filter uses."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack_from("=HBBI", code, i) for i in range(0, len(code), 8)]
    pc, acc = 0, 0
    for _ in range(len(insns)):  # classic BPF only jumps forward
        op, jt, jf, k = insns[pc]
        if op == seccomp.RET_K:
            return k
        if op == seccomp.LD_W_ABS:
            acc, pc = struct.unpack_from("=I", data, k)[0], pc + 1
            continue
        cond = {seccomp.JEQ_K: acc == k, seccomp.JGE_K: acc >= k, seccomp.JSET_K: bool(acc & k)}
        pc += 1 + (jt if cond[op] else jf)
    raise AssertionError("program fell off its end")


@pytest.mark.parametrize("name", ["x86_64", "aarch64"])
def test_filter_verdicts(name: str) -> None:
    arch = seccomp.ARCHES[name]
    code = seccomp.build_program(arch, own_pid=4242)
    nr = arch.syscalls

    def verdict(syscall: str | int, arg0: int = 0, audit: int = arch.audit) -> int:
        number = nr[syscall] if isinstance(syscall, str) else syscall
        return _run_bpf(code, number, audit, arg0)

    for denied in seccomp.DENIED:
        if denied in nr:
            assert verdict(denied) == EPERM, denied
    assert ("fork" in nr) == (name == "x86_64")
    assert verdict("clone", CLONE_THREAD_FLAGS) == ALLOW
    assert verdict("clone", FORK_FLAGS) == EPERM
    assert verdict("clone", CLONE_THREAD_FLAGS | 0x10000000) == EPERM  # + CLONE_NEWUSER
    assert verdict("clone3") == ENOSYS
    for own in seccomp.OWN_PID_ONLY:
        assert verdict(own, 4242) == ALLOW
        assert verdict(own, 1) == EPERM
    assert verdict(READ[name]) == ALLOW
    assert verdict("seccomp") == ALLOW  # more filters can only narrow this one
    assert verdict(READ[name], audit=0x40000003) == ENOSYS  # another ABI, e.g. i386
    if arch.x32:
        assert verdict(nr["socket"] | seccomp.X32_SYSCALL_BIT) == ENOSYS


PROBE = r"""
import ctypes, json, mmap, os, socket, subprocess, sys, threading
from bilevel.sandbox import seccomp

status_file = open("/proc/self/status")  # opened before the filter, like the worker's pipes
early = open(sys.argv[1])
out = {"install": seccomp.install()}
arch, _ = seccomp.current_arch()
libc = ctypes.CDLL(None, use_errno=True)

def probe(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as exc:
        out[name] = type(exc).__name__ + ":" + errno_name(exc.errno)
    except BaseException as exc:
        out[name] = type(exc).__name__

def errno_name(n):
    import errno
    return errno.errorcode.get(n, str(n))

def fork():
    if os.fork() == 0:
        os._exit(0)

def raw(name, *args):
    if libc.syscall(arch.syscalls[name], *args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))

def thread():
    seen = []
    t = threading.Thread(target=seen.append, args=(1,))
    t.start()
    t.join()
    assert seen == [1]

probe("socket", socket.socket)
probe("socketpair", socket.socketpair)
probe("fork", fork)
probe("subprocess", lambda: subprocess.run(["true"], check=True))
probe("kill_parent", lambda: os.kill(os.getppid(), 0))
probe("tgkill_parent", lambda: raw("tgkill", os.getppid(), os.getppid(), 0))
probe("tgkill_self", lambda: raw("tgkill", os.getpid(), os.getpid(), 0))
probe("thread", thread)
probe("open", lambda: open(sys.argv[1]).read())
probe("read_open_fd", lambda: early.read() == "hello" or 1 / 0)
probe("unlink", lambda: os.unlink(sys.argv[1]))
probe("rename", lambda: os.rename(sys.argv[1], sys.argv[1] + ".x"))
probe("mmap_file", lambda: mmap.mmap(early.fileno(), 0, mmap.MAP_SHARED))
probe("mmap_anon", lambda: mmap.mmap(-1, 4096))
out["status"] = [l for l in status_file if l.startswith("Seccomp:")][0].split()[1]
print(json.dumps(out), flush=True)
probe("execv", lambda: os.execv(sys.executable, [sys.executable, "-c", "print('escaped')"]))
print(json.dumps({"execv": out["execv"]}), flush=True)
"""


@needs_seccomp
def test_confined_process(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("hello")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(allowed)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout
    out = {**json.loads(lines[0]), **json.loads(lines[1])}
    assert out.pop("install") == [True, ""]
    denied = "PermissionError:EPERM"
    assert out == {
        "socket": denied,
        "socketpair": denied,
        "fork": denied,
        "subprocess": denied,
        "kill_parent": denied,
        "tgkill_parent": denied,
        "tgkill_self": "ok",
        "thread": "ok",
        "open": denied,
        "read_open_fd": "ok",
        "unlink": denied,
        "rename": denied,
        "mmap_file": denied,
        "mmap_anon": "ok",
        "status": "2",  # SECCOMP_MODE_FILTER
        "execv": denied,
    }


@needs_seccomp
async def test_pool_worker_reports_seccomp() -> None:
    async with SandboxPool(workers=1) as pool:
        assert pool.seccomp() == [True]
        status = Path(f"/proc/{pool.pids()[0]}/status").read_text()
        assert "Seccomp:\t2" in status
        source = "def advise(ctx):\n    return 'fine'\n"
        assert (await pool.call(source, "advise", [{}])).value == "fine"


def test_no_seccomp_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pool_module, "_warned", set())
    missing = pool_module.missing_confinement({"seccomp": False, "landlock": 7, "why": "old"})
    with caplog.at_level(logging.WARNING, logger="bilevel.sandbox"):
        for _ in range(3):
            pool_module._warn_once(missing)
    assert [r.getMessage() for r in caplog.records] == [
        "sandbox workers are not fully confined: seccomp unavailable (old); the policy, "
        "rlimits and timeouts still apply (--require-confinement refuses to run so)"
    ]


def test_ready_line_parsing() -> None:
    parse = pool_module._parse_ready
    assert parse(b'{"ok":true,"ready":true,"seccomp":true}\n') == {
        "ok": True,
        "ready": True,
        "seccomp": True,
    }
    assert parse(b'{"ok":true,"ready":true,"seccomp":false,"why":"x"}\n')["why"] == "x"
    for bad in (b"", b"garbage\n", b"[1]\n", b'{"ok":true}\n'):
        assert parse(bad) is None


@pytest.mark.skipif(ON_LINUX, reason="the no-filter path is for other systems")
def test_install_declines_off_linux() -> None:
    ok, why = seccomp.install()
    assert not ok and why


def test_unsupported_arch_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp.platform, "machine", lambda: "riscv64")
    monkeypatch.setattr(seccomp.sys, "platform", "linux")
    monkeypatch.setattr(seccomp.sys, "byteorder", "little")
    assert seccomp.current_arch() == (None, "no syscall table for architecture 'riscv64'")
    assert seccomp.install() == (False, "no syscall table for architecture 'riscv64'")
