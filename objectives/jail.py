"""A jail for a script trial: bubblewrap around the command, so code a model wrote (or any trial,
with --jail) runs with no network, a read-only view of the system, and write access only to its
own scratch directory.

What the jailed command sees:
  - `/` read-only; its scratch directory (the trial's copy of the project) read-write;
  - a fresh /tmp and a fresh, empty $HOME (your ssh keys, cloud credentials and shell history
    are not there), with the toolchains on $PATH that live in $HOME (~/.pyenv, ~/.local, a
    virtual environment) and the files the trial links put back read-only;
  - no network at all (a new network namespace has only a loopback of its own);
  - its own PID namespace: when the command exits, everything it started is killed;
  - no environment variable that looks like a secret (*KEY*, *TOKEN*, *SECRET*, *PASSWORD*).
It does not stop a command from using all the CPU or memory it is given (the timeout and the OOM
killer do), nor reading what `/` shows to every user of the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or pass --no-jail"


class JailUnavailable(ValueError):
    """No way to jail a trial on this machine; the message says what to install."""


@cache
def bwrap() -> str:
    """The bubblewrap binary, checked to work here (a kernel may forbid its namespaces)."""
    path = shutil.which("bwrap")
    if path is None:
        raise JailUnavailable(f"a jailed trial needs bubblewrap, not found on PATH: {INSTALL_HINT}")
    probe = subprocess.run(
        [path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1:] or ["no reason given"]
        raise JailUnavailable(
            f"bubblewrap cannot create namespaces here ({reason[0]}): allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1), or pass --no-jail"
        )
    return path


def check_jail() -> None:
    """Raise JailUnavailable now, before a run starts, when trials could not be jailed."""
    bwrap()


def jailed_env(env: dict[str, str], scratch: Path) -> dict[str, str]:
    """The environment without secrets, with HOME and TMPDIR inside the jail."""
    kept = {k: v for k, v in env.items() if not SECRET_NAME.search(k)}
    return {**kept, "HOME": str(scratch / ".home"), "TMPDIR": "/tmp"}


def visible_again(env: dict[str, str], extra: list[Path]) -> list[Path]:
    """What the jail shows read-only although it lies under a hidden directory: the toolchain
    directories of $PATH entries in $HOME, this Python's prefixes, and extra (linked files)."""
    home = Path(os.path.expanduser("~")).resolve()
    wanted: list[Path] = []
    for entry in env.get("PATH", "").split(os.pathsep):
        path = Path(entry).resolve() if entry else None
        if path is not None and path.is_relative_to(home) and path != home:
            wanted.append(home / path.relative_to(home).parts[0])  # ~/.pyenv, not ~/.pyenv/shims
    for prefix in {sys.prefix, sys.base_prefix, os.path.dirname(sys.executable)}:
        path = Path(prefix).resolve()
        if path.is_relative_to(home) and path != home:
            wanted.append(home / path.relative_to(home).parts[0])
    wanted += [p.resolve() for p in extra]
    out: list[Path] = []
    for path in wanted:
        if path.exists() and path not in out:
            out.append(path)
    return out


def jail_argv(argv: list[str], scratch: Path, cwd: Path, env: dict[str, str],
              linked: list[Path]) -> list[str]:  # fmt: skip
    """argv wrapped in bubblewrap: see the module docstring for what the command then sees."""
    home = Path(os.path.expanduser("~")).resolve()
    scratch = scratch.resolve()
    (scratch / ".home").mkdir(exist_ok=True)
    wrapped = [
        bwrap(),
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--tmpfs", str(home),
    ]  # fmt: skip
    for path in visible_again(env, linked):
        wrapped += ["--ro-bind", str(path), str(path)]
    wrapped += [
        "--bind", str(scratch), str(scratch),
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup: no network, its own process tree
        "--die-with-parent",
        "--new-session",
        "--chdir", str(cwd),
        "--",
        *argv,
    ]  # fmt: skip
    return wrapped
