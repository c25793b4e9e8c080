"""Sandbox policy, worker protocol and pool behaviour under faults."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bilevel.sandbox.policy import PolicyError, compile_mechanism, precheck
from bilevel.sandbox.pool import SandboxPool

COUNTER = """
import random

def propose(ctx):
    memory = ctx["memory"]
    memory["calls"] = memory.get("calls", 0)
    memory["calls"] += 1
    print("printing must not corrupt the protocol")
    return [{"lr": random.random()}]
"""


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    async with SandboxPool(workers=2, timeout_s=2.0) as p:
        yield p


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\nimport os\n", "line 2: import of 'os' is not allowed"),
        ("from subprocess import run\n", "line 1: import of 'subprocess' is not allowed"),
        ("def f():\n    return ().__class__.__subclasses__()\n", "line 2: attribute '__"),
        ("def f(ctx):\n    return open('x')\n", "line 2: use of 'open' is not allowed"),
        ("\n\ny = ctx.__dict__\n", "line 3: attribute '__dict__' is not allowed"),
        ("def f(ctx):\n    return eval('1')\n", "line 2: use of 'eval' is not allowed"),
        ("g = getattr\n", "line 1: use of 'getattr' is not allowed"),
        ("_secret = 1\n", "line 1: name '_secret' is not allowed"),
        ("def f(ctx)\n    return 1\n", "line 1: syntax error"),
    ],
)
def test_policy_rejects_with_line_number(source: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        precheck(source)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_policy_allows_plain_mechanisms() -> None:
    source = "global_count = 0\ndef advise(ctx):\n    global global_count\n    return ''\n"
    compile_mechanism(source)
    compile_mechanism(COUNTER)  # includes memory[...] += 1, rewritten for RestrictedPython


def test_restricted_python_errors_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match=r"^line 3: .*gi_frame"):
        compile_mechanism("def f():\n    g = (i for i in [1])\n    return g.gi_frame\n")


async def test_memory_round_trip_and_prints(pool: SandboxPool) -> None:
    memory: dict = {"keep": [1, 2]}
    for expected in (1, 2, 3):
        result = await pool.call(COUNTER, "propose", [{"memory": memory}])
        assert result.outcome == "ok", result.error
        assert result.memory is not None
        memory = result.memory
        assert memory == {"keep": [1, 2], "calls": expected}
        assert isinstance(result.value[0]["lr"], float)


async def test_same_seed_same_result_across_workers(pool: SandboxPool) -> None:
    calls = [pool.call(COUNTER, "propose", [{"memory": {}}], seed=42) for _ in range(4)]
    results = await asyncio.gather(*calls)  # concurrent, so both workers serve
    assert len({r.value[0]["lr"] for r in results}) == 1
    again = await pool.call(COUNTER, "propose", [{"memory": {}}], seed=42)
    other = await pool.call(COUNTER, "propose", [{"memory": {}}], seed=43)
    assert again.value == results[0].value != other.value


async def test_hidden_module_internals(pool: SandboxPool) -> None:
    source = "import statistics\ndef advise(ctx):\n    return str(statistics.sys)\n"
    result = await pool.call(source, "advise", [{}])
    assert result.outcome == "error"
    assert result.error is not None and result.error.startswith("AttributeError")


async def test_policy_outcome_from_pool(pool: SandboxPool) -> None:
    result = await pool.call("import os\ndef advise(ctx):\n    return ''\n", "advise", [{}])
    assert result.outcome == "policy"
    assert result.error == (
        "line 1: import of 'os' is not allowed (allowed: bisect, collections, functools, "
        "heapq, itertools, math, random, statistics)"
    )


async def test_raise_gives_error_with_message(pool: SandboxPool) -> None:
    source = "def advise(ctx):\n    x = 1\n    raise ValueError('boom')\n"
    result = await pool.call(source, "advise", [{}])
    assert (result.outcome, result.error) == ("error", "ValueError: boom (line 3)")
    missing = await pool.call(source, "propose", [{}])
    assert missing.outcome == "error" and "does not define 'propose'" in (missing.error or "")
    bad = await pool.call("def advise(ctx):\n    return {1}\n", "advise", [{}])
    assert bad.outcome == "error" and "returned non-JSON value" in (bad.error or "")


async def test_timeout_kills_and_replaces_worker() -> None:
    loop = "def advise(ctx):\n    while True:\n        pass\n"
    async with SandboxPool(workers=1, timeout_s=0.3) as pool:
        before = pool.pids()
        result = await pool.call(loop, "advise", [{}])
        assert result.outcome == "timeout"
        assert 250 < result.ms < 2000
        assert not _alive(before[0])
        ok = await pool.call(COUNTER, "propose", [{"memory": {}}])
        assert ok.outcome == "ok"
        assert pool.pids() != before


async def test_too_large_result() -> None:
    source = "def advise(ctx):\n    return 'x' * 200000\n"
    async with SandboxPool(workers=1, max_result_bytes=100_000) as pool:
        result = await pool.call(source, "advise", [{}])
        assert result.outcome == "too_large"
        assert (await pool.call(COUNTER, "propose", [{"memory": {}}])).outcome == "ok"


async def test_externally_killed_worker_is_replaced(pool: SandboxPool) -> None:
    assert (await pool.call(COUNTER, "propose", [{"memory": {}}])).outcome == "ok"
    for pid in pool.pids():
        os.kill(pid, signal.SIGKILL)
    results = await asyncio.gather(
        *(pool.call(COUNTER, "propose", [{"memory": {}}]) for _ in range(3))
    )
    assert [r.outcome for r in results] == ["ok"] * 3


async def test_worker_is_confined(pool: SandboxPool) -> None:
    pid = pool.pids()[0]
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert "Max file size             0" in limits
    assert os.readlink(f"/proc/{pid}/cwd").endswith("(deleted)")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert {e.split(b"=")[0] for e in environ if e} <= {
        b"PYTHONPATH",
        b"PYTHONHASHSEED",
        b"PYTHONDONTWRITEBYTECODE",
    }


async def test_worker_ignores_sigxfsz(pool: SandboxPool) -> None:
    # RLIMIT_FSIZE=0 must make a file write fail, not kill the worker with SIGXFSZ.
    status = Path(f"/proc/{pool.pids()[0]}/status").read_text()
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:"))[7:], 16)
    assert ignored & (1 << (signal.SIGXFSZ - 1))


async def test_close_leaves_no_processes() -> None:
    pool = SandboxPool(workers=3)
    await pool.start()
    await pool.call(COUNTER, "propose", [{"memory": {}}])
    pids = pool.pids()
    assert len(pids) == 3
    await pool.close()
    assert not any(_alive(pid) for pid in pids)
    assert not [pid for pid in _children() if pid in pids]


async def test_inspect_lists_hooks_and_functions(pool: SandboxPool) -> None:
    source = "def helper(a, b):\n    return a\ndef select(cands, context):\n    return [0]\n"
    info = await pool.inspect(source)
    assert info.ok and info.hooks == {"select": ["cands", "context"]}
    assert sorted(info.functions) == ["helper", "select"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children() -> list[int]:
    try:
        import psutil  # type: ignore[import-untyped]

        return [p.pid for p in psutil.Process().children(recursive=True)]
    except ImportError:
        pass
    me, found = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().split(")")[-1].split()[1] == me:
                        found.append(int(entry))
            except OSError:
                continue
    return found


async def test_cancelled_call_leaves_pool_usable() -> None:
    loop = "def advise(ctx):\n    while True:\n        pass\n"
    async with SandboxPool(workers=1, timeout_s=5.0) as pool:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.call(loop, "advise", [{}]), 0.2)
        assert (await pool.call(COUNTER, "propose", [{"memory": {}}])).outcome == "ok"
