"""`bilevel batch` and `graph.abatch`: 2 objectives x 3 arms x 2 seeds give the same results as the
same runs made one at a time; the summary table is right; Ctrl-C stops a batch and running the
same command again resumes every run."""

from __future__ import annotations

import csv
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from bilevel import build_graph
from bilevel.batch import BatchPlan, graph_inputs, run_dir_for
from bilevel.graphs.context import Context
from bilevel.sandbox.pool import SandboxPool
from tests.helpers import BILEVEL, bilevel, ledger_rows, show_json, trial_ids

pytestmark = pytest.mark.slow

PLAN = BatchPlan(
    objectives=["synthetic:interact", "synthetic:late-lever"],
    arms=["inner", "restart", "full"],
    seeds=[0, 1],
    iterations=8,
    cycle=4,
    parallel=2,
)
FLAGS = [
    "--objectives", "synthetic:interact,synthetic:late-lever", "--arms", "inner,restart,full",
    "--seeds", "0-1", "--iterations", "8", "--cycle", "4", "--slots", "2",
]  # fmt: skip


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


async def test_batch_abatch_and_single_runs_agree(tmp_path: Path):
    proc = bilevel("batch", *FLAGS, "--out", str(tmp_path / "cli"), "--max-concurrency", "3")
    configs = PLAN.configs()
    assert len(configs) == 12
    rows = read_tsv(tmp_path / "cli" / "summary.tsv")
    assert [(r["objective"], r["arm"], int(r["seed"])) for r in rows] == [
        (c.objective, c.arm, c.seed) for c in configs
    ]
    for row, config in zip(rows, configs, strict=True):
        run_dir = run_dir_for(tmp_path / "cli", config)
        shown = show_json(run_dir)  # every row is what the run's own ledger says
        assert shown["finished"] and int(row["trials"]) == shown["trials"] == 17
        assert float(row["best"]) == shown["best_metric"]
        assert float(row["improvement"]) == shown["improvement"]
    for objective in PLAN.objectives:  # the printed means are the rows' means
        for arm in PLAN.arms:
            values = [
                float(r["improvement"])
                for r in rows
                if r["objective"] == objective and r["arm"] == arm
            ]
            line = next(
                ln for ln in proc.stdout.splitlines() if ln.split()[:3] == [objective, arm, "2"]
            )
            assert float(line.split()[3]) == pytest.approx(statistics.fmean(values), rel=1e-5)

    # The same runs one at a time through `bilevel run`.
    for config in configs:
        single = tmp_path / "single" / f"{config.objective}-{config.arm}-{config.seed}"
        bilevel(
            "run", "--objective", config.objective, "--arm", config.arm,
            "--seed", str(config.seed), "--iterations", "8", "--cycle", "4", "--slots", "2",
            "--run-dir", str(single),
        )  # fmt: skip
        batch_dir = run_dir_for(tmp_path / "cli", config)
        assert (single / "results.tsv").read_text() == (batch_dir / "results.tsv").read_text()
        assert ledger_rows(single) == ledger_rows(batch_dir)

    # And from Python: graph.abatch with max_concurrency, one thread per run.
    inputs, run_configs = graph_inputs(configs, tmp_path / "py", max_concurrency=4)
    graph = build_graph(checkpointer=InMemorySaver())
    async with SandboxPool() as pool:
        context = Context(pool=pool)
        outs = await graph.abatch(inputs, run_configs, context=context)
        await context.aclose()
    assert all(o["done"] for o in outs)
    for config in configs:
        py_dir = run_dir_for(tmp_path / "py", config)
        cli_dir = run_dir_for(tmp_path / "cli", config)
        assert (py_dir / "results.tsv").read_text() == (cli_dir / "results.tsv").read_text()


def test_ctrl_c_stops_a_batch_and_the_same_command_resumes_it(tmp_path: Path):
    flags = [
        "--objectives", "synthetic:sleep", "--arms", "inner,full", "--seeds", "0",
        "--iterations", "8", "--cycle", "4", "--slots", "2", "--max-concurrency", "2",
    ]  # fmt: skip
    plan = BatchPlan(
        objectives=["synthetic:sleep"], arms=["inner", "full"], seeds=[0], iterations=8, cycle=4,
        slots=2, objective_options={"synthetic:sleep": {"seconds": 0.2}},
    )  # fmt: skip
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('[objective_options."synthetic:sleep"]\nseconds = 0.2\n')
    out = tmp_path / "batch"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*BILEVEL, "batch", "--file", str(plan_file), *flags, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    dirs = [run_dir_for(out, c) for c in plan.configs()]
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and min(len(trial_ids(d)) for d in dirs) < 4:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:  # a failure here must not leave the batch running into the next test
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted: run the same `bilevel batch` again to resume" in stderr
    assert "Traceback" not in stderr
    partial = [trial_ids(d) for d in dirs]
    assert all(4 <= len(ids) < 17 for ids in partial), partial

    bilevel("batch", "--file", str(plan_file), *flags, "--out", str(out))
    clean = tmp_path / "clean"
    bilevel("batch", "--file", str(plan_file), *flags, "--out", str(clean))
    for config, run_dir in zip(plan.configs(), dirs, strict=True):
        assert trial_ids(run_dir) == list(range(17))  # none lost, none twice
        clean_dir = run_dir_for(clean, config)
        assert (run_dir / "results.tsv").read_text() == (clean_dir / "results.tsv").read_text()
