"""A compact GPT in the Karpathy lineage (nanoGPT -> modded-nanogpt -> nanochat/autoresearch).

Pre-norm transformer blocks; RMSNorm without learned gains; causal self-attention with rotary
position embeddings (RoPE) and RMS-normalised queries and keys through
F.scaled_dot_product_attention (flash / memory-efficient kernels where the device has them);
a ReLU^2 MLP; no biases anywhere; a tied or untied output head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bilevel.objectives.tinygpt.config import GPTConfig

ROPE_BASE = 10_000.0
MLP_RATIO = 4
# Untied: a near-zero head starts every prediction near uniform, as nanochat does.
HEAD_INIT_STD = 0.001


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rope_tables(seq_len: int, head_dim: int, base: float = ROPE_BASE) -> torch.Tensor:
    """cos and sin of position x frequency, stacked: shape (2, seq_len, head_dim // 2)."""
    freqs = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)
    return torch.stack((angles.cos(), angles.sin()))


def apply_rope(x: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Rotate each (first half, second half) pair of x (B, H, T, D) by its position's angle."""
    t = x.size(-2)
    cos, sin = tables[0, :t].to(x.dtype), tables[1, :t].to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        # QK-norm keeps attention logits bounded, which makes high learning rates survivable.
        q, k = apply_rope(rms_norm(q), rope), apply_rope(rms_norm(k), rope)
        # Under autocast the norm may come back in float32; SDPA wants one dtype for q, k and v.
        q, k = q.to(v.dtype), k.to(v.dtype)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, MLP_RATIO * config.n_embd, bias=False)
        self.proj = nn.Linear(MLP_RATIO * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.attn = Attention(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(rms_norm(x), rope)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        problems = config.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.head = None
        if not config.tie_embeddings:
            self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        head_dim = config.n_embd // config.n_head
        self.register_buffer("rope", rope_tables(config.seq_len, head_dim), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Deterministic given torch's seed: call order is fixed, so the same seed, same weights."""
        n_embd = self.config.n_embd
        # Tied, the embedding is also the head: small rows keep the first logits near uniform.
        self.wte.weight.normal_(0.0, n_embd**-0.5 if self.config.tie_embeddings else 1.0)
        bound = math.sqrt(3.0 / n_embd)  # uniform with std 1/sqrt(fan_in)
        for block in self.blocks:
            block.attn.qkv.weight.uniform_(-bound, bound)
            block.mlp.fc.weight.uniform_(-bound, bound)
            # Zero output projections: each block starts as the identity on the residual stream.
            block.attn.proj.weight.zero_()
            block.mlp.proj.weight.zero_()
        if self.head is not None:
            self.head.weight.normal_(0.0, HEAD_INIT_STD)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids idx (B, T)."""
        x = rms_norm(self.wte(idx))
        for block in self.blocks:
            x = block(x, self.rope)
        x = rms_norm(x)
        return self.head(x) if self.head is not None else x @ self.wte.weight.t()

    def loss(
        self, idx: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        logits = self(idx)
        return F.cross_entropy(
            logits.float().view(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction
        )

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role, for per-role learning rates: matrix, embedding, head."""
        matrix = [p for block in self.blocks for p in block.parameters()]
        groups = {"matrix": matrix, "embedding": [self.wte.weight]}
        if self.head is not None:
            groups["head"] = [self.head.weight]
        return groups

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), Karpathy's estimate: 6 N + attention."""
        c = self.config
        matrix = sum(p.numel() for p in self.param_groups()["matrix"])
        head = c.vocab_size * c.n_embd  # the head matmul costs the same tied or not
        return 6.0 * (matrix + head) + 12.0 * c.depth * c.n_embd * c.seq_len
