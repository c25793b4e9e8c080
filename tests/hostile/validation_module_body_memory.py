"""Memory bomb in the module body: a 80 GB list allocated at load time.

Layer: the worker's RLIMIT_AS (1 GiB): MemoryError while loading, mechanism rejected.
Expect: rejected reason="loading the mechanism failed" reason="MemoryError"
"""

BLOCK = [0] * (10 ** 10)


def advise(ctx):
    return ""
