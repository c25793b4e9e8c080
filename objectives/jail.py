"""A jail for a script trial, so code a model wrote (or any trial, with --jail) runs with no
network, a read-only view of the system, and write access only to its own scratch directory.
bubblewrap builds it where it is installed; else Linux namespaces through util-linux's
`unshare` and objectives/jail_ns.py build the same view ($BILEVEL_JAIL=bwrap|namespaces picks
one). Neither available: the run is refused before it starts.

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
import tempfile
from functools import cache
from pathlib import Path

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) or util-linux's unshare with "
    "unprivileged user namespaces allowed (sysctl kernel.unprivileged_userns_clone=1)"
)


class JailUnavailable(ValueError):
    """No way to jail a trial on this machine; the message says what to install."""


BACKENDS = ("bwrap", "namespaces")
UNSHARE = ["--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child"]
JAIL_NS = str(Path(__file__).with_name("jail_ns.py"))


@cache
def backend() -> str:
    """The jail this machine can build, checked by building one: bwrap, else namespaces."""
    wanted = os.environ.get("BILEVEL_JAIL", "")
    if wanted and wanted not in BACKENDS:
        raise JailUnavailable(f"$BILEVEL_JAIL must be bwrap or namespaces, got {wanted!r}")
    reasons = []
    for name in [wanted] if wanted else BACKENDS:
        reason = _probe(name)
        if not reason:
            return name
        reasons.append(f"{name}: {reason}")
    raise JailUnavailable(f"no jail for trials here ({'; '.join(reasons)}): {INSTALL_HINT}")


def _probe(name: str) -> str:
    """Why the backend cannot jail here ("" when it can): a real jailed `true`."""
    tool = shutil.which("bwrap" if name == "bwrap" else "unshare")
    if tool is None:
        return "not installed"
    with tempfile.TemporaryDirectory(prefix="bilevel-jail-probe-") as tmp:
        argv = _wrap(name, tool, ["true"], Path(tmp), Path(tmp), [])
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return (probe.stderr.strip().splitlines() or ["it failed"])[-1]
    return ""


def check_jail() -> None:
    """Raise JailUnavailable now, before a run starts, when trials could not be jailed."""
    backend()


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
    """argv wrapped in the jail: see the module docstring for what the command then sees."""
    scratch = scratch.resolve()
    (scratch / ".home").mkdir(exist_ok=True)
    name = backend()
    tool = shutil.which("bwrap" if name == "bwrap" else "unshare") or name
    return _wrap(name, tool, argv, scratch, cwd, visible_again(env, linked))


def _wrap(name: str, tool: str, argv: list[str], scratch: Path, cwd: Path,
          visible: list[Path]) -> list[str]:  # fmt: skip
    home = str(Path(os.path.expanduser("~")).resolve())
    if name == "namespaces":
        shown = [str(p) for p in visible]
        return [tool, *UNSHARE, sys.executable, "-I", "-S", JAIL_NS, str(scratch), str(cwd), home,
                *shown, "--", *argv]  # fmt: skip
    wrapped = [tool, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    if home != "/":
        wrapped += ["--tmpfs", home]
    for path in visible:
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
