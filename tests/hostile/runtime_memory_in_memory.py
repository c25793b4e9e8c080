"""Memory bloat through ctx["memory"]: each call adds 700 kB to the mechanism's private memory,
which is returned with every reply and kept in graph state (and checkpoints), hoping to grow
the state and the checkpoint database without bound.

Layer: the pool's reply size limit (too_large): once memory passes 1 MB the call is refused and
its memory update is dropped.
Expect: runtime outcome=too_large
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        blobs = ctx["memory"].setdefault("blobs", [])
        blobs.append("M" * 700_000)
    return []
