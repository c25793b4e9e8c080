"""A tiny Karpathy-style training script for CPU: a character-level MLP language model.

Every knob a search may turn is a top-level constant below; `bilevel run --objective script`
rewrites them in a per-trial copy of this file. It needs only torch, downloads nothing (the text
is generated from a small grammar) and runs in a few seconds on 2 cores. The summary it prints at
the end is what bilevel reads: `val_bpb` is the metric (validation bits per byte, lower is better).

    python train.py
"""

import math
import os
import random
import time

import torch
import torch.nn.functional as F
from torch import nn

# Hyperparameters
LR = 3e-3  # AdamW learning rate
BATCH_SIZE = 64  # windows per optimisation step
HIDDEN = 128  # width of the hidden layer
EMBED = 16  # embedding width per character
CONTEXT = 8  # characters the model sees before predicting the next one
STEPS = 300  # optimisation steps
WEIGHT_DECAY = 0.01  # AdamW weight decay
WARMDOWN_FRAC = 0.3  # last fraction of the steps, with the learning rate falling linearly to 0
SEED = 42  # bilevel passes its own seed in $BILEVEL_SEED

# One thread: the matrices are tiny, and parallel trials should not fight over the cores.
torch.set_num_threads(1)
t_start = time.time()
seed = int(os.environ.get("BILEVEL_SEED", SEED))
torch.manual_seed(seed)


def make_text(n_sentences: int = 3000) -> str:
    """Sentences from a small grammar; its own fixed seed, so every run sees the same text."""
    rng = random.Random(1234)
    subjects = (
        "the cat|a dog|the old man|my sister|the robot|a small bird|the teacher|"
        "our neighbour|the baker|a tired student"
    ).split("|")
    verbs = "sees|likes|chases|builds|finds|paints|carries|forgets".split("|")
    objects = (
        "the red ball|a wooden box|the garden|a long letter|the bright moon|an apple|"
        "the river|a paper boat|the green door"
    ).split("|")
    tails = "| today| at night| in the morning| again| very slowly| with care".split("|")
    sentences = []
    for _ in range(n_sentences):
        s = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}{rng.choice(tails)}"
        if rng.random() < 0.3:
            s += f", and then {rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}"
        sentences.append(s[0].upper() + s[1:] + ".")
    return " ".join(sentences)


text = make_text()
chars = sorted(set(text))
index = {c: i for i, c in enumerate(chars)}
data = torch.tensor([index[c] for c in text], dtype=torch.long)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]


def windows(series: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every CONTEXT-character window and the character that follows it."""
    x = series.unfold(0, CONTEXT, 1)[:-1]
    return x, series[CONTEXT:]


class CharMLP(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        self.hidden = nn.Linear(CONTEXT * EMBED, HIDDEN)
        self.head = nn.Linear(HIDDEN, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.gelu(self.hidden(self.embed(x).flatten(1))))


model = CharMLP(len(chars))
optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
warmdown_start = int(STEPS * (1 - WARMDOWN_FRAC))


def lr_at(step: int) -> float:
    if step < warmdown_start:
        return LR
    return LR * (STEPS - step) / max(1, STEPS - warmdown_start)


train_x, train_y = windows(train_data)
t_train = time.time()
for step in range(STEPS):
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step)
    batch = torch.randint(len(train_x), (BATCH_SIZE,))
    loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if step % 100 == 0 or step == STEPS - 1:
        print(f"step {step:5d}/{STEPS} | loss {loss.item():.4f} | lr {lr_at(step):.2e}")
training_seconds = time.time() - t_train

# val_bpb as in Karpathy's prepare.py: total nats / (ln 2 * total UTF-8 bytes of the targets).
val_x, val_y = windows(val_data)
with torch.no_grad():
    nats = F.cross_entropy(model(val_x), val_y, reduction="sum").item()
target_bytes = sum(len(chars[i].encode("utf-8")) for i in val_y.tolist())
val_bpb = nats / (math.log(2) * target_bytes)

print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {training_seconds:.2f}")
print(f"total_seconds:    {time.time() - t_start:.2f}")
print(f"num_steps:        {STEPS}")
print(f"num_params:       {sum(p.numel() for p in model.parameters())}")
print(f"lr:               {LR}")
print(f"batch_size:       {BATCH_SIZE}")
print(f"hidden:           {HIDDEN}")
