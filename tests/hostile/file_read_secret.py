"""File read: `open()` the secret file and return its content through advise, a proposal
value, the mechanism's memory and an exception message (every channel that reaches the
ledger, the checkpoints or the logs).

Layer: static policy (`open` may not be referenced). Behind it: not in the builtins table.
Expect: rejected reason="policy: line" reason="use of 'open' is not allowed"
"""

SECRET = "@@SECRET_FILE@@"


def advise(ctx):
    if ctx["cycle"] >= 1:
        return open(SECRET).read()
    return ""


def propose(ctx):
    if ctx["cycle"] >= 1:
        text = open(SECRET).read()
        ctx["memory"]["stolen"] = text
        return [{"lr": 0.01, "leak": text}]
    return []


def accept(trial, ctx):
    if ctx["cycle"] >= 1:
        raise ValueError(open(SECRET).read())
    return False
