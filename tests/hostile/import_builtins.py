"""`import builtins`: the real, unrestricted builtins module (open, eval, __import__).

Layer: static policy (import of 'builtins' refused).
Expect: rejected reason="policy: line" reason="import of 'builtins' is not allowed"
"""

import builtins


def advise(ctx):
    if ctx["cycle"] >= 1:
        return builtins.open("@@SECRET_FILE@@").read()
    return ""
