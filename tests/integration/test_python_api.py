"""The Python entry: build_graph with a checkpointer, ainvoke and abatch, the xray view."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from bilevel import RunConfig, build_graph
from bilevel.graphs.context import Context
from bilevel.reporting.report import summarize
from bilevel.sandbox.pool import SandboxPool
from tests.helpers import bilevel

pytestmark = pytest.mark.slow


def test_xray_shows_every_node_of_both_loops():
    nodes = set(build_graph().get_graph(xray=True).nodes)
    outer = {"setup", "run_inner", "assess", "meta_research", "validate", "probation", "reject"}
    inner = {f"run_inner:{n}" for n in ("research", "review_select", "collect")}
    assert outer - {"run_inner"} <= nodes and inner <= nodes


async def test_ainvoke_and_abatch_match_the_cli(tmp_path: Path):
    graph = build_graph(checkpointer=InMemorySaver())
    configs = [
        RunConfig(objective="synthetic:interact", arm=arm, iterations=12, cycle=4, seed=2)
        for arm in ("full", "restart")
    ]
    inputs = [{**c.model_dump(), "run_dir": str(tmp_path / c.arm)} for c in configs]
    async with SandboxPool() as pool:
        context = Context(pool=pool)
        one = await graph.ainvoke(
            inputs[0], {"configurable": {"thread_id": "one"}}, context=context
        )
        assert one["done"] and one["iteration"] == 12
        batch_inputs = [{**i, "run_dir": i["run_dir"] + "-batch"} for i in inputs]
        outs = await graph.abatch(
            batch_inputs,
            [{"configurable": {"thread_id": f"b{i}"}} for i in range(2)],
            context=context,
            max_concurrency=2,
        )
        context.close()
    assert all(o["done"] for o in outs)
    for cfg, i in zip(configs, inputs, strict=True):
        cli_dir = tmp_path / f"cli-{cfg.arm}"
        bilevel(
            "run",
            "--run-dir",
            str(cli_dir),
            "--objective",
            cfg.objective,
            "--arm",
            cfg.arm,
            "--iterations",
            "12",
            "--cycle",
            "4",
            "--seed",
            "2",
        )
        want = (cli_dir / "results.tsv").read_text()
        assert (Path(i["run_dir"] + "-batch") / "results.tsv").read_text() == want
        assert summarize(i["run_dir"] + "-batch")["trials"] == 13
    assert (Path(inputs[0]["run_dir"]) / "results.tsv").read_text() == (
        tmp_path / "cli-full" / "results.tsv"
    ).read_text()
