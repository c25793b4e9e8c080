"""Landlock for sandbox workers: after start-up, no filesystem access at all.

The ruleset handles every filesystem right the running kernel knows and grants none, so from
`restrict_self` on the process cannot open, create, remove, rename, truncate or list anything,
in /proc included (so the parent's environ and mem are out of reach). On ABI >= 4 it also
handles TCP bind/connect and on ABI >= 6 it scopes abstract UNIX sockets and signals to the
worker itself. Files opened before the call (the protocol pipes, /dev/null) stay usable.

Written against the kernel's UAPI (linux/landlock.h); it needs no library, only ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys

# Syscall numbers are the same on x86_64 and aarch64 (the generic table).
SYS_CREATE_RULESET, SYS_RESTRICT_SELF = 444, 446
CREATE_RULESET_VERSION = 1
PR_SET_NO_NEW_PRIVS = 38

# handled_access_fs bits by the ABI that introduced them.
FS_RIGHTS_BY_ABI = {
    1: (1 << 13) - 1,  # EXECUTE .. MAKE_SYM
    2: 1 << 13,  # REFER
    3: 1 << 14,  # TRUNCATE
    5: 1 << 15,  # IOCTL_DEV
}
NET_RIGHTS = (1 << 0) | (1 << 1)  # BIND_TCP, CONNECT_TCP (ABI 4)
SCOPES = (1 << 0) | (1 << 1)  # ABSTRACT_UNIX_SOCKET, SIGNAL (ABI 6)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> tuple[int, str]:
    """The kernel's Landlock ABI (0 if none) and, when 0, why."""
    if not sys.platform.startswith("linux"):
        return 0, f"Landlock needs Linux (this is {sys.platform})"
    if platform.machine() not in ("x86_64", "aarch64"):
        return 0, f"no Landlock syscall numbers for {platform.machine()!r}"
    try:
        libc = _libc()
    except OSError as exc:
        return 0, f"no libc: {exc}"
    abi = libc.syscall(
        ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
        ctypes.c_uint32(CREATE_RULESET_VERSION),
    )  # fmt: skip
    if abi < 0:
        err = ctypes.get_errno()
        if err == errno.EOPNOTSUPP:
            return 0, "Landlock is built into the kernel but disabled at boot (lsm=)"
        return 0, f"Landlock unavailable: {os.strerror(err)}"
    return int(abi), ""


def ruleset_for(abi: int) -> _RulesetAttr:
    fs = 0
    for since, bits in FS_RIGHTS_BY_ABI.items():
        if abi >= since:
            fs |= bits
    return _RulesetAttr(fs, NET_RIGHTS if abi >= 4 else 0, SCOPES if abi >= 6 else 0)


def restrict_self() -> tuple[int, str]:
    """Deny this process (and every thread and child it makes) all filesystem access.

    Returns (abi, why-not): abi 0 means nothing was restricted, and why says so. Never raises.
    """
    abi, why = abi_version()
    if abi == 0:
        return 0, why
    attr = ruleset_for(abi)
    # Older kernels reject a struct larger than they know: pass only the fields of this ABI.
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    fd = libc.syscall(
        ctypes.c_long(SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )  # fmt: skip
    if fd < 0:
        return 0, f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}"
    try:
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return 0, f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}"
        rc = libc.syscall(ctypes.c_long(SYS_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0))
        if rc != 0:
            return 0, f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(fd)
    return abi, ""
