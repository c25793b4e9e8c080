"""A seccomp deny-list filter for sandbox workers: classic BPF, installed with ctypes.

This is the layer under the policy: if a mechanism ever escaped RestrictedPython and reached
raw syscalls, it still could not open a socket, start a process, signal or trace another
process, or change its mount and namespace view. It is a deny list, not an allow list: the
worker keeps every other syscall (reads, mmap, futex, threads...), so the kernel attack surface
is not minimised, only the escape routes that matter most are closed.

Layout of the data the filter sees (struct seccomp_data, little-endian):
  offset 0: int nr; offset 4: u32 arch; offset 8: u64 ip; offset 16 + 8*i: u64 args[i].
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys
from dataclasses import dataclass, field

# classic BPF opcodes (linux/bpf_common.h)
LD_W_ABS = 0x20  # A = u32 at offset k of seccomp_data
JEQ_K = 0x15  # jump if A == k
JGE_K = 0x35  # jump if A >= k
JSET_K = 0x45  # jump if A & k
RET_K = 0x06  # return k

RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000  # low 16 bits: the errno the syscall fails with

OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16

CLONE_THREAD = 0x00010000
# New namespaces are refused even for threads (unshare and setns are denied outright).
CLONE_NEW_NS_MASK = (
    0x00020000  # NEWNS
    | 0x02000000  # NEWCGROUP
    | 0x04000000  # NEWUTS
    | 0x08000000  # NEWIPC
    | 0x10000000  # NEWUSER
    | 0x20000000  # NEWPID
    | 0x40000000  # NEWNET
)
X32_SYSCALL_BIT = 0x40000000

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 0
SECCOMP_FILTER_FLAG_TSYNC = 1

# Failing with EPERM (not killing) lets Python raise PermissionError, which the worker turns
# into an ordinary hook error, so the pool sees an `error` outcome with a readable reason.
DENIED = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    "execve", "execveat", "fork", "vfork", "ptrace", "mount", "umount2", "pivot_root",
    "chroot", "kill", "setns", "unshare", "process_vm_readv", "process_vm_writev",
    # Process-directed signals by other names than kill(2).
    "rt_sigqueueinfo", "pidfd_send_signal",
    # Take another process's file descriptor: ptrace by another name.
    "pidfd_getfd",
    # io_uring runs socket/connect/openat as ring operations that seccomp never sees.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip
# The filesystem, by path or by a new descriptor: after start-up a worker opens, creates,
# removes, renames and truncates nothing (Landlock says the same one layer down; this holds
# where the kernel has no Landlock). mmap of a file is refused separately (MMAP_FILE).
FILE_DENIED = (
    "open", "openat", "openat2", "creat", "unlink", "unlinkat", "rename", "renameat",
    "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat", "symlink", "symlinkat",
    "truncate", "ftruncate", "fallocate", "memfd_create", "memfd_secret", "mknod", "mknodat",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "name_to_handle_at", "open_by_handle_at",
)  # fmt: skip
MAP_ANONYMOUS = 0x20
OFF_ARG3 = OFF_ARG0 + 3 * 8
# Thread-directed signals stay (Python's signal.raise_signal, pthread_kill, abort), but only
# aimed at this process: arg0 is the target tgid (tgkill) or tid (tkill, whose main thread's
# tid is the pid), so another process's id fails with EPERM.
OWN_PID_ONLY = ("tgkill", "tkill", "rt_tgsigqueueinfo")


@dataclass(frozen=True)
class Arch:
    audit: int  # AUDIT_ARCH_* value in seccomp_data.arch
    syscalls: dict[str, int] = field(repr=False)
    x32: bool = False  # x86_64 also accepts x32-ABI numbers (bit 30 set) under the same arch


ARCHES: dict[str, Arch] = {
    "x86_64": Arch(
        0xC000003E,
        {
            "socket": 41, "socketpair": 53, "connect": 42, "bind": 49, "listen": 50,
            "accept": 43, "accept4": 288, "execve": 59, "execveat": 322, "fork": 57,
            "vfork": 58, "clone": 56, "clone3": 435, "ptrace": 101, "mount": 165,
            "umount2": 166, "pivot_root": 155, "chroot": 161, "kill": 62, "tkill": 200,
            "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "setns": 308,
            "unshare": 272, "process_vm_readv": 310, "process_vm_writev": 311,
            "pidfd_send_signal": 424, "pidfd_getfd": 438, "io_uring_setup": 425,
            "io_uring_enter": 426, "io_uring_register": 427, "seccomp": 317,
            "open": 2, "openat": 257, "openat2": 437, "creat": 85, "unlink": 87,
            "unlinkat": 263, "rename": 82, "renameat": 264, "renameat2": 316, "mkdir": 83,
            "mkdirat": 258, "rmdir": 84, "link": 86, "linkat": 265, "symlink": 88,
            "symlinkat": 266, "truncate": 76, "ftruncate": 77, "fallocate": 285,
            "memfd_create": 319, "memfd_secret": 447, "mknod": 133, "mknodat": 259,
            "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92,
            "fchown": 93, "lchown": 94, "fchownat": 260, "name_to_handle_at": 303,
            "open_by_handle_at": 304, "mmap": 9,
        },
        x32=True,
    ),
    "aarch64": Arch(
        0xC00000B7,
        {
            "socket": 198, "socketpair": 199, "connect": 203, "bind": 200, "listen": 201,
            "accept": 202, "accept4": 242, "execve": 221, "execveat": 281, "clone": 220,
            "clone3": 435, "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41,
            "chroot": 51, "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
            "rt_tgsigqueueinfo": 240, "setns": 268, "unshare": 97, "process_vm_readv": 270,
            "process_vm_writev": 271, "pidfd_send_signal": 424, "pidfd_getfd": 438,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "seccomp": 277, "openat": 56, "openat2": 437, "unlinkat": 35, "renameat": 38,
            "renameat2": 276, "mkdirat": 34, "linkat": 37, "symlinkat": 36, "truncate": 45,
            "ftruncate": 46, "fallocate": 47, "memfd_create": 279, "memfd_secret": 447,
            "mknodat": 33, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "fchown": 55,
            "fchownat": 54, "name_to_handle_at": 264, "open_by_handle_at": 265, "mmap": 222,
        },
    ),
}  # fmt: skip

Insn = tuple[int, int | str, int | str, int]  # code, jump-true, jump-false, k (labels allowed)


def _assemble(program: list[Insn | str]) -> bytes:
    """Resolve label jumps to relative offsets and pack as struct sock_filter[]."""
    labels: dict[str, int] = {}
    insns: list[Insn] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(insns):
        jumps = [labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= j <= 255 for j in jumps):
            raise ValueError(f"jump out of range at instruction {i}")
        out += struct.pack("=HBBI", code, jumps[0], jumps[1], k & 0xFFFFFFFF)
    return bytes(out)


def build_program(arch: Arch, own_pid: int, files: bool = True) -> bytes:
    """The filter for arch as packed sock_filter instructions; own_pid is the allowed tgid.
    files: also deny the filesystem (FILE_DENIED, and mmap of anything but anonymous memory)."""
    nr = arch.syscalls
    enosys = RET_ERRNO | errno.ENOSYS
    prog: list[Insn | str] = [
        (LD_W_ABS, 0, 0, OFF_ARCH),
        # Another ABI (e.g. int 0x80 on x86_64) has other numbers: refuse all of it.
        (JEQ_K, 0, "enosys", arch.audit),
        (LD_W_ABS, 0, 0, OFF_NR),
    ]
    if arch.x32:
        prog.append((JGE_K, "enosys", 0, X32_SYSCALL_BIT))
    denied = DENIED + (FILE_DENIED if files else ())
    prog += [(JEQ_K, "eperm", 0, nr[name]) for name in denied if name in nr]
    if files:
        prog.append((JEQ_K, "mmap", 0, nr["mmap"]))
    # ENOSYS, not EPERM: glibc then falls back to clone(2), which the next rule can inspect
    # (clone3 passes its flags in memory, out of the filter's reach).
    prog.append((JEQ_K, "enosys", 0, nr["clone3"]))
    prog.append((JEQ_K, "clone", 0, nr["clone"]))
    prog += [(JEQ_K, "own_pid", 0, nr[name]) for name in OWN_PID_ONLY]
    prog += [
        (RET_K, 0, 0, RET_ALLOW),
        "clone",  # threads only: fork, vfork and posix_spawn all go through clone
        (LD_W_ABS, 0, 0, OFF_ARG0),
        (JSET_K, "eperm", 0, CLONE_NEW_NS_MASK),
        (JSET_K, "allow", "eperm", CLONE_THREAD),
        "own_pid",
        (LD_W_ABS, 0, 0, OFF_ARG0),
        (JEQ_K, "allow", "eperm", own_pid),
        "mmap",  # anonymous memory only: a shared map of a file would write past RLIMIT_FSIZE
        (LD_W_ABS, 0, 0, OFF_ARG3),
        (JSET_K, "allow", "eperm", MAP_ANONYMOUS),
        "allow",
        (RET_K, 0, 0, RET_ALLOW),
        "eperm",
        (RET_K, 0, 0, RET_ERRNO | errno.EPERM),
        "enosys",
        (RET_K, 0, 0, enosys),
    ]
    return _assemble(prog)


def current_arch() -> tuple[Arch | None, str]:
    """This machine's Arch, or None and the reason no filter can be built here."""
    if not sys.platform.startswith("linux"):
        return None, f"seccomp needs Linux (this is {sys.platform})"
    if sys.byteorder != "little":
        return None, "seccomp filter written for little-endian Linux only"
    machine = platform.machine()
    arch = ARCHES.get(machine)
    if arch is None:
        return None, f"no syscall table for architecture {machine!r}"
    return arch, ""


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install() -> tuple[bool, str]:
    """Confine this process (and its threads) with the filter; (ok, why-not).

    Never raises: a worker without seccomp still has the policy, rlimits and timeouts, and
    says so in its ready line so the pool can warn.
    """
    arch, why = current_arch()
    if arch is None:
        return False, why
    code = build_program(arch, os.getpid())
    prog = _SockFprog(len(code) // 8, code)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # Required for an unprivileged filter; also stops setuid binaries gaining privileges.
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False, f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}"
        # seccomp(2) with TSYNC puts every thread under the filter, in case any exist already.
        syscall = libc.syscall
        syscall.restype = ctypes.c_long
        rc = syscall(
            ctypes.c_long(arch.syscalls["seccomp"]),
            ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
            ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC),
            ctypes.byref(prog),
        )
        if rc != 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL):
            # Kernels before 3.17 have only the prctl form (no TSYNC).
            rc = libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)
        if rc > 0:  # TSYNC names the thread it could not move under the filter
            return False, f"seccomp filter not applied to thread {rc}"
        if rc != 0:
            return False, f"seccomp filter refused: {os.strerror(ctypes.get_errno())}"
    except (OSError, AttributeError) as exc:
        return False, f"seccomp unavailable: {exc}"
    return True, ""
