"""The Ray executor against a real local Ray runtime (`ray.init` with a few CPUs): a bilevel run
to completion with W parallel evaluations, the same results as the local executor, and a
trial whose Ray worker process is SIGKILLed mid-evaluation (retried, recorded in the ledger,
nothing lost)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from bilevel import RunConfig
from bilevel.execution.executor import LocalExecutor
from bilevel.runner import arun
from tests.helpers import ledger_query as rows

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
from bilevel.execution.ray_executor import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ray"


@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory):
    marker = tmp_path_factory.mktemp("ray") / "killed"
    # Workers inherit the driver's environment at ray.init: the fixture script finds the marker
    # here, and `python` on PATH is this interpreter.
    os.environ["KILL_RAY_WORKER_MARKER"] = str(marker)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield marker
    ray.shutdown()
    os.environ.pop("KILL_RAY_WORKER_MARKER", None)


async def test_a_bilevel_run_through_ray_matches_the_local_executor(ray_runtime, tmp_path):
    config = RunConfig(
        objective="synthetic:sleep",
        objective_options={"seconds": 0.05},
        arm="full",
        iterations=6,
        cycle=3,
        parallel=3,
        seed=4,
    )
    summary = await arun(config, tmp_path / "ray", executor=RayExecutor())
    assert summary["finished"] and summary["trials"] == 1 + 6 * 3 and summary["cycles"] == 2
    workers = {r["worker"] for r in rows(tmp_path / "ray", "SELECT worker FROM trials")}
    assert workers and all(w.startswith("ray:") for w in workers)
    assert summary["evaluation"]["parallel"] == 3 and summary["evaluation"]["utilisation"] > 0
    await arun(config, tmp_path / "local", executor=LocalExecutor())
    # Same seed and W: the same trials in the same order, wherever they were evaluated.
    ray_tsv = (tmp_path / "ray" / "results.tsv").read_text()
    assert ray_tsv == (tmp_path / "local" / "results.tsv").read_text()
    mechanisms = rows(tmp_path / "ray", "SELECT id FROM mechanisms WHERE id != 'default'")
    calls = rows(tmp_path / "ray", "SELECT COUNT(*) AS n FROM hook_calls")
    assert mechanisms and calls[0]["n"] > 0  # the outer loop ran and its hooks were called


async def test_a_killed_ray_worker_is_retried_and_recorded(ray_runtime, tmp_path):
    marker = ray_runtime
    config = RunConfig(
        objective="script",
        objective_options={
            "command": "python kill_worker.py",
            "space": str(FIXTURES / "space.toml"),
            "workdir": str(FIXTURES),
            "timeout_s": 120,
        },
        arm="full",
        iterations=4,
        cycle=2,
        parallel=2,
        seed=0,
    )
    run_dir = tmp_path / "run"
    summary = await arun(config, run_dir, executor=RayExecutor(retries=2))
    killed = marker.read_text()
    assert killed.isdigit(), "the fixture found no Ray worker to kill"
    trials = rows(run_dir, "SELECT trial, status, worker FROM trials ORDER BY trial")
    assert [t["trial"] for t in trials] == list(range(1 + 4 * 2))  # none lost, none twice
    assert all(t["status"] == "ok" for t in trials) and summary["finished"]
    lost = rows(run_dir, "SELECT detail FROM notes WHERE kind = 'worker_lost'")
    assert len(lost) == 1
    detail = json.loads(lost[0]["detail"])
    assert detail["trial"] == 0 and detail["attempt"] == 1  # the baseline was the first run
    assert summary["evaluation"]["workers_lost"] == 1
    assert all(t["worker"].startswith("ray:") for t in trials)
    assert not any(t["worker"].endswith(f":{killed}") for t in trials)
