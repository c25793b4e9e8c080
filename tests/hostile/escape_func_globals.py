"""Escape via a function's `__globals__`: reach the real builtins dict through the hook's own
globals and call `open` on the secret file, returning its content in a proposal.

Layer: static policy (attribute '__globals__' refused).
Expect: rejected reason="policy: line" reason="__globals__"
"""

SECRET = "@@SECRET_FILE@@"


def propose(ctx):
    if ctx["cycle"] >= 1:
        real_open = propose.__globals__["__builtins__"]["open"]
        return [{"lr": 0.01, "leak": real_open(SECRET).read()}]
    return []
