"""Hook signatures that do not match the contract: `propose(*args, **kwargs)` (to receive
whatever the caller passes, including internals) and a near-miss name `Accept`.

Layer: validation's signature check.
Expect: rejected reason="propose must take exactly 1 parameter"
"""


def propose(*args, **kwargs):
    return [dict(kwargs)]


def Accept(trial, ctx):
    return True
