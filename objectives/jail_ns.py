"""The jail without bubblewrap: run inside `unshare --user --map-root-user --mount --net --pid
--fork --kill-child`, this builds the same view bubblewrap gives, then chroots and execs.

    python -I -S jail_ns.py SCRATCH CWD HOME VISIBLE... -- ARGV...

The new root is `/` bound recursively under SCRATCH/.jail-root with every mount made read-only
(one that cannot be is an error, never a weaker jail); then a fresh /tmp and $HOME, SCRATCH bound
read-write, the VISIBLE paths bound back read-only, a /proc of the new PID namespace. Standard
library only, no site packages (-I -S): it runs before anything of the trial's.
"""

import os
import subprocess
import sys


def mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise SystemExit(f"[bilevel] jail: mount {' '.join(args)} failed: {reason}")


def mounts_under(root: str) -> list[str]:
    """Mount points at or below root, outermost first (mountinfo escapes spaces as \\040)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root + "/"):
                points.append(point)
    return sorted(set(points), key=len)


def read_only(root: str) -> None:
    for point in mounts_under(root):
        mount("-o", "remount,bind,ro", point)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    scratch, cwd, home, *visible = argv[:split]
    command = argv[split + 1 :]
    new = os.path.join(scratch, ".jail-root")
    os.makedirs(new, exist_ok=True)
    mount("--rbind", "/", new)
    read_only(new)
    mount("-t", "tmpfs", "tmpfs", new + "/tmp")
    if os.path.isdir(new + home) and home != "/":
        mount("-t", "tmpfs", "tmpfs", new + home)
    for path in visible:  # mount points for them inside the fresh $HOME
        if os.path.isdir(path):
            os.makedirs(new + path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(new + path), exist_ok=True)
            open(new + path, "a").close()
        mount("--bind", path, new + path)
        mount("-o", "remount,bind,ro", new + path)
    os.makedirs(new + scratch, exist_ok=True)
    mount("--bind", scratch, new + scratch)
    mount("-t", "proc", "proc", new + "/proc")
    os.chroot(new)
    os.chdir(cwd)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
