"""A single-file GPT pretraining script in Karpathy's style, for CPU in about a minute.

Everything is here: the constants a search turns, the model (pre-norm blocks, RMSNorm, rotary
attention, a ReLU^2 MLP, no biases: tinygpt's model), the training loop and the summary that
bilevel reads. The data is the byte-level corpus that ships with bilevel (Python source, PSF
licence), so nothing is downloaded; tokens are bytes, so `val_bpb` is the validation loss in
bits per byte.

    python train.py
"""

import gzip
import math
import os
import time
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

# Hyperparameters (a search rewrites these lines in its own copy of the file)
DEPTH = 2  # transformer blocks
N_EMBD = 64  # model width
N_HEAD = 4  # attention heads (N_EMBD must be a multiple)
SEQ_LEN = 64  # context length in bytes
BATCH_SIZE = 16  # sequences per step
LR = 3e-3  # AdamW peak learning rate
WEIGHT_DECAY = 0.01  # AdamW weight decay
WARMUP_STEPS = 20  # linear warm-up
STEPS = 300  # optimisation steps (the training budget)
EVAL_BATCHES = 20  # validation batches for val_bpb (fixed: it defines the metric)

torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "1")))
torch.manual_seed(int(os.environ.get("BILEVEL_SEED", "0")))
t_start = time.time()


def load(name: str) -> torch.Tensor:
    data = resources.files("bilevel.objectives.tinygpt") / "data" / name
    return torch.frombuffer(bytearray(gzip.decompress(data.read_bytes())), dtype=torch.uint8)


train_data, val_data = load("train.txt.gz").long(), load("val.txt.gz").long()


def batch(data: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(0, len(data) - SEQ_LEN - 1, (BATCH_SIZE,), generator=generator)
    x = torch.stack([data[s : s + SEQ_LEN] for s in starts])
    y = torch.stack([data[s + 1 : s + SEQ_LEN + 1] for s in starts])
    return x, y


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rope_tables(seq_len: int, head_dim: int) -> torch.Tensor:
    freqs = 10_000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)
    return torch.stack((angles.cos(), angles.sin()))


def apply_rope(x: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    cos, sin = tables[0, : x.size(-2)], tables[1, : x.size(-2)]
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.attn_proj = nn.Linear(N_EMBD, N_EMBD, bias=False)
        self.fc = nn.Linear(N_EMBD, 4 * N_EMBD, bias=False)
        self.mlp_proj = nn.Linear(4 * N_EMBD, N_EMBD, bias=False)
        nn.init.zeros_(self.attn_proj.weight)  # each block starts as the identity
        nn.init.zeros_(self.mlp_proj.weight)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        h = rms_norm(x)
        q, k, v = self.qkv(h).view(b, t, 3, N_HEAD, c // N_HEAD).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(rms_norm(q), rope), apply_rope(rms_norm(k), rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.relu(self.fc(rms_norm(x))).square())


class GPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        assert N_EMBD % N_HEAD == 0, f"N_EMBD {N_EMBD} is not a multiple of N_HEAD {N_HEAD}"
        self.wte = nn.Embedding(256, N_EMBD)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.head = nn.Linear(N_EMBD, 256, bias=False)
        nn.init.normal_(self.head.weight, std=0.001)  # first predictions near uniform
        self.register_buffer("rope", rope_tables(SEQ_LEN, N_EMBD // N_HEAD), persistent=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = rms_norm(self.wte(idx))
        for block in self.blocks:
            x = block(x, self.rope)
        logits = self.head(rms_norm(x))
        return F.cross_entropy(logits.view(-1, 256), targets.reshape(-1))


model = GPT()
optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
train_gen = torch.Generator().manual_seed(int(os.environ.get("BILEVEL_SEED", "0")))
t_train = time.time()
for step in range(STEPS):
    frac = min(1.0, (step + 1) / max(1, WARMUP_STEPS)) * (1 - step / STEPS)  # warm up, decay
    for group in optimizer.param_groups:
        group["lr"] = LR * frac
    loss = model(*batch(train_data, train_gen))
    if not math.isfinite(loss.item()):
        print("FAIL: the loss diverged")
        raise SystemExit(1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if step % 50 == 0 or step == STEPS - 1:
        print(f"\rstep {step:05d} ({100 * (step + 1) / STEPS:.1f}%) | loss: {loss.item():.4f}",
              end="", flush=True)  # fmt: skip
print()
training_seconds = time.time() - t_train

model.eval()
val_gen = torch.Generator().manual_seed(1234)  # the same validation batches for every run
with torch.no_grad():
    val_loss = sum(model(*batch(val_data, val_gen)).item() for _ in range(EVAL_BATCHES))
val_bpb = val_loss / EVAL_BATCHES / math.log(2)
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {training_seconds:.1f}")
print(f"total_seconds:    {time.time() - t_start:.1f}")
print(f"num_steps:        {STEPS}")
print(f"num_params_M:     {sum(p.numel() for p in model.parameters()) / 1e6:.3f}")
print(f"depth:            {DEPTH}")
