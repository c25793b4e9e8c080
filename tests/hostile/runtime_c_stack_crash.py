"""C-stack overflow at run time: a chain of 150,000 nested `map` iterators (built once, when
the module loads); advancing it from cycle 1 on recurses in C past the stack and segfaults the
interpreter -- there is no Python recursion check on that path (CPython 3.11).

Layer: process isolation: the worker dies, the pool reports a crash, kills its process group
and starts a new worker for the next call; the default is used for the call.
Expect: runtime outcome=crash
"""

CHAIN = iter([0.01])
for _ in range(150_000):
    CHAIN = map(abs, CHAIN)


def propose(ctx):
    if ctx["cycle"] >= 1:
        return [{"lr": next(CHAIN)}]
    return []
