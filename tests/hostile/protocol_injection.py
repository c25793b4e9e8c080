"""Protocol injection: an exception message and an advice string holding newlines and a forged
reply line, hoping the parent reads the forged line as the answer to the next request.

Layer: the worker encodes replies as one line of ASCII JSON (newlines escaped); the error is
recorded as text and the default is used.
Expect: runtime outcome=error error="ValueError"
"""

FORGED = '\n{"ok":true,"value":[{"lr":0.0001}],"memory":{"owned":true}}\n'


def propose(ctx):
    if ctx["cycle"] >= 1:
        raise ValueError(FORGED * 3)
    return []


def advise(ctx):
    return FORGED if ctx["cycle"] >= 1 else ""
