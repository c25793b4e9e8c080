"""CPU time of `bilevel --help` and of a one-line argument error, each in a fresh process.

    python benchmarks/startup.py [--repeats 5]

Prints the median user+sys CPU seconds of each command (children included) and whether torch
was imported (it must not be: only objectives that need it import it). Target: well under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

COMMANDS = {
    "bilevel --help": ["--help"],
    "bilevel run --arm sideways (one-line error)": ["run", "--arm", "sideways"],
    "bilevel objectives": ["objectives"],
}
TARGET_S = 1.0


def cpu_seconds(args: list[str]) -> tuple[float, int]:
    before = os.times()
    proc = subprocess.run(
        [sys.executable, "-m", "bilevel.cli", *args], capture_output=True, text=True
    )
    after = os.times()
    used = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return used, proc.returncode


def torch_imported() -> bool:
    code = "import sys, bilevel.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    worst = 0.0
    print(f"{'command':<48} {'exit':>4} {'CPU s (median)':>15}")
    for label, argv in COMMANDS.items():
        runs = [cpu_seconds(argv) for _ in range(args.repeats)]
        median = statistics.median(t for t, _ in runs)
        worst = max(worst, median)
        print(f"{label:<48} {runs[0][1]:>4} {median:>15.3f}")
    print(f"torch imported by `import bilevel.cli`: {torch_imported()}")
    verdict = "PASS" if worst < TARGET_S and not torch_imported() else "FAIL"
    print(f"worst median {worst:.3f} CPU s (target < {TARGET_S:g} s): {verdict}")


if __name__ == "__main__":
    main()
