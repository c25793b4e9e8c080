"""What the sandbox costs per hook call and per worker (re)start.

    python benchmarks/sandbox_latency.py [--calls 3000] [--starts 20] [--kills 10]

(a) median and p99 latency of a `select` hook over a ~10 KB history through SandboxPool,
    against a 1 ms median target (PASS/FAIL);
(b) worker start (spawn to ready line) and the first call after a timeout kill (respawn
    included);
(c) the same hook called in-process on the same ctx, exec'd plainly and compiled under
    RestrictedPython without a process boundary, measured interleaved with (a) so that both
    see the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bilevel.sandbox.policy import compile_mechanism, restricted_globals
from bilevel.sandbox.pool import SandboxPool

TARGET_MEDIAN_MS = 1.0
WARMUP_CALLS = 200
CTX_BYTES = 10_000

# A realistic selection hook: one pass over the history (how often each parameter was
# changed, the best metric so far), then rank candidates by how untried their changes are.
MECHANISM = """
def select(candidates, ctx):
    memory = ctx["memory"]
    memory["calls"] = memory.get("calls", 0) + 1
    tried = {}
    best = None
    for trial in ctx["history"]:
        for name in trial["changes"]:
            tried[name] = tried.get(name, 0) + 1
        metric = trial["metric"]
        if metric is not None and (best is None or metric < best):
            best = metric
    memory["best"] = best
    scored = []
    for index, candidate in enumerate(candidates):
        novelty = sum(1.0 / (1 + tried.get(name, 0)) for name in candidate["changes"])
        scored.append((-novelty, index))
    scored.sort()
    return [index for _, index in scored[: max(1, ctx["picks"])]]
"""
LOOP = "def advise(ctx):\n    while True:\n        pass\n"

SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "logfloat", "default": 0.001, "low": 1e-5, "high": 0.1},
    "batch": {"type": "int", "default": 64, "low": 8, "high": 512},
    "layers": {"type": "int", "default": 4, "low": 1, "high": 12},
    "dropout": {"type": "float", "default": 0.1, "low": 0.0, "high": 0.5},
    "warmup": {"type": "float", "default": 0.05, "low": 0.0, "high": 0.3},
    "optimizer": {"type": "categorical", "default": "adam", "choices": ["adam", "sgd", "lion"]},
}


def _changes(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in rng.sample(sorted(SPACE), rng.randint(1, 3)):
        spec = SPACE[name]
        if spec["type"] == "categorical":
            out[name] = rng.choice(spec["choices"])
        elif spec["type"] == "int":
            out[name] = rng.randint(spec["low"], spec["high"])
        else:
            out[name] = round(rng.uniform(spec["low"], spec["high"]), 6)
    return out


def make_ctx(target_bytes: int = CTX_BYTES) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(candidates, ctx) with a history grown until the ctx is about target_bytes of JSON."""
    rng = random.Random(0)
    defaults = {name: spec["default"] for name, spec in SPACE.items()}
    ctx: dict[str, Any] = {
        "iteration": 0, "cycle": 0, "evaluations_left": 100, "picks": 2, "seed": 0,
        "direction": "minimize", "space": SPACE, "frozen": [], "neighbors": {},
        "baseline": {"config": defaults, "metric": 1.3},
        "incumbent": {"config": defaults, "metric": 1.3}, "history": [], "memory": {},
    }  # fmt: skip
    while len(json.dumps(ctx)) < target_bytes:
        changes = _changes(rng)
        ok = rng.random() < 0.9
        ctx["history"].append(
            {"trial": len(ctx["history"]) + 1, "config": {**defaults, **changes},
             "changes": changes, "metric": round(rng.uniform(0.9, 1.4), 4) if ok else None,
             "status": "ok" if ok else "crash", "accepted": False}
        )  # fmt: skip
        ctx["iteration"] = len(ctx["history"])
    candidates = [
        {"changes": _changes(rng), "source": "bench", "hypothesis": "h"} for _ in range(6)
    ]
    return candidates, ctx


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def _hook(namespace: dict[str, Any]) -> Callable[..., Any]:
    func = namespace["select"]
    assert callable(func)
    return func


