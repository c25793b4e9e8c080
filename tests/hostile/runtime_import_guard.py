"""Imports that pass the static check but reach past a module view at run time:
`from statistics import sys` and `from collections import abc` (sub-modules and modules the
allowed module imported), inside hooks from cycle 1 on.

Layer: the guarded __import__ at run time hands out views without modules or private names
(ImportError -> error outcome).
Expect: runtime outcome=error error="ImportError"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        from statistics import sys

        return sys.modules["os"].environ.get("BILEVEL_TEST_SECRET", "")
    return ""


def propose(ctx):
    if ctx["cycle"] >= 1:
        from collections import abc

        return [{"lr": 0.01, "n": len(str(abc))}]
    return []
