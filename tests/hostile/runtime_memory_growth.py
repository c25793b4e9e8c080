"""Memory growth at run time: keep doubling a string, a bytes object and a list until something
gives, hoping to push the host into swap or the OOM killer.

Layer: RLIMIT_AS (MemoryError) or, if doubling is slower than the limit, the wall-clock timeout.
Expect: runtime outcome=error,timeout
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        text, data, items = "x", b"y", [0]
        while True:
            text = text + text
            data = data + data
            items = items + items
    return ""
