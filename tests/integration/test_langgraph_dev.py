"""`langgraph dev` on loopback serving langgraph.json, driven by the real langgraph_sdk client."""

from __future__ import annotations

import os
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
        cwd=ROOT,
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
    for graph_id, arm in (("bilevel", "full"), ("bilevel", "mechanism"), ("inner", "inner")):
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
        expected_trials = 9 if graph_id == "bilevel" else 5  # inner: baseline + one cycle
        assert summary["trials"] == expected_trials
        if graph_id == "bilevel":
            assert out["done"] and summary["cycles"] == 2
            state = await client.threads.get_state(thread["thread_id"])
            incumbent = state["values"]["incumbent"]
            rows = (run_dir / "results.tsv").read_text().splitlines()[1:]
            row = rows[incumbent["trial"]].split("\t")
            assert float(row[3]) == pytest.approx(incumbent["metric"], abs=1e-6)
