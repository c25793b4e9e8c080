"""Each script trial's own copy of the user's project.

Source files are copied (a trial may rewrite them); virtual environments and files of at least
link_over_mb (datasets such as nanoGPT's train.bin) are symlinked, so a trial costs neither a
new environment nor a multi-GB copy. A linked file is the user's own: a trial that writes to it
is reported (the copy cannot stop it; a jail could).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

JUNK = frozenset(
    ".git .hg .svn runs __pycache__ node_modules .tox .mypy_cache .pytest_cache "
    ".ruff_cache .ipynb_checkpoints".split()
)
LINK_OVER_MB = 64.0
MB = 1024 * 1024


@dataclass
class TrialCopy:
    """What one copy cost, and the linked originals with their (size, mtime) at copy time."""

    seconds: float = 0.0
    copied_bytes: int = 0
    linked: dict[Path, tuple[int, int]] = field(default_factory=dict)
    linked_dirs: list[Path] = field(default_factory=list)  # virtual environments

    def numbers(self) -> dict[str, float]:
        linked = sum(size for size, _ in self.linked.values())
        return {
            "seconds": round(self.seconds, 4),
            "copied_mb": round(self.copied_bytes / MB, 6),
            "linked_mb": round(linked / MB, 6),
            "linked_files": len(self.linked),
            "linked_dirs": len(self.linked_dirs),
        }

    def written_originals(self) -> list[Path]:
        """Linked originals whose size or modification time changed since the copy."""
        changed = []
        for path, before in self.linked.items():
            try:
                stat = path.stat()
            except OSError:
                changed.append(path)
                continue
            if (stat.st_size, stat.st_mtime_ns) != before:
                changed.append(path)
        return changed


def is_venv(path: Path) -> bool:
    return path.is_dir() and ((path / "pyvenv.cfg").is_file() or (path / "conda-meta").is_dir())


def copy_project(
    src: Path,
    dst: Path,
    exclude: list[str],
    link: list[str],
    avoid: Path,
    link_over_mb: float = LINK_OVER_MB,
) -> TrialCopy:
    """Copy src to dst without junk, bilevel run directories or avoid; symlink virtual
    environments, files of link_over_mb or more, and what the `link` globs match (a glob
    matches a name or a path relative to src); skip what `exclude` matches."""
    start = time.perf_counter()
    result = TrialCopy()
    links: list[tuple[Path, Path]] = []
    threshold = link_over_mb * MB

    def matches(path: Path, patterns: list[str]) -> bool:
        rel = path.relative_to(src).as_posix()
        return any(fnmatch(path.name, p) or fnmatch(rel, p.rstrip("/")) for p in patterns)

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skipped = set()
        for name in names:
            path = here / name
            if path == avoid or matches(path, exclude):
                skipped.add(name)
            elif matches(path, link) or is_venv(path) or _large_file(path, threshold):
                links.append((path, dst / path.relative_to(src)))
                skipped.add(name)
            elif (
                name in JUNK
                or name.endswith(".pyc")
                or (path / "ledger.sqlite").exists()  # a run directory, written to right now
            ):
                skipped.add(name)
        return skipped

    def counted_copy(source: str, target: str) -> object:
        result.copied_bytes += os.lstat(source).st_size
        return shutil.copy2(source, target)

    shutil.copytree(src, dst, symlinks=True, ignore=ignore, copy_function=counted_copy)
    for target, where in links:
        real = target.resolve()
        where.symlink_to(real)
        if real.is_file():
            stat = real.stat()
            result.linked[real] = (stat.st_size, stat.st_mtime_ns)
        else:  # a virtual environment: not watched file by file
            result.linked_dirs.append(real)
    result.seconds = time.perf_counter() - start
    return result


def _large_file(path: Path, threshold: float) -> bool:
    try:
        return not path.is_symlink() and path.is_file() and path.stat().st_size >= threshold
    except OSError:
        return False
