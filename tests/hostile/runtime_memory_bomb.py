"""Memory bomb at run time: allocate an 80 GB list in review from cycle 1 on.

Layer: the worker's RLIMIT_AS (1 GiB) turns it into a MemoryError; the call is an error and the
candidate is kept unchanged (the default).
Expect: runtime outcome=error error="MemoryError"
"""


def review(candidate, ctx):
    if ctx["cycle"] >= 1:
        hog = [candidate] * (10 ** 10)
        return hog[0]
    return candidate
