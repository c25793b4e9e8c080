"""The `tinygpt` (CPU) and `tinygpt-gpu` objectives: one real training run per evaluation.

`evaluate` starts `python -m bilevel.objectives.tinygpt.train` in its own process group, kills
the whole group on timeout (status timeout), and reads Karpathy's summary block from its output:
`status:` and `val_bpb:` give the EvalResult, every `key: value` of the block goes to `extra`, and
the last LOG_TAIL_LINES lines go to the ledger. Because evaluate() isolates the training itself,
the objective is `inline` (the evaluator need not wrap it in a second subprocess).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from bilevel.objectives.base import EvalResult, Status, register
from bilevel.objectives.script_run import run_command
from bilevel.objectives.space import Param, SearchSpace
from bilevel.objectives.tinygpt.config import PARENT_PID_ENV, TrainConfig, parse_config

TRAIN_MODULE = "bilevel.objectives.tinygpt.train"
LOG_TAIL_LINES = 30
SUMMARY_LINE = re.compile(r"^(\w+):\s*(\S.*?)\s*$")
# libgomp's threads busy-wait ~300k spins at every barrier by default; when another process
# shares the cores (parallel trials, the user's own work) that spinning starves everyone: measured
# on 2 cores, 2-5x slower training. A short spin costs nothing alone (within 2%), and the user's
# own setting, if any, wins.
SUBPROCESS_ENV = {"GOMP_SPINCOUNT": "1000", "PYTHONUNBUFFERED": "1"}
TEXT_KEYS = ("status", "reason")  # never numbers: float("nan") would swallow `status: nan`
STATUSES: tuple[Status, ...] = ("ok", "crash", "timeout", "nan", "oom")

DESCRIPTION = (
    "Byte-level GPT pretraining (RoPE, RMSNorm, ReLU^2 MLP, AdamW) on CPython standard-library "
    "source shipped with the package, scored by val_bpb (bits per byte, lower is better) on a "
    "fixed held-out slice. {budget} Batch sizes are in tokens (total) and sequences (device); "
    "total_batch_size must be a multiple of device_batch_size x seq_len, and n_embd / n_head must "
    "be an even integer, or the run fails at once with status crash."
)


def _int(name: str, default: int, low: int, high: int, text: str) -> Param:
    return Param(name=name, kind="int", default=default, low=low, high=high, description=text)


def _log(name: str, default: float, low: float, high: float, text: str) -> Param:
    return Param(name=name, kind="logfloat", default=default, low=low, high=high, description=text)


def _lin(name: str, default: float, low: float, high: float, text: str) -> Param:
    return Param(name=name, kind="float", default=default, low=low, high=high, description=text)


def _cat(name: str, default: Any, choices: list[Any], text: str) -> Param:
    return Param(name=name, kind="categorical", default=default, choices=choices, description=text)


@dataclass(frozen=True)
class Ranges:
    """Where a preset's architecture and batch knobs may go. Widths are multiples of 32 and
    batch sizes powers of two, so a proposal is a real alternative, not an off-by-one that could
    only fail (n_embd 255 with 4 heads); combinations can still be invalid and then crash fast."""

    max_depth: int
    widths: list[int]
    total_batches: list[int]
    device_batches: list[int]


def powers_of_two(low: int, high: int) -> list[int]:
    return [2**k for k in range(low.bit_length() - 1, high.bit_length())]


def make_space(base: TrainConfig, r: Ranges) -> SearchSpace:
    """The knobs, listed in the order a person would list them, defaulting to the baseline."""
    return SearchSpace(
        params=[
            _int("depth", base.depth, 1, r.max_depth, "transformer blocks"),
            _cat("n_embd", base.n_embd, r.widths, "model width"),
            _cat("n_head", base.n_head, [1, 2, 4, 8], "attention heads"),
            _cat("seq_len", base.seq_len, [64, 128, 256, 512, 1024], "context length (bytes)"),
            _cat("total_batch_size", base.total_batch_size, r.total_batches, "tokens per step"),
            _cat("device_batch_size", base.device_batch_size, r.device_batches, "seqs per pass"),
            _log("matrix_lr", base.matrix_lr, 1e-4, 0.1, "AdamW lr of the block matrices"),
            _log("embedding_lr", base.embedding_lr, 1e-4, 1.0, "AdamW lr of the embedding"),
            _log("head_lr", base.head_lr, 1e-4, 0.1, "AdamW lr of the output head"),
            _lin("warmup_frac", base.warmup_frac, 0.0, 0.5, "share of the budget warming up"),
            _lin("warmdown_frac", base.warmdown_frac, 0.0, 0.9, "share of the budget decaying"),
            _lin("weight_decay", base.weight_decay, 0.0, 0.5, "AdamW decay of the matrices"),
            _lin("adam_beta2", base.adam_beta2, 0.8, 0.999, "AdamW second-moment decay"),
        ]
    )


# CPU: 0.85M parameters, 512k tokens: about 35 s on 2 free cores. The baseline's total batch
# (16k tokens, so 32 steps) is far larger than that budget deserves (measured: 1k-token steps
# reach ~1 bit/byte lower); finding that is left to the search, as in the paper.
CPU_BASELINE = TrainConfig()
CPU_TIMEOUT_S = 300.0
CPU_RANGES = Ranges(
    max_depth=8,
    widths=[32, 64, 96, 128, 192, 256],
    total_batches=powers_of_two(1024, 131_072),
    device_batches=powers_of_two(1, 64),
)
# GPU: Karpathy-sized (depth 8, width 512, 2^17-token steps) in bf16 with torch.compile, for a
# seconds budget on one H100. The shipped corpus is 1.7 MB, so such a run sees it many times over.
GPU_BASELINE = TrainConfig(
    depth=8,
    n_embd=512,
    n_head=4,
    seq_len=1024,
    total_batch_size=2**17,
    device_batch_size=32,
    matrix_lr=0.002,
    embedding_lr=0.02,
    head_lr=0.002,
    warmup_frac=0.0,
    warmdown_frac=0.5,
    weight_decay=0.1,
    budget_mode="seconds",
    budget_seconds=120.0,
    val_targets=131_072,
    device="cuda",
    dtype="bfloat16",
    compile=True,
)
GPU_TIMEOUT_S = 900.0
GPU_RANGES = Ranges(
    max_depth=24,
    widths=[256, 384, 512, 768, 1024, 1536, 2048],
    total_batches=powers_of_two(16_384, 2**21),
    device_batches=powers_of_two(1, 256),
)


def parse_summary(text: str) -> dict[str, Any]:
    """The `key: value` lines after the last `---` line; numbers become int or float.

    No `---` line, no summary: the log lines above it (`config: {...}`) are not results.
    """
    lines = text.splitlines()
    start = max((i for i, line in enumerate(lines) if line.strip() == "---"), default=len(lines))
    out: dict[str, Any] = {}
    for line in lines[start + 1 :]:
        match = SUMMARY_LINE.match(line.strip())
        if match:
            key, value = match.groups()
            out[key] = value if key in TEXT_KEYS else _number(value)
    return out


def _number(raw: str) -> Any:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def result_from_output(text: str, returncode: int | None, seconds: float) -> EvalResult:
    """An EvalResult from the training process's output and exit code."""
    summary = parse_summary(text)
    tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
    status = summary.get("status")
    metric = summary.get("val_bpb")
    if status == "ok" and isinstance(metric, int | float) and math.isfinite(metric):
        return EvalResult(metric=float(metric), seconds=seconds, extra=summary, log_tail=tail)
    if status not in STATUSES or status == "ok":
        # No usable summary: the process died. A SIGKILL we did not send is the kernel's OOM killer.
        killed = returncode == -signal.SIGKILL or "MemoryError" in text
        status = "oom" if killed else "crash"
    return EvalResult(metric=None, status=status, seconds=seconds, extra=summary, log_tail=tail)


