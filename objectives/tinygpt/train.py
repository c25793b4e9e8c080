"""Train the tinygpt model once and print Karpathy's summary block.

    python -m bilevel.objectives.tinygpt.train --config '{"depth": 4, "total_batch_size": 8192}'

The config is one JSON object: the search-space knobs plus the preset's settings (see
TrainConfig). The budget is either TOKENS (the same seed and token budget give the same val_bpb
bit for bit on CPU) or SECONDS of training, Karpathy's way: the first UNTIMED_STEPS steps (compile
and allocator warm-up) are not counted. The summary ends the output, one `key: value` a line;
`status:` is always there (ok | crash | nan | oom), and a failure adds a one-line `reason:`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bilevel.objectives.tinygpt import data
from bilevel.objectives.tinygpt.config import (
    PARENT_PID_ENV,
    BadConfig,
    TrainConfig,
    parse_config,
)
from bilevel.objectives.tinygpt.model import GPT

UNTIMED_STEPS = 10  # seconds budget: steps excluded from the clock, as in Karpathy's train.py
MAX_LOSS = 100.0  # a training loss above this (or NaN) counts as diverged
LOG_LINES = 20  # progress lines per run, whatever the step count
EVAL_TOKENS_PER_BATCH = 16_384
# Dense bf16 peak FLOP/s by GPU name, for MFU (Karpathy's reference point is the H100's).
PEAK_FLOPS = {"H100": 989.5e12, "H200": 989.5e12, "A100": 312e12}


class Diverged(RuntimeError):
    pass


class Orphaned(RuntimeError):
    pass


def setup(c: TrainConfig) -> torch.device:
    """Pick the device, set threads and seed every generator the run touches."""
    device = torch.device("cuda" if c.device == "auto" and torch.cuda.is_available() else c.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadConfig("device cuda requested but CUDA is not available")
    threads = c.threads or int(os.environ.get("TINYGPT_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(c.seed)
    torch.manual_seed(c.seed)
    if device.type == "cpu":
        # CPU kernels have deterministic versions at no visible cost; on CUDA they would be slower
        # and a seconds budget is not reproducible anyway.
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def build_optimizer(model: GPT, c: TrainConfig) -> torch.optim.AdamW:
    """AdamW with one group per role; weight decay on the matrices only."""
    lrs = {"matrix": c.matrix_lr, "embedding": c.embedding_lr, "head": c.head_lr}
    groups = [
        {"params": params, "lr": lrs[role], "initial_lr": lrs[role], "role": role,
         "weight_decay": c.weight_decay if role == "matrix" else 0.0}
        for role, params in model.param_groups().items()
    ]  # fmt: skip
    betas = (c.adam_beta1, c.adam_beta2)
    try:  # the fused kernel (CPU and CUDA in recent torch) does the whole update in one pass
        return torch.optim.AdamW(groups, betas=betas, eps=1e-8, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, betas=betas, eps=1e-8)


def lr_multiplier(progress: float, c: TrainConfig) -> float:
    """Warm-up from 0, constant, then linear warm-down to final_lr_frac; progress in [0, 1]."""
    if progress < c.warmup_frac:
        return progress / c.warmup_frac
    if progress <= 1.0 - c.warmdown_frac or c.warmdown_frac == 0:
        return 1.0
    left = max(0.0, (1.0 - progress) / c.warmdown_frac)
    return left + (1.0 - left) * c.final_lr_frac


def autocast(c: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if c.dtype == "bfloat16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class TrainStats:
    steps: int = 0
    tokens: int = 0
    timed_tokens: int = 0  # the tokens of the steps inside training_seconds
    training_seconds: float = 0.0
    last_loss: float = float("nan")


def _parents() -> tuple[int, int]:
    """Our parent and its parent: the launcher may start us through a reaper
    (objectives/reaper.py), which dies with it."""
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/stat", "rb") as f:
            stat = f.read()
        return ppid, int(stat[stat.rfind(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return ppid, ppid


def run_training(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    sampler: data.BatchSampler,
    c: TrainConfig,
    device: torch.device,
    log: bool = True,
) -> TrainStats:
    """The training loop proper: LR schedule, gradient accumulation, budget, divergence check."""
    loss_fn = torch.compile(model.loss) if c.compile else model.loss
    planned = max(1, c.budget_tokens // c.total_batch_size)  # tokens mode: known up front
    log_every = max(1, planned // LOG_LINES) if c.budget_mode == "tokens" else 50
    parent = int(os.environ.get(PARENT_PID_ENV, "0"))
    stats = TrainStats()
    model.train()
    while True:
        if parent and parent not in _parents():
            raise Orphaned(f"parent process {parent} exited")
        if c.budget_mode == "tokens":
            if stats.steps >= planned:
                break
            progress = (stats.steps + 1) / planned  # +1: the first step gets a non-zero lr
        else:
            if stats.steps > UNTIMED_STEPS and stats.training_seconds >= c.budget_seconds:
                break
            progress = min(1.0, stats.training_seconds / c.budget_seconds)
        multiplier = lr_multiplier(progress, c)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * multiplier
        start = time.perf_counter()
        for _ in range(c.grad_accum):
            x, y = sampler.next(device)
            with autocast(c, device):
                loss = loss_fn(x, y)
            (loss / c.grad_accum).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stats.last_loss = loss.item()  # also waits for the GPU, so the step time below is real
        dt = time.perf_counter() - start
        stats.steps += 1
        stats.tokens += c.total_batch_size
        if c.budget_mode == "tokens" or stats.steps > UNTIMED_STEPS:
            stats.training_seconds += dt
            stats.timed_tokens += c.total_batch_size
        if not math.isfinite(stats.last_loss) or stats.last_loss > MAX_LOSS:
            raise Diverged(f"training loss {stats.last_loss} at step {stats.steps}")
        if log and (stats.steps % log_every == 0 or stats.steps == 1):
            print(
                f"step {stats.steps:05d} | loss {stats.last_loss:.6f} | lrm {multiplier:.3f} | "
                f"dt {dt * 1000:.0f}ms | tok/s {c.total_batch_size / dt:,.0f}",
                flush=True,
            )
    return stats


@torch.no_grad()
def evaluate_bpb(model: GPT, c: TrainConfig, device: torch.device) -> float:
    """val_bpb on the fixed slice: summed cross-entropy (nats) / (ln 2 x target bytes)."""
    x, y = data.val_windows(data.tokens("val"), c.val_targets, c.seq_len)
    rows = max(1, EVAL_TOKENS_PER_BATCH // c.seq_len)
    model.eval()
    total_nats = 0.0
    for i in range(0, len(x), rows):
        with autocast(c, device):
            nats = model.loss(x[i : i + rows].to(device), y[i : i + rows].to(device), "sum")
        total_nats += nats.item()
    model.train()
    return data.bits_per_byte(total_nats, y.numel())


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def mfu_percent(model: GPT, stats: TrainStats, device: torch.device) -> float | None:
    if device.type != "cuda" or stats.training_seconds <= 0:
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    if peak is None:
        return None
    flops = model.flops_per_token() * stats.timed_tokens
    return 100.0 * flops / stats.training_seconds / peak


def train(c: TrainConfig) -> dict[str, Any]:
    """One full run: setup, train, evaluate. Returns the summary (status ok)."""
    t0 = time.perf_counter()
    device = setup(c)
    model = GPT(c.model_config()).to(device)
    optimizer = build_optimizer(model, c)
    sampler = data.BatchSampler(data.tokens("train"), c.device_batch_size, c.seq_len, c.seed)
    print(f"config: {json.dumps(asdict(c), sort_keys=True)}", flush=True)
    print(f"params: {model.num_params():,}  grad_accum: {c.grad_accum}  device: {device}")
    stats = run_training(model, optimizer, sampler, c, device)
    val_bpb = evaluate_bpb(model, c, device)
    summary: dict[str, Any] = {
        "status": "ok",
        "val_bpb": val_bpb,
        "training_seconds": round(stats.training_seconds, 2),
        "total_seconds": round(time.perf_counter() - t0, 2),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "total_tokens_M": round(stats.tokens / 1e6, 6),
        "num_steps": stats.steps,
        "num_params_M": round(model.num_params() / 1e6, 4),
        "tokens_per_second": round(stats.timed_tokens / max(stats.training_seconds, 1e-9)),
        "depth": c.depth,
    }
    mfu = mfu_percent(model, stats, device)
    if mfu is not None:
        summary["mfu_percent"] = round(mfu, 2)
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Karpathy's block: a `---` line, then `key: value` a line.

    val_bpb is printed at full (round-trip) precision, so equal runs can be checked bit for bit.
    """
    return ["---"] + [f"{key}: {value}" for key, value in summary.items()]


def run(raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Exit code and summary for one raw config; every failure becomes a status, not a traceback."""
    try:
        return 0, train(parse_config(raw))
    except BadConfig as exc:
        return 1, {"status": "crash", "reason": str(exc)}
    except Diverged as exc:
        return 1, {"status": "nan", "reason": str(exc)}
    except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
        return 1, {"status": "oom", "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
    except (data.CorpusError, Orphaned) as exc:
        return 1, {"status": "crash", "reason": str(exc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train tinygpt once and print its summary.")
    parser.add_argument("--config", default="{}", help="JSON object of TrainConfig fields")
    args = parser.parse_args(argv)
    try:
        raw = json.loads(args.config)
    except json.JSONDecodeError as exc:
        code, summary = 1, {"status": "crash", "reason": f"--config is not JSON: {exc}"}
    else:
        code, summary = run(raw)
    print("\n".join(summary_lines(summary)), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
