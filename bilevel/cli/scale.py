"""The scale side of the CLI: executor flags (shared by run, resume and batch) and `bilevel batch`.

Kept apart from bilevel/cli/ so that module stays about one run.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from bilevel.batch import (
    BatchFailed,
    BatchPlan,
    arm_means,
    arun_batch,
    run_dir_for,
    summary_rows,
)
from bilevel.cli.common import USER_ERRORS, err, fail
from bilevel.config import first_error
from bilevel.execution.executor import Executor
from bilevel.execution.factory import make_executor


def executor_option(text: str) -> Any:
    return typer.Option(help=text, rich_help_panel="Where evaluations run")


ExecutorFlag = Annotated[str, executor_option("local (default) | ray.")]
RayAddressFlag = Annotated[
    str | None,
    executor_option("Ray cluster: auto | <host:port> (default: a local Ray runtime)."),
]
DevicesFlag = Annotated[
    str | None,
    executor_option(
        "local: devices for parallel evaluations, e.g. 0,1,2,3 (CUDA_VISIBLE_DEVICES)."
    ),
]
RayCpusFlag = Annotated[float, executor_option("ray: CPUs each evaluation task declares.")]
RayGpusFlag = Annotated[float, executor_option("ray: GPUs each evaluation task declares.")]


def build_executor(
    kind: str,
    ray_address: str | None,
    devices: str | None,
    ray_cpus: float,
    ray_gpus: float,
    parallel: int,
) -> Executor:
    """The executor the flags describe (parallel: evaluations that may run at once);
    ValueError (one line) for a bad combination."""
    if kind == "local" and ray_address is not None:
        raise ValueError("--ray-address needs --executor ray")
    if kind == "ray" and devices is not None:
        raise ValueError("--devices is for --executor local (Ray assigns GPUs itself)")
    # A local Ray runtime gets enough logical CPUs that every slot can hold a task.
    ray_init = (
        None if ray_address else {"num_cpus": max(os.cpu_count() or 1, int(parallel * ray_cpus))}
    )
    return make_executor(
        kind,
        devices=split(devices),
        ray_address=ray_address,
        num_cpus=ray_cpus,
        num_gpus=ray_gpus,
        ray_init=ray_init,
    )


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' (inclusive) or a mix: '0-2,7'."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"--seeds {text!r} must look like 0,1,2 or 0-4") from None
    return seeds


def split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


PlanFile = Annotated[Path | None, typer.Option(help="A TOML plan (objectives, arms, seeds, ...).")]
Objectives = Annotated[str | None, typer.Option(help="Comma-separated objective names.")]
Seeds = Annotated[str | None, typer.Option(help="Seeds: 0,1,2 or 0-4.")]
Iterations = Annotated[int | None, typer.Option(help="Inner iterations per run.")]
Cycle = Annotated[int | None, typer.Option(help="Inner iterations per cycle.")]
Parallel = Annotated[
    int | None, typer.Option("--parallel", "--slots", help="Parallel evaluations per run (W).")
]
Concurrency = Annotated[int, typer.Option(help="Runs at once.")]


def batch(
    objectives: Objectives = None,
    arms: Annotated[str | None, typer.Option(help="Comma-separated arms.")] = None,
    seeds: Seeds = None,
    file: PlanFile = None,
    iterations: Iterations = None,
    cycle: Cycle = None,
    parallel: Parallel = None,
    out: Annotated[Path, typer.Option(help="Batch directory (one run dir per run).")] = Path(
        "runs/batch"
    ),
    max_concurrency: Concurrency = 2,
    executor: ExecutorFlag = "local",
    ray_address: RayAddressFlag = None,
    devices: DevicesFlag = None,
    ray_cpus: RayCpusFlag = 1.0,
    ray_gpus: RayGpusFlag = 0.0,
) -> None:
    """Run objectives x arms x seeds, several at once; run it again to resume an interrupted
    batch (finished runs are kept, the others continue)."""
    flags = {"objectives": split(objectives), "arms": split(arms), "seeds": seeds,
             "iterations": iterations, "cycle": cycle, "parallel": parallel}  # fmt: skip
    executor_flags = (executor, ray_address, devices, ray_cpus, ray_gpus)
    summaries = run_plan("batch", file, flags, out, max_concurrency, executor_flags)
    print_batch(summaries, out)


def run_plan(
    command: str,
    file: Path | None,
    flags: dict[str, Any],
    out: Path,
    max_concurrency: int,
    executor_flags: tuple[Any, ...],
) -> list[dict[str, Any]]:
    """The plan from a file and flags (flags win), run or resumed; exits 2 on a user mistake,
    130 on Ctrl-C (every run resumable)."""

    if max_concurrency < 1:
        fail("--max-concurrency must be at least 1")
    try:
        fields: dict[str, Any] = BatchPlan.read_toml(file) if file else {}
        if file:  # a script's workdir in a plan is relative to the plan file
            for opts in (fields.get("objective_options") or {}).values():
                if isinstance(opts, dict) and isinstance(opts.get("workdir"), str):
                    opts["workdir"] = str((file.parent / opts["workdir"]).resolve())
        if flags.get("seeds"):
            flags["seeds"] = parse_seeds(flags["seeds"])
        fields.update({k: v for k, v in flags.items() if v is not None})
        if "objectives" not in fields:
            raise ValueError("name the objectives: --objectives a,b or --file plan.toml")
        plan = BatchPlan(**fields)
        configs = plan.configs()
        pool = build_executor(*executor_flags, plan.parallel * max_concurrency)
    except ValidationError as exc:
        fail(first_error(exc, prefix="--"))
    except USER_ERRORS as exc:
        fail(first_error(exc))
    err.print(f"{command}: {len(configs)} runs in {out} ({max_concurrency} at once)")

    def done(i: int, s: dict[str, Any]) -> None:
        c = configs[i]
        err.print(
            f"  done {c.objective} {c.arm} s{c.seed}: best {s['best_metric']:.6g} "
            f"(improvement {s['improvement']:.6g}) in {s['wall_s']:.1f}s",
            highlight=False,
        )

    try:
        return asyncio.run(_batch(configs, out, max_concurrency, pool, done))
    except BatchFailed as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except USER_ERRORS as exc:
        fail(first_error(exc))
    except KeyboardInterrupt:
        err.print(
            f"interrupted: run the same `bilevel {command}` again to resume, or `bilevel resume` "
            f"one run dir (e.g. {run_dir_for(out, configs[0])})"
        )
        raise typer.Exit(130) from None


def bench(
    objectives: Objectives = None,
    arms: Annotated[
        str | None, typer.Option(help="Comma-separated arms \\[default: all of them].")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="Seeds: 0,1,2 or 0-4 \\[default: 0-4].")] = None,
    file: PlanFile = None,
    iterations: Iterations = None,
    cycle: Cycle = None,
    parallel: Parallel = None,
    out: Annotated[Path, typer.Option(help="Bench directory (one run dir per run).")] = Path(
        "runs/bench"
    ),
    max_concurrency: Concurrency = 2,
    gate: Annotated[
        bool, typer.Option(help="The statistical adoption gate for the meta arms.")
    ] = False,
    validate: Annotated[
        int,
        typer.Option(help="Re-evaluate each run's best config on this many fresh seeds (0: off)."),
    ] = 3,
    executor: ExecutorFlag = "local",
    ray_address: RayAddressFlag = None,
    devices: DevicesFlag = None,
    ray_cpus: RayCpusFlag = 1.0,
    ray_gpus: RayGpusFlag = 0.0,
) -> None:
    """Every arm at the same evaluation budget over seeds; bench.md (mean improvement with 95%
    bootstrap CI, paired comparisons against inner, restart and optuna-tpe, mechanism use) and PNG
    plots.
    Resumable: the same command again continues unfinished runs."""
    from bilevel.config import ARMS
    from bilevel.reporting.bench import write_bench

    flags = {
        "objectives": split(objectives),
        "arms": split(arms) or (None if file else list(ARMS)),
        "seeds": seeds or (None if file else "0-4"),
        "iterations": iterations,
        "cycle": cycle,
        "parallel": parallel,
        "gate": gate,
    }
    executor_flags = (executor, ray_address, devices, ray_cpus, ray_gpus)
    run_plan("bench", file, flags, out, max_concurrency, executor_flags)
    if validate:
        from bilevel.revalidate import revalidate_all

        err.print(f"bench: re-evaluating each run's best config on {validate} fresh seeds")
        asyncio.run(revalidate_all(out, validate))
    report = write_bench(out)
    print(report.read_text().split("![", 1)[0].rstrip())
    print(f"\nwritten: {report} (rebuild it from the ledgers: bilevel bench-report {out})")


def bench_report(
    out: Annotated[Path, typer.Argument(help="A bench (or batch) directory.")],
) -> None:
    """Rebuild bench.md, bench.json and the plots from the run ledgers under a directory."""
    from bilevel.reporting.bench import write_bench

    if not any(out.rglob("ledger.sqlite")):
        fail(f"{out} holds no run ledgers: run `bilevel bench --out {out}` first")
    report = write_bench(out)
    print(report.read_text().split("![", 1)[0].rstrip())
    print(f"\nwritten: {report}")


async def _batch(
    configs: list[Any], out: Path, max_concurrency: int, executor: Executor, done: Any
) -> list[dict[str, Any]]:
    try:
        return await arun_batch(configs, out, max_concurrency, executor, done)
    finally:
        await executor.close()


def print_batch(summaries: list[dict[str, Any]], out_dir: Path) -> None:
    """Plain aligned text (grep-able, never truncated): one row per run, then the arm means."""
    rows = [
        [
            r["objective"],
            r["arm"],
            str(r["seed"]),
            str(r["trials"]),
            *(f"{r[k]:.6g}" if r[k] is not None else "-" for k in ("baseline", "best")),
            f"{r['improvement']:.6g}",
        ]
        for r in summary_rows(summaries)
    ]
    print_table(["objective", "arm", "seed", "trials", "baseline", "best", "improvement"], rows)
    print()
    means = [
        [m["objective"], m["arm"], str(m["runs"]), f"{m['mean_improvement']:.6g}", f"{m['sd']:.3g}"]
        for m in arm_means(summaries)
    ]
    print_table(["objective", "arm", "runs", "mean_improvement", "sd"], means)
    print(f"\nwritten: {out_dir / 'summary.tsv'}, {out_dir / 'summary.json'}")


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
