"""The shipped corpus as byte tokens: pinned checksums, deterministic batches, the val slice.

Tokens are raw UTF-8 bytes (vocabulary 256), so every target token is exactly one byte of text
and bits per byte is the mean cross-entropy in bits: no tokenizer to ship or to get wrong.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
from pathlib import Path

import torch

DATA_DIR = Path(__file__).resolve().parent / "data"
# SHA-256 of the uncompressed texts written by build_corpus.py (CPython 3.11.7 sources).
SHA256 = {
    "train": "fcbd92a8f77e75e7268e09628cf91fda7b15bd13aceb3fdb2ce02719e2e58977",
    "val": "acc01d537cf9a51e9ac1192fc1f1d4f17cb5d4de12c50bc2f11b0c98d1ab2ea1",
}


class CorpusError(RuntimeError):
    """The shipped corpus is missing or is not the pinned one."""


def read_split(split: str, data_dir: Path = DATA_DIR, expected: str | None = None) -> bytes:
    """The uncompressed bytes of one split, verified against the pinned SHA-256."""
    if split not in SHA256:
        raise CorpusError(f"unknown split {split!r}: expected one of {', '.join(SHA256)}")
    path = data_dir / f"{split}.txt.gz"
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise CorpusError(f"cannot read the tinygpt corpus {path}: {exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    want = expected or SHA256[split]
    if digest != want:
        raise CorpusError(
            f"tinygpt corpus {path} has SHA-256 {digest}, expected {want}: the file was changed "
            "or rebuilt; restore it from the package (or update SHA256 in data.py on purpose)"
        )
    return raw


@functools.cache
def tokens(split: str) -> torch.Tensor:
    """The split as a uint8 tensor of byte tokens (cached: the corpus is read once per process)."""
    return torch.frombuffer(bytearray(read_split(split)), dtype=torch.uint8)


class BatchSampler:
    """Random windows of seq_len + 1 bytes; the order is fixed by the seed alone."""

    def __init__(self, data: torch.Tensor, batch_size: int, seq_len: int, seed: int) -> None:
        if len(data) <= seq_len + 1:
            raise ValueError(f"seq_len {seq_len} does not fit in {len(data)} bytes of text")
        self.data = data
        self.batch_size = batch_size
        self.offsets = torch.arange(seq_len + 1)
        self.generator = torch.Generator().manual_seed(seed)
        self.high = len(data) - seq_len - 1

    def next(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, self.high, (self.batch_size,), generator=self.generator)
        chunk = self.data[starts[:, None] + self.offsets].to(torch.long)
        chunk = chunk.to(device, non_blocking=True)
        return chunk[:, :-1], chunk[:, 1:]


def val_windows(
    data: torch.Tensor, n_targets: int, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation slice: the first n_targets + 1 bytes cut into seq_len windows."""
    if n_targets % seq_len:
        raise ValueError(f"seq_len {seq_len} must divide the {n_targets} validation targets")
    if len(data) < n_targets + 1:
        raise ValueError(f"validation text has {len(data)} bytes, needs {n_targets + 1}")
    x = data[:n_targets].to(torch.long).view(-1, seq_len)
    y = data[1 : n_targets + 1].to(torch.long).view(-1, seq_len)
    return x, y


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """Karpathy's val_bpb: summed cross-entropy in nats over ln 2 times the target bytes."""
    return total_nats / (math.log(2) * n_bytes)
