"""`threading`: start a thread that keeps running after the hook returns, so work continues
past the call's timeout (and could race the next call's reply).

Layer: static policy (import of 'threading' refused).
Expect: rejected reason="policy: line" reason="import of 'threading' is not allowed"
"""

import threading


def spin():
    while True:
        pass


def propose(ctx):
    if ctx["cycle"] >= 1:
        threading.Thread(target=spin, daemon=False).start()
    return []
