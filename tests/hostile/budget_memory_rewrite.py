"""Grow checkpoints: rewrite ~900 kB of ctx["memory"] on every call (39 MB of checkpoints in 7
trials before memory had a byte budget).

Layer: size limit (memory over MAX_MEMORY_BYTES is refused in the worker; the call falls back
and memory is not kept).
Expect: runtime outcome=too_large error="memory"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        ctx["memory"]["blob"] = str(ctx["iteration"]) * 900_000
    return []
