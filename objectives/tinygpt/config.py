"""tinygpt's configuration, without torch: what the objective checks before a training process
starts, and what train.py runs. Importing it costs nothing (the CLI and the graph import it)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

VOCAB_SIZE = 256  # bytes
# Scored target bytes: a power of two, so every power-of-two seq_len tiles it exactly and every
# config is scored on exactly the same bytes.
DEFAULT_VAL_TARGETS = 65_536


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 256
    seq_len: int = 256
    depth: int = 4
    n_embd: int = 128
    n_head: int = 4
    tie_embeddings: bool = False

    def problems(self) -> list[str]:
        """Why this config cannot be built (empty if it can)."""
        out = []
        if min(self.vocab_size, self.seq_len, self.depth, self.n_embd, self.n_head) < 1:
            out.append("vocab_size, seq_len, depth, n_embd and n_head must all be >= 1")
        elif self.n_embd % self.n_head:
            out.append(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        elif (self.n_embd // self.n_head) % 2:
            out.append(f"head dim {self.n_embd // self.n_head} must be even for RoPE")
        return out


# Set by the objective: the run stops if that process is gone (a killed `bilevel run` leaves no
# orphan training in its own process group to compete with the resumed run).
PARENT_PID_ENV = "TINYGPT_PARENT_PID"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one run needs; the defaults are the CPU preset's baseline."""

    depth: int = 4
    n_embd: int = 128
    n_head: int = 4
    seq_len: int = 256
    total_batch_size: int = 16_384  # tokens per optimizer step
    device_batch_size: int = 8  # sequences per forward/backward pass
    matrix_lr: float = 0.004
    embedding_lr: float = 0.02
    head_lr: float = 0.004
    warmup_frac: float = 0.05
    warmdown_frac: float = 0.3
    final_lr_frac: float = 0.0
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    tie_embeddings: bool = False
    seed: int = 0
    budget_mode: str = "tokens"  # tokens | seconds
    budget_tokens: int = 524_288
    budget_seconds: float = 300.0
    val_targets: int = DEFAULT_VAL_TARGETS
    device: str = "cpu"  # cpu | cuda | auto
    dtype: str = "float32"  # float32 | bfloat16 (autocast on CUDA)
    compile: bool = False
    threads: int = 0  # torch CPU threads; 0 = $TINYGPT_THREADS, else torch's own default

    @property
    def grad_accum(self) -> int:
        return self.total_batch_size // (self.device_batch_size * self.seq_len)

    def model_config(self) -> GPTConfig:
        return GPTConfig(
            vocab_size=VOCAB_SIZE,
            seq_len=self.seq_len,
            depth=self.depth,
            n_embd=self.n_embd,
            n_head=self.n_head,
            tie_embeddings=self.tie_embeddings,
        )


class BadConfig(ValueError):
    """A config that cannot run; the message says why in one line."""


def parse_config(raw: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from JSON data: unknown keys, wrong types and bad combinations raise."""
    if not isinstance(raw, dict):
        raise BadConfig(f"config must be a JSON object, got {type(raw).__name__}")
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise BadConfig(f"unknown config keys: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        kind = type(getattr(TrainConfig, name))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if type(value) is not kind:
            raise BadConfig(f"{name}={value!r} must be {kind.__name__}")
        values[name] = value
    config = TrainConfig(**values)
    problems = check(config)
    if problems:
        raise BadConfig("; ".join(problems))
    return config


def check(c: TrainConfig) -> list[str]:
    """Why this config cannot run (empty when it can): caught before any training starts."""
    out = c.model_config().problems()
    if c.device_batch_size < 1 or c.total_batch_size < 1:
        out.append("total_batch_size and device_batch_size must be >= 1")
    elif c.total_batch_size % (c.device_batch_size * c.seq_len):
        out.append(
            f"total_batch_size {c.total_batch_size} is not a multiple of device_batch_size x "
            f"seq_len = {c.device_batch_size} x {c.seq_len} = {c.device_batch_size * c.seq_len}"
        )
    if c.seq_len > 0 and c.val_targets % c.seq_len:
        out.append(f"seq_len {c.seq_len} does not divide val_targets {c.val_targets}")
    for name in ("warmup_frac", "warmdown_frac", "final_lr_frac"):
        if not 0.0 <= getattr(c, name) <= 1.0:
            out.append(f"{name} must be in [0, 1]")
    if c.warmup_frac + c.warmdown_frac > 1.0:
        out.append(f"warmup_frac + warmdown_frac = {c.warmup_frac + c.warmdown_frac:g} > 1")
    if min(c.matrix_lr, c.embedding_lr, c.head_lr) <= 0 or c.weight_decay < 0:
        out.append("learning rates must be > 0 and weight_decay >= 0")
    if not (0.0 <= c.adam_beta1 < 1.0 and 0.0 <= c.adam_beta2 < 1.0):
        out.append("adam betas must be in [0, 1)")
    if c.budget_mode not in ("tokens", "seconds"):
        out.append(f"budget_mode {c.budget_mode!r} must be tokens or seconds")
    if c.budget_tokens < 1 or c.budget_seconds <= 0:
        out.append("budget_tokens and budget_seconds must be > 0")
    if c.device not in ("cpu", "cuda", "auto"):
        out.append(f"device {c.device!r} must be cpu, cuda or auto")
    if c.dtype not in ("float32", "bfloat16"):
        out.append(f"dtype {c.dtype!r} must be float32 or bfloat16")
    return out
