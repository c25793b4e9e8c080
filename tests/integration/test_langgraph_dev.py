"""`langgraph dev` on loopback serving langgraph.json, driven by the real langgraph_sdk client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from bilevel.reporting.report import summarize

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
OFFLINE = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("langgraph") / "server.log"
    cli = Path(sys.executable).parent / "langgraph"
    proc = subprocess.Popen(
        [
            str(cli),
            "dev",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--no-browser",
            "--no-reload",
            "--config",
            str(ROOT / "langgraph.json"),
        ],
        cwd=ROOT,  # langgraph.json's paths are relative to it
        env={**os.environ, **OFFLINE},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/ok", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"langgraph dev did not start:\n{log.read_text()}") from None
            time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


async def test_bilevel_and_inner_graphs_run_to_completion(server, tmp_path: Path):
    client = get_client(url=server)
    graphs = {a["graph_id"] for a in await client.assistants.search()}
    assert {"bilevel", "inner"} <= graphs
    for graph_id, arm in (("bilevel", "mechanism"), ("inner", "inner")):
        run_dir = tmp_path / f"{graph_id}-{arm}"
        thread = await client.threads.create()
        out = await client.runs.wait(
            thread["thread_id"],
            graph_id,
            input={
                "objective": "synthetic:late-lever",
                "arm": arm,
                "iterations": 8,
                "cycle": 4,
                "seed": 1,
                "run_dir": str(run_dir),
            },
        )
        assert "__error__" not in out, out
        runs = await client.runs.list(thread["thread_id"])
        assert [r["status"] for r in runs] == ["success"]
        summary = summarize(run_dir)
        assert summary["trials"] == 9  # the inner graph, too, runs the whole budget
        assert summary["cycles"] == 2
        if graph_id == "bilevel":
            assert out["done"] and summary["cycles"] == 2
            state = await client.threads.get_state(thread["thread_id"])
            incumbent = state["values"]["incumbent"]
            rows = (run_dir / "results.tsv").read_text().splitlines()[1:]
            row = rows[incumbent["trial"]].split("\t")
            assert float(row[3]) == pytest.approx(incumbent["metric"], abs=1e-6)


README_INPUT = {"objective": "synthetic:deceptive", "arm": "full"}  # the README's Studio input


async def test_what_studio_calls_with_the_readme_input(server):
    """Studio's calls: assistants, schemas, the graph with subgraphs, a thread streamed with
    updates, values and subgraphs from the README's input (no run_dir), then its state."""
    client = get_client(url=server)
    assistants = {a["graph_id"]: a for a in await client.assistants.search()}
    for graph_id in ("bilevel", "inner"):
        schemas = await client.assistants.get_schemas(assistants[graph_id]["assistant_id"])
        inputs = schemas["input_schema"]["properties"]
        assert {"objective", "arm", "iterations", "cycle", "seed", "run_dir"} <= set(inputs)
        outputs = set(schemas["output_schema"]["properties"])
        assert {"incumbent", "mechanism", "assessment", "decision"} <= outputs
        drawn = await client.assistants.get_graph(assistants[graph_id]["assistant_id"], xray=True)
        nodes = {n["id"] for n in drawn["nodes"]}
        assert {"setup", "assess", "run_inner:research", "run_inner:collect"} <= nodes
    drawn = await client.assistants.get_graph(assistants["bilevel"]["assistant_id"])
    assert {"meta_research", "validate", "probation", "reject"} <= {n["id"] for n in drawn["nodes"]}

    thread = await client.threads.create()
    updates, values, inner_updates = [], [], 0
    async for part in client.runs.stream(
        thread["thread_id"],
        "bilevel",
        input={**README_INPUT, "iterations": 12, "cycle": 4},
        stream_mode=["updates", "values"],
        stream_subgraphs=True,
    ):
        assert part.event != "error", part.data
        if part.event == "updates":
            updates.append(part.data)
        elif part.event.startswith("updates|run_inner"):
            inner_updates += 1
            text = json.dumps(part.data)  # mechanisms by reference: no source is resent
            assert "def propose" not in text and "def accept" not in text, text[:300]
        elif part.event == "values":
            values.append(part.data)
    assert inner_updates >= 3 * 12  # research, review_select, collect per trial
    by_node: dict[str, list] = {}
    for update in updates:
        for node, change in update.items():
            by_node.setdefault(node, []).append(change)
    for node in ("meta_research", "validate", "probation"):
        assert all(change and change.get("decision") for change in by_node[node]), node
    verdicts = [c["decision"] for c in by_node["assess"] if c.get("decision")]
    assert verdicts and {v["status"] for v in verdicts} <= {"adopted", "reverted"}
    assert all(v["reason"] for v in verdicts)
    last = values[-1]
    assert last["done"] and last["mechanism"]["id"] and last["assessment"]["cycle"] == 2
    assert last["decision"]["status"] in ("adopted", "reverted")

    state = await client.threads.get_state(thread["thread_id"])
    run_dir = Path(state["values"]["run_dir"])
    assert run_dir == ROOT / "runs" / thread["thread_id"]  # the server's working directory
    try:
        assert summarize(run_dir)["trials"] == 13
        assert state["values"]["incumbent"]["metric"] == summarize(run_dir)["best_metric"]
    finally:
        shutil.rmtree(run_dir)


async def test_studio_interrupt_and_resume(server, tmp_path: Path):
    """--approve in Studio: the run stops at probation with the diff; a resume answers it."""
    client = get_client(url=server)
    thread = await client.threads.create()
    cfg = {**README_INPUT, "iterations": 8, "cycle": 4, "approve": True,
           "run_dir": str(tmp_path / "approve")}  # fmt: skip
    await client.runs.wait(thread["thread_id"], "bilevel", input=cfg)
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["probation"]
    question = state["tasks"][0]["interrupts"][0]["value"]
    assert question["mechanism"].startswith("c1-") and question["diff"].startswith("---")
    out = await client.runs.wait(thread["thread_id"], "bilevel", command={"resume": "yes"})
    assert out["done"], out
    assert summarize(tmp_path / "approve")["trials"] == 9


async def test_inner_graph_refuses_an_arm_with_an_outer_loop(server):
    client = get_client(url=server)
    thread = await client.threads.create()
    with pytest.raises(Exception, match="the inner graph runs the inner loop alone"):
        await client.runs.wait(thread["thread_id"], "inner", input=README_INPUT)