async def bench_calls(calls: int) -> bool:
    candidates, ctx = make_ctx()
    size = len(json.dumps(ctx))
    plain: dict[str, Any] = {}
    exec(compile(MECHANISM, "<mechanism>", "exec"), plain)
    restricted = restricted_globals()
    exec(compile_mechanism(MECHANISM), restricted)
    direct, guarded = _hook(plain), _hook(restricted)
    times: dict[str, list[float]] = {"sandbox": [], "plain": [], "restricted": []}
    async with SandboxPool(workers=1, timeout_s=5.0) as pool:
        for i in range(WARMUP_CALLS + calls):
            t0 = time.perf_counter()
            result = await pool.call(MECHANISM, "select", [candidates, ctx])
            t1 = time.perf_counter()
            direct(candidates, ctx)
            t2 = time.perf_counter()
            guarded(candidates, ctx)
            t3 = time.perf_counter()
            if result.outcome != "ok":
                raise SystemExit(f"hook failed: {result.outcome} {result.error}")
            if i >= WARMUP_CALLS:
                times["sandbox"].append((t1 - t0) * 1000)
                times["plain"].append((t2 - t1) * 1000)
                times["restricted"].append((t3 - t2) * 1000)
        seccomp = pool.seccomp()
    print(f"(a) hook call through SandboxPool: select over {len(ctx['history'])} trials, "
          f"ctx {size} bytes of JSON, {calls} calls after {WARMUP_CALLS} warm-up, "
          f"seccomp {seccomp}")  # fmt: skip
    med, p99 = _ms(times["sandbox"])
    verdict = "PASS" if med <= TARGET_MEDIAN_MS else "FAIL"
    print(f"    sandbox      median {med:.3f} ms  p99 {p99:.3f} ms  "
          f"target median <= {TARGET_MEDIAN_MS:g} ms: {verdict}")  # fmt: skip
    print("(c) same hook, same ctx, in this process (interleaved with (a)):")
    for name, label in (("plain", "plain exec"), ("restricted", "RestrictedPython")):
        m, p = _ms(times[name])
        print(f"    {label:<17}median {m:.3f} ms  p99 {p:.3f} ms  "
              f"sandbox overhead {med - m:+.3f} ms  ratio {med / m:.1f}x")  # fmt: skip
    return verdict == "PASS"


async def bench_starts(starts: int, kills: int) -> None:
    spawn: list[float] = []
    for _ in range(starts):
        pool = SandboxPool(workers=1)
        t0 = time.perf_counter()
        await pool.start()
        spawn.append((time.perf_counter() - t0) * 1000)
        await pool.close()
    med, p99 = _ms(spawn)
    print(f"(b) worker start, spawn to ready line: median {med:.1f} ms  max {max(spawn):.1f} ms "
          f"over {starts} starts")  # fmt: skip
    _, ctx = make_ctx(1000)
    advise = "def advise(ctx):\n    return 'ok'\n"
    timeout_s = 0.2
    after_kill: list[float] = []
    async with SandboxPool(workers=1, timeout_s=timeout_s) as pool:
        await pool.call(advise, "advise", [ctx])
        for _ in range(kills):
            killed = await pool.call(LOOP, "advise", [ctx])
            assert killed.outcome == "timeout", killed
            t0 = time.perf_counter()
            result = await pool.call(advise, "advise", [ctx])
            after_kill.append((time.perf_counter() - t0) * 1000)
            assert result.outcome == "ok", result
    med_k, _ = _ms(after_kill)
    print(f"    first call after a timeout kill ({timeout_s:g} s timeout), respawn included: "
          f"median {med_k:.1f} ms  max {max(after_kill):.1f} ms over {kills} kills")  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    t0 = time.perf_counter()
    passed = await bench_calls(max(2000, args.calls))
    await bench_starts(args.starts, args.kills)
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
