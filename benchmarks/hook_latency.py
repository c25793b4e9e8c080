"""Every library mechanism's hooks with 500 trials of history: within the hook time limit?

    python benchmarks/hook_latency.py [--trials 500] [--calls 20]

Each hook a library mechanism defines is called through the real sandbox (SandboxPool, the
default 1 s limit) on a ctx whose history holds --trials decided trials of a mixed space (log,
linear, int and categorical parameters), and then on the same ctx with its own memory carried
from call to call, as in a run. Printed: median and worst milliseconds per hook; PASS when the
worst call of every hook is within the limit with room (below LIMIT_SHARE of it).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time
from typing import Any

from bilevel.agents.meta_researcher import library
from bilevel.config import RunConfig
from bilevel.contract import HOOKS, build_ctx
from bilevel.objectives.space import Param, SearchSpace
from bilevel.sandbox.policy import compile_mechanism
from bilevel.sandbox.pool import SandboxPool
from bilevel.sandbox.validation import _args

LIMIT_S = RunConfig.model_fields["hook_timeout_s"].default
LIMIT_SHARE = 0.5
SPACE = SearchSpace(
    params=[
        Param(name="lr", kind="logfloat", default=1e-3, low=1e-5, high=1e-1),
        Param(name="wd", kind="logfloat", default=1e-2, low=1e-5, high=1.0),
        Param(name="dropout", kind="float", default=0.1, low=0.0, high=0.6),
        Param(name="warmup", kind="float", default=0.05, low=0.0, high=0.3),
        Param(name="layers", kind="int", default=6, low=1, high=24),
        Param(name="batch", kind="int", default=64, low=8, high=1024),
        Param(name="heads", kind="int", default=4, low=1, high=16),
        Param(name="opt", kind="categorical", default="adamw", choices=["adamw", "sgd", "lion"]),
        Param(name="act", kind="categorical", default="gelu", choices=["gelu", "relu", "silu"]),
        Param(name="schedule", kind="categorical", default="cos", choices=["cos", "lin", "const"]),
    ]
)


def make_ctx(trials: int, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    base = SPACE.defaults()
    history, best = [], 2.0
    for i in range(trials):
        changes = {
            p.name: p.from_unit(rng.random()) for p in rng.sample(SPACE.params, rng.randint(1, 3))
        }
        ok = rng.random() < 0.92
        metric = round(rng.uniform(0.8, 1.6), 5) if ok else None
        accepted = metric is not None and metric < best
        best = metric if accepted else best
        history.append(
            {"trial": i + 1, "config": {**base, **changes}, "changes": changes, "metric": metric,
             "status": "ok" if ok else "crash", "accepted": accepted, "source": "prior"}
        )  # fmt: skip
    return dict(build_ctx(
        space=SPACE, iteration=trials, cycle=trials // 12, evaluations_left=50, picks=1, seed=0,
        direction="minimize", baseline={"config": base, "metric": 1.6},
        incumbent={"config": base, "metric": best}, history=history, frozen=[], noise_margin=0.0,
    ))  # fmt: skip


async def measure(trials: int, calls: int) -> list[tuple[str, str, float, float]]:
    ctx = make_ctx(trials)
    rows = []
    async with SandboxPool(workers=1, timeout_s=LIMIT_S) as pool:
        for name, source in sorted(library().items()):
            compiled = compile_mechanism(source)
            hooks = [h for h in HOOKS if h in compiled.co_names]
            for hook in hooks:
                memory: dict[str, Any] = {}
                times = []
                for i in range(calls):
                    args = _args(hook, {**ctx, "memory": memory}, i)
                    t0 = time.perf_counter()
                    result = await pool.call(source, hook, args, seed=i, timeout_s=LIMIT_S)
                    times.append(time.perf_counter() - t0)
                    if result.outcome != "ok":
                        raise SystemExit(f"{name}.{hook}: {result.outcome} {result.error}")
                    memory = result.memory if isinstance(result.memory, dict) else {}
                rows.append((name, hook, statistics.median(times), max(times)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.trials, args.calls))
    print(f"# {platform.node()}, {args.trials} trials of history, {args.calls} calls per hook, "
          f"limit {LIMIT_S:g} s")  # fmt: skip
    print(f"{'mechanism':<16} {'hook':<8} {'median ms':>10} {'worst ms':>10}")
    for name, hook, median, worst in rows:
        print(f"{name:<16} {hook:<8} {1000 * median:>10.1f} {1000 * worst:>10.1f}")
    worst = max(r[3] for r in rows)
    verdict = "PASS" if worst <= LIMIT_SHARE * LIMIT_S else "FAIL"
    print(
        f"worst call {1000 * worst:.0f} ms: {verdict} (target below {LIMIT_SHARE:.0%} of the limit)"
    )


if __name__ == "__main__":
    main()