@dataclass
class TinyGPTObjective:
    name: str
    base: TrainConfig
    space: SearchSpace
    timeout_s: float
    fixed_seed: int | None = None
    metric: str = "val_bpb"
    direction: str = "minimize"
    inline: bool = True  # evaluate() runs the training in its own killable process group
    # `bilevel run --objective tinygpt` without --iterations/--cycle: about 20-30 minutes on 2
    # cores, long enough for the batch-size lever to be found (see the README's result).
    default_iterations: int = 30
    default_cycle: int = 6
    description: str = ""
    preset: dict[str, Any] = field(default_factory=dict)

    def train_config(
        self, config: dict[str, Any], seed: int, budget: float | None = None
    ) -> dict[str, Any]:
        """The JSON handed to train.py: preset, then the validated knobs, then seed and budget."""
        out = {**self.preset, **self.space.validate(config)}
        out["seed"] = self.fixed_seed if self.fixed_seed is not None else seed % 2**31
        if budget is not None:  # in the preset's own unit: tokens or seconds
            key = "budget_tokens" if self.base.budget_mode == "tokens" else "budget_seconds"
            out[key] = int(budget) if key == "budget_tokens" else float(budget)
        return out

    async def evaluate(
        self, config: dict[str, Any], seed: int, budget: float | None = None
    ) -> EvalResult:
        request = json.dumps(self.train_config(config, seed, budget))
        argv = [sys.executable, "-m", TRAIN_MODULE, "--config", request]
        env = {**SUBPROCESS_ENV, **os.environ, PARENT_PID_ENV: str(os.getpid())}
        # its own process group, so a kill takes its children too; the output read as it comes,
        # so a killed run still leaves its log
        run = await run_command(argv, None, env, self.timeout_s)
        if run.timed_out:
            lines = [*run.output.splitlines(), f"killed after {self.timeout_s:g}s"]
            return EvalResult(
                metric=None,
                status="timeout",
                seconds=run.seconds,
                log_tail="\n".join(lines[-LOG_TAIL_LINES:]),
            )
        return result_from_output(run.output, run.returncode, run.seconds)


