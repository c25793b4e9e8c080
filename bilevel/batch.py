"""Batches: objectives x arms x seeds, each run in its own directory and thread, several at once.

`arun_batch` runs each with `runner.arun(..., resume=True)`, so a batch that was interrupted
(Ctrl-C, a kill) continues where every run stopped when it is started again, and finished runs
are only summarised. `graph_inputs` gives the same runs as inputs for `graph.abatch(...)`.
"""

from __future__ import annotations

import asyncio
import csv
import json
import statistics
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from bilevel.config import Arm, RunConfig
from bilevel.execution.executor import Executor
from bilevel.sandbox.pool import SandboxPool

SUMMARY_COLUMNS = (
    "objective",
    "arm",
    "seed",
    "trials",
    "baseline",
    "best",
    "improvement",
    "cycles",
    "utilisation",
    "run_dir",
)


class BatchPlan(BaseModel):
    """What `bilevel batch --file plan.toml` reads (the same fields as its flags)."""

    model_config = ConfigDict(extra="forbid")

    objectives: list[str] = Field(min_length=1, description="Objective names.")
    arms: list[Arm] = Field(["inner", "restart", "full"], min_length=1, description="Arms.")
    seeds: list[int] = Field([0], min_length=1, description="Seeds.")
    iterations: int | None = Field(None, description="Per run (default: RunConfig's).")
    cycle: int | None = Field(None, description="Per run (default: RunConfig's).")
    parallel: int = Field(
        1,
        ge=1,
        le=64,
        validation_alias=AliasChoices("parallel", "slots"),
        description="Parallel evaluations per run.",
    )
    gate: bool = Field(False, description="The statistical adoption gate (on in bench).")
    objective_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options per objective name."
    )

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError("seeds must be distinct and not negative")
        return seeds

    @staticmethod
    def read_toml(path: Path) -> dict[str, Any]:
        """A plan file's fields, unchecked (flags may add to them before BatchPlan(**fields))."""
        if not path.is_file():
            raise FileNotFoundError(f"batch file {path} does not exist")
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from None

    def configs(self) -> list[RunConfig]:
        """One RunConfig per (objective, arm, seed), objective-major."""
        length = {k: v for k, v in (("iterations", self.iterations), ("cycle", self.cycle)) if v}
        options = {o: self.options_of(o) for o in self.objectives}
        return [
            RunConfig(
                objective=objective,
                objective_options=options[objective],
                arm=arm,
                seed=seed,
                parallel=self.parallel,
                gate=self.gate,
                **length,
            )
            for objective in self.objectives
            for arm in self.arms
            for seed in self.seeds
        ]

    def options_of(self, objective: str) -> dict[str, Any]:
        """An objective's options; a script's (`script` or `script@label`, one per script)
        checked against its files, with paths made absolute and the space stored inline."""
        options = self.objective_options.get(objective, {})
        if objective.partition("@")[0] != "script":
            return options
        from bilevel.objectives.script import cli_options
        from bilevel.objectives.script_config import ScriptError

        try:
            return cli_options(options, {})
        except ScriptError as exc:
            raise ScriptError(f'[objective_options."{objective}"]: {exc}') from None


def run_dir_for(out: Path, config: RunConfig) -> Path:
    return out / config.objective.replace(":", "-") / f"{config.arm}-s{config.seed}"


def graph_inputs(
    configs: list[RunConfig], out: Path, max_concurrency: int = 4
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and per-run configs for `build_graph(saver).abatch(inputs, configs, context=...)`:
    the same run directories as `arun_batch`, one thread per run."""
    from bilevel import runner  # langgraph and the LLM clients: imported when a batch runs

    inputs, run_configs = [], []
    for c in configs:
        run_dir = run_dir_for(out, c).resolve()
        inputs.append({**c.model_dump(), "run_dir": str(run_dir)})
        run_configs.append(
            {**runner.graph_config(c, f"batch:{run_dir}"), "max_concurrency": max_concurrency}
        )
    return inputs, run_configs


async def arun_batch(
    configs: list[RunConfig],
    out: Path,
    max_concurrency: int = 2,
    executor: Executor | None = None,
    on_done: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) every config, at most max_concurrency at once; summaries in input order.
    on_done(i, summary) is called as each run finishes."""
    from bilevel import runner  # langgraph and the LLM clients: imported when a batch runs

    out.mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(max_concurrency)
    summaries: list[dict[str, Any] | None] = [None] * len(configs)

    async with SandboxPool() as pool:

        async def one(i: int, config: RunConfig) -> None:
            async with gate:
                start = time.perf_counter()
                summary = await runner.arun(
                    config, run_dir_for(out, config), resume=True, pool=pool, executor=executor
                )
                summary["wall_s"] = time.perf_counter() - start
                summaries[i] = summary
                if on_done is not None:
                    on_done(i, summary)

        results = await asyncio.gather(
            *(one(i, c) for i, c in enumerate(configs)), return_exceptions=True
        )
    done = [s for s in summaries if s is not None]
    write_summary(out, done)
    failed = [(c, r) for c, r in zip(configs, results, strict=True) if isinstance(r, Exception)]
    if failed:  # the others finished; these stopped where they failed and can be resumed
        lines = [f"{run_dir_for(out, c)}: {type(r).__name__}: {r}" for c, r in failed]
        raise BatchFailed(f"{len(failed)} of {len(configs)} runs failed:\n" + "\n".join(lines))
    return done


class BatchFailed(RuntimeError):
    """Some runs of a batch raised; every other run finished and was summarised."""


def summary_rows(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "objective": s["objective"],
            "arm": s["arm"],
            "seed": s["seed"],
            "trials": s["trials"],
            "baseline": s["baseline_metric"],
            "best": s["best_metric"],
            "improvement": s["improvement"],
            "cycles": s["cycles"],
            "utilisation": s["evaluation"]["utilisation"],
            "run_dir": s["run_dir"],
        }
        for s in summaries
    ]


def arm_means(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean (and sample sd) of the improvement per (objective, arm) over seeds."""
    groups: dict[tuple[str, str], list[float]] = {}
    for s in summaries:
        groups.setdefault((s["objective"], s["arm"]), []).append(s["improvement"])
    return [
        {
            "objective": objective,
            "arm": arm,
            "runs": len(values),
            "mean_improvement": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        }
        for (objective, arm), values in groups.items()
    ]


def write_summary(out: Path, summaries: list[dict[str, Any]]) -> None:
    """summary.tsv (one row per run) and summary.json (rows and per-arm means) in out."""
    rows = summary_rows(summaries)
    with open(out / "summary.tsv", "w", newline="") as f:
        writer = csv.DictWriter(f, SUMMARY_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    payload = {"runs": rows, "arms": arm_means(summaries)}
    (out / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
