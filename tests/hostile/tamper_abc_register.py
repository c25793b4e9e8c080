"""Reach the ABCs through a class's MRO (UserDict.mro() -> MutableMapping) and register a
foreign class, changing isinstance() for every later call in the worker.

Layer: guards ('mro' and 'register' are refused attribute names).
Expect: runtime outcome=error error="attribute 'mro' is not allowed"
"""

import collections


def propose(ctx):
    if ctx["cycle"] >= 1:
        abcs = collections.UserDict.mro()
        abcs[1].register(int)
        return [{"lr": 0.01}]
    return []