def make(
    name: str,
    base: TrainConfig,
    timeout_s: float,
    options: dict[str, Any],
    ranges: Ranges,
) -> TinyGPTObjective:
    """Apply objective options: timeout_s, fixed_seed, or any TrainConfig field of the preset."""
    timeout_s = float(options.pop("timeout_s", timeout_s))
    fixed_seed = options.pop("fixed_seed", None)
    try:
        base = parse_config({**base.__dict__, **options})
        space = make_space(base, ranges)
    except ValueError as exc:  # make_objective reports a TypeError as "bad options"
        raise TypeError(str(exc).splitlines()[-1] if "\n" in str(exc) else str(exc)) from None
    preset = {k: v for k, v in base.__dict__.items() if k not in space.names and k != "seed"}
    budget = (
        f"Budget: {base.budget_tokens:,} training tokens (same seed, same result)."
        if base.budget_mode == "tokens"
        else f"Budget: {base.budget_seconds:g} s of training."
    )
    return TinyGPTObjective(
        name=name,
        base=base,
        space=space,
        timeout_s=timeout_s,
        fixed_seed=None if fixed_seed is None else int(fixed_seed),
        description=DESCRIPTION.format(budget=budget),
        preset=preset,
    )


@register("tinygpt")
def make_cpu(**options: Any) -> TinyGPTObjective:
    return make("tinygpt", CPU_BASELINE, CPU_TIMEOUT_S, dict(options), CPU_RANGES)


@register("tinygpt-gpu")
def make_gpu(**options: Any) -> TinyGPTObjective:
    return make("tinygpt-gpu", GPU_BASELINE, GPU_TIMEOUT_S, dict(options), GPU_RANGES)
