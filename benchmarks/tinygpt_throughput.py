"""tinygpt's training loop against a plain PyTorch loop: training tokens/s, side by side.

    python benchmarks/tinygpt_throughput.py [--rounds 5] [--tokens 65536]

Both paths train the same model class (fresh, same seed) with the same AdamW, on the same batches
(the same sampler and seed), for the same number of tokens, in this one process. The tinygpt path
is `train.run_training` (LR schedule, gradient accumulation, divergence check, budget accounting);
the plain path is the textbook loop below with none of that. The two alternate (A B, B A, ...)
so that drift in machine load hits both alike; medians and best rounds are printed, the verdict
compares best rounds. Target: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

# The OpenMP setting the tinygpt objective gives its training processes (objective.py,
# SUBPROCESS_ENV); it must be in the environment before torch loads libgomp.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import torch  # noqa: E402

from bilevel.objectives.tinygpt import config as settings  # noqa: E402
from bilevel.objectives.tinygpt import data, train  # noqa: E402
from bilevel.objectives.tinygpt.model import GPT  # noqa: E402

TARGET_RATIO = 0.9
DEFAULT_ROUNDS = 5
DEFAULT_TOKENS = 65_536
TOTAL_BATCH = 8_192  # 8 optimizer steps of 4 micro-batches each at the default token count


def fresh(config: settings.TrainConfig) -> tuple[GPT, torch.optim.Optimizer, data.BatchSampler]:
    torch.manual_seed(config.seed)
    model = GPT(config.model_config())
    optimizer = train.build_optimizer(model, config)
    sampler = data.BatchSampler(
        data.tokens("train"), config.device_batch_size, config.seq_len, config.seed
    )
    return model, optimizer, sampler


def tinygpt_loop(config: settings.TrainConfig) -> float:
    model, optimizer, sampler = fresh(config)
    start = time.perf_counter()
    train.run_training(model, optimizer, sampler, config, torch.device("cpu"), log=False)
    return time.perf_counter() - start


def plain_loop(config: settings.TrainConfig) -> float:
    model, optimizer, sampler = fresh(config)
    steps = config.budget_tokens // config.total_batch_size
    start = time.perf_counter()
    for _ in range(steps):
        for _ in range(config.grad_accum):
            x, y = sampler.next()
            loss = model.loss(x, y)
            (loss / config.grad_accum).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS)
    args = parser.parse_args()
    config = replace(
        settings.TrainConfig(), budget_tokens=args.tokens, total_batch_size=TOTAL_BATCH
    )
    assert not settings.check(config), settings.check(config)
    train.setup(config)
    print(
        f"tinygpt throughput: depth {config.depth}  n_embd {config.n_embd}  seq_len "
        f"{config.seq_len}  batch {config.total_batch_size} tokens ({config.grad_accum} x "
        f"{config.device_batch_size} seqs)  {args.tokens} tokens a run  threads "
        f"{torch.get_num_threads()}  torch {torch.__version__}"
    )
    plain_loop(replace(config, budget_tokens=config.total_batch_size))  # warm-up, not counted
    rates: dict[str, list[float]] = {"tinygpt": [], "plain": []}
    paths = {"tinygpt": tinygpt_loop, "plain": plain_loop}
    for r in range(args.rounds):
        order = ["tinygpt", "plain"] if r % 2 == 0 else ["plain", "tinygpt"]
        for name in order:
            rates[name].append(args.tokens / paths[name](config))
        print(
            f"round {r + 1}: tinygpt {rates['tinygpt'][-1]:9,.0f} tok/s   "
            f"plain {rates['plain'][-1]:9,.0f} tok/s",
            flush=True,
        )
    for label, pick in (("median", statistics.median), ("best", max)):
        tiny, plain = pick(rates["tinygpt"]), pick(rates["plain"])
        print(f"{label:>6}: tinygpt {tiny:9,.0f} tok/s   plain {plain:9,.0f} tok/s")
    # Other processes only ever slow a round down, so each path's best round is the least
    # disturbed estimate of its own speed; the verdict compares those.
    ratio = max(rates["tinygpt"]) / max(rates["plain"])
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"ratio tinygpt/plain (best rounds): {ratio:.3f} (target >= {TARGET_RATIO})  {verdict}")


if __name__ == "__main__":
    main()
