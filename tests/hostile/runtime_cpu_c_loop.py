"""CPU loop inside C code: `sum(range(10**13))` never returns to the bytecode loop, so neither
a Python-level trace function nor a signal handler could interrupt it.

Layer: the pool's wall-clock timeout and SIGKILL (no cooperation from the worker needed).
Expect: runtime outcome=timeout
"""


def select(candidates, ctx):
    if ctx["cycle"] >= 1:
        return [sum(range(10 ** 13)) % len(candidates)]
    return [0]
