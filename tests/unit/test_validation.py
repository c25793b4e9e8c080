"""validate_mechanism: accepts well-behaved mechanisms, rejects others with a readable reason."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bilevel.sandbox.pool import SandboxPool
from bilevel.sandbox.validation import ValidationReport, synthetic_contexts, validate_mechanism

GOOD = """
import math
import random

def advise(ctx):
    memory = ctx["memory"]
    memory["advised"] = memory.get("advised", 0) + 1
    return f"{len(ctx['history'])} trials so far"

def propose(ctx):
    # Needs advise's memory write from the same iteration: memory must be carried.
    assert ctx["memory"]["advised"] >= 1
    out = []
    for name, spec in sorted(ctx["space"].items()):
        if name in ctx["frozen"]:
            continue
        if spec["type"] == "categorical":
            out.append({name: random.choice(spec["choices"])})
        elif spec["type"] == "int":
            out.append({name: random.randint(int(spec["low"]), int(spec["high"]))})
        elif spec["type"] == "logfloat":
            lo, hi = math.log(spec["low"]), math.log(spec["high"])
            out.append({name: math.exp(random.uniform(lo, hi))})
        else:
            out.append({name: random.uniform(spec["low"], spec["high"])})
    return out[:4]

def review(candidate, ctx):
    if any(name in ctx["frozen"] for name in candidate["changes"]):
        return None
    return candidate

def select(candidates, ctx):
    return list(range(min(len(candidates), ctx["picks"])))

def accept(trial, ctx):
    best = ctx["incumbent"]["metric"]
    if trial["status"] != "ok" or trial["metric"] is None:
        return False
    if best is None:
        return True
    return trial["metric"] < best if ctx["direction"] == "minimize" else trial["metric"] > best
"""


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    async with SandboxPool(workers=2) as p:
        yield p


async def test_accepts_good_mechanism(pool: SandboxPool) -> None:
    recorded = dict(synthetic_contexts()[0][1], iteration=5, memory={"advised": 0})
    report = await validate_mechanism(pool, GOOD, contexts=[recorded])
    assert report.ok, report.reason
    assert report.hooks == ["advise", "propose", "review", "select", "accept"]
    assert report.checks == 5 * 2 * (1 + len(synthetic_contexts()))
    assert report.to_json() == {
        "ok": True,
        "reason": None,
        "hooks": report.hooks,
        "checks": report.checks,
    }


@pytest.mark.parametrize("source", ["", "# nothing\n", "def helper(x):\n    return x\n"])
async def test_accepts_mechanism_without_hooks(pool: SandboxPool, source: str) -> None:
    assert await validate_mechanism(pool, source) == ValidationReport(True, None, [], 0)


async def _reason(pool: SandboxPool, source: str, timeout_s: float = 1.0) -> str:
    report = await validate_mechanism(pool, source, timeout_s=timeout_s)
    assert not report.ok
    assert report.reason is not None and "\n" not in report.reason
    return report.reason


async def test_rejects_wrong_arity(pool: SandboxPool) -> None:
    reason = await _reason(pool, "def select(candidates):\n    return [0]\n")
    assert reason == (
        "select must take exactly 2 parameter(s) (candidates, ctx), "
        "but is defined as select(candidates)"
    )


async def test_rejects_wrong_return_type(pool: SandboxPool) -> None:
    reason = await _reason(pool, "def advise(ctx):\n    return 3\n")
    assert reason == "advise returned 3 on context 'empty history': advise must return a string"


async def test_rejects_bad_indices_on_long_history(pool: SandboxPool) -> None:
    source = "def select(candidates, ctx):\n    return [5] if len(ctx['history']) > 100 else [0]\n"
    reason = await _reason(pool, source)
    assert reason == (
        "select returned [5] on context 'long history': select indices must be integers in [0, 3)"
    )


async def test_rejects_hook_that_times_out(pool: SandboxPool) -> None:
    source = "def propose(ctx):\n    while ctx['history']:\n        pass\n    return []\n"
    reason = await _reason(pool, source, timeout_s=0.3)
    assert reason == "propose did not finish on context 'long history': no result within 0.3 s"


async def test_rejects_syntax_error(pool: SandboxPool) -> None:
    reason = await _reason(pool, "def propose(ctx)\n    return []\n")
    assert reason.startswith("policy: line 1: syntax error")


async def test_rejects_hook_that_raises_on_failed_history(pool: SandboxPool) -> None:
    source = "def accept(trial, ctx):\n    return trial['metric'] < ctx['incumbent']['metric']\n"
    reason = await _reason(pool, source)
    assert reason.startswith("accept raised on context 'all failed': TypeError: '<' not supported")
    assert reason.endswith("(line 2)")


async def test_rejects_near_miss_hook_name(pool: SandboxPool) -> None:
    reason = await _reason(pool, "def Propose(ctx):\n    return []\n")
    assert "'Propose' looks like the hook 'propose'" in reason
