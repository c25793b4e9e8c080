"""Run-directory ownership: a directory holds one run (its config, claimed in the ledger), and
one process at a time works in it.

The lock is an advisory `flock` on `RUN_DIR/.lock`, held for the whole run and released by the
kernel when the process ends, however it ends (a SIGKILL leaves no stale lock behind).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from bilevel.config import RunConfig
from bilevel.store.ledger import Ledger

LOCK_FILE = ".lock"


class RunDirConflict(ValueError):
    """The run directory holds a different run."""


class RunDirBusy(ValueError):
    """Another process is working in this run directory."""


class RunDirLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> RunDirLock:
        """Take the lock or raise RunDirBusy naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunDirBusy(
                f"run dir {self.path.parent} is in use by another bilevel process (pid "
                f"{holder}): wait for it to finish, or choose another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def same_run(stored: dict[str, Any], mine: dict[str, Any]) -> bool:
    """Is the stored config this run's? Read through RunConfig, so a run recorded under an older
    field name (slots, cycle) is still recognised."""
    if stored == mine:
        return True
    try:
        return RunConfig.model_validate(stored).model_dump() == mine
    except ValueError:  # not a config this version can read: another run
        return False


def claim_run_dir(ledger: Ledger, config: RunConfig) -> None:
    """Record the run's config in its ledger, or refuse a directory that holds another run."""
    mine = config.model_dump()
    theirs = ledger.get_meta("config")
    if theirs is None:
        ledger.set_meta("config", mine)
    elif same_run(theirs, mine):
        return
    else:
        raise RunDirConflict(
            f"run dir {ledger.path.parent} belongs to another run "
            f"(objective {theirs['objective']}, arm {theirs['arm']}, seed {theirs['seed']}): "
            "resume it with `bilevel resume` or choose another --run-dir"
        )
