"""What one script trial's project copy costs, with the default links and with everything copied.

    python benchmarks/trial_copy.py [--data-mb 300] [--repeats 3]

Builds a project like a real one in a temporary directory: a few source files, a virtual
environment (a directory with pyvenv.cfg and many small files) and one large data file, then
times `copy_project` side by side: defaults (the venv and the large file linked) against
link_over_mb=inf with the venv copied as a plain directory. Prints median seconds and MB copied.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bilevel.objectives.script_copy import copy_project


def build(root: Path, data_mb: int) -> None:
    (root / "train.py").write_text("LR = 0.01\n" * 200)
    (root / "data").mkdir()
    with open(root / "data" / "train.bin", "wb") as f:
        f.write(b"\x01" * (data_mb * 1024 * 1024))
    venv = root / ".venv"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for i in range(2000):  # a venv is many small files
        (venv / "lib" / f"m{i}.py").write_text("x = 1\n" * 50)


def timed(src: Path, out: Path, **kw: float) -> tuple[float, float]:
    copy = copy_project(src, out, exclude=[], link=[], avoid=out, **kw)
    numbers = copy.numbers()
    return numbers["seconds"], numbers["copied_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-mb", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bilevel-copy-bench-") as tmp:
        src = Path(tmp) / "project"
        src.mkdir()
        build(src, args.data_mb)
        plain = Path(tmp) / "plain"  # the venv without pyvenv.cfg: copied like any directory
        plain.mkdir()
        build(plain, args.data_mb)
        (plain / ".venv" / "pyvenv.cfg").unlink()
        rows = {"defaults (venv and large file linked)": [], "everything copied": []}
        for i in range(args.repeats):  # interleaved, so machine noise hits both alike
            rows["defaults (venv and large file linked)"].append(timed(src, Path(tmp) / f"a{i}"))
            rows["everything copied"].append(
                timed(plain, Path(tmp) / f"b{i}", link_over_mb=float("inf"))
            )
        print(f"project: {args.data_mb} MB data file, a 2,000-file venv; {args.repeats} repeats")
        medians = {}
        for name, runs in rows.items():
            medians[name] = statistics.median(s for s, _ in runs)
            print(f"  {name:<40} {medians[name]:8.3f} s  {runs[0][1]:9.1f} MB copied")
        ratio = medians["everything copied"] / max(medians["defaults (venv and large file linked)"],
                                                    1e-9)  # fmt: skip
        print(f"per-trial copy: {ratio:.0f}x faster with the defaults")


if __name__ == "__main__":
    main()
