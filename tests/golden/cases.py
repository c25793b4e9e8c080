"""The runs whose results.tsv the redesign must reproduce byte for byte (issue 12).

    python -m tests.golden.cases --record        # rewrite the files under tests/golden/
    python -m tests.golden.cases --record NAME   # one case

Record only on purpose: a change of search behaviour changes these files, and the commit that
records them says why.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from bilevel.config import ARMS, RunConfig

HERE = Path(__file__).parent
SYNTHETIC = ("late-lever", "deceptive", "interact", "trainsim")
SHORT = {"iterations": 10, "cycle": 3}  # 11 trials, 4 cycles: adoption and reversion happen


def cases() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"default": {}}  # `bilevel run` with no options
    for objective in SYNTHETIC:
        for arm in ARMS:
            for seed in (0, 1, 2):
                out[f"{objective}-{arm}-s{seed}"] = {
                    "objective": f"synthetic:{objective}", "arm": arm, "seed": seed, **SHORT,
                }  # fmt: skip
    out["sleep-full-s0"] = {
        "objective": "synthetic:sleep", "objective_options": {"seconds": 0.0}, **SHORT,
    }  # fmt: skip
    out["trainsim-full-slots4"] = {"slots": 4, "iterations": 12, "cycle": 4}
    out["tinygpt-full"] = {
        "objective": "tinygpt",
        "objective_options": {"budget_tokens": 32_768, "total_batch_size": 8_192},
        "iterations": 4,
        "cycle": 2,
    }
    out["trainsim-optuna-tpe-long"] = {"arm": "optuna-tpe", "iterations": 40, "cycle": 10}
    return out


# Arms that hand the search to a third-party sampler: their files hold that library's numerics,
# which change between its releases (seen: optuna-gp and optuna-cmaes after a new numpy/scipy/
# cmaes), so they are compared only under the versions they were recorded with. They also change
# between CPUs (seen: optuna-tpe, -gp and -cmaes on a machine without AVX-512, where numpy's
# exp/log take other SIMD paths): a case whose numbers differ on a CPU has its own file under
# by-cpu/<key of numpy's CPU features>/, used there instead of the default one.
THIRD_PARTY = {
    "optuna-gp": ("optuna", "scipy", "torch", "numpy", "greenlet"),
    "optuna-cmaes": ("optuna", "cmaes", "numpy"),
    "optuna-tpe": ("optuna", "numpy"),
}
VERSIONS_FILE = HERE / "versions.json"
BY_CPU = HERE / "by-cpu"


def versions(arm: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for package in THIRD_PARTY.get(arm, ()):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def cpu_key() -> str:
    """A short key of the SIMD features numpy dispatches on here (they decide its exp/log bits);
    by-cpu/KEY/FEATURES names them."""
    return hashlib.sha256(cpu_features().encode()).hexdigest()[:12]


def cpu_features() -> str:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        return "unknown"
    return " ".join(sorted(name for name, on in __cpu_features__.items() if on))


def recorded_versions(arm: str) -> dict[str, str | None] | None:
    if not VERSIONS_FILE.exists():
        return None
    return json.loads(VERSIONS_FILE.read_text()).get(arm)


def golden_path(name: str) -> Path:
    """This CPU's own file for the case where there is one, else the default."""
    own = BY_CPU / cpu_key() / f"{name}.tsv"
    return own if own.exists() else HERE / f"{name}.tsv"


async def results_of(name: str, run_dir: Path) -> str:
    from bilevel.runner import arun

    await arun(RunConfig(**cases()[name]), run_dir)
    return (run_dir / "results.tsv").read_text()


async def record(names: list[str], for_this_cpu: bool = False) -> None:
    """Record the cases' files (for_this_cpu: this CPU's own, where the numbers differ here)."""
    with tempfile.TemporaryDirectory(prefix="bilevel-golden-") as tmp:
        for name in names:
            text = await results_of(name, Path(tmp) / name)
            path = BY_CPU / cpu_key() / f"{name}.tsv" if for_this_cpu else HERE / f"{name}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"{path.relative_to(HERE)}: {text.count(chr(10)) - 1} trials")
    if for_this_cpu:
        (BY_CPU / cpu_key() / "FEATURES").write_text(cpu_features() + "\n")
    recorded = json.loads(VERSIONS_FILE.read_text()) if VERSIONS_FILE.exists() else {}
    for arm in THIRD_PARTY:
        if any(cases()[n].get("arm") == arm for n in names):
            recorded[arm] = versions(arm)
    VERSIONS_FILE.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", nargs="*", metavar="NAME", required=True)
    parser.add_argument(
        "--for-this-cpu", action="store_true", help="Write this CPU's own files (by-cpu/KEY/)."
    )
    args = parser.parse_args()
    asyncio.run(record(args.record or list(cases()), args.for_this_cpu))


if __name__ == "__main__":
    main()
