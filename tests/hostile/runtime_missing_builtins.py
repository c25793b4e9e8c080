"""Builtins that a static check does not forbid by name but that are not provided: `type()`
(three-argument form builds classes with dunder methods), `object`, `dir`, `help`, `exit`,
`memoryview`, `bytearray`, used from cycle 1 on.

Layer: the trimmed builtins table at run time (NameError -> error outcome).
Expect: runtime outcome=error error="NameError"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        evil = type("Evil", (object,), {"__eq__": lambda self, other: True})
        return [{"lr": 0.01, "n": len(dir(evil))}]
    return []


def advise(ctx):
    if ctx["cycle"] >= 1:
        exit(3)
    return ""
