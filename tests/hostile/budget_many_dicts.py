"""Host-side work no timeout bounds: return 60,000 tiny nested dicts (under the byte limit in
JSON), so that the host spends seconds checking and copying them.

Layer: contract (at most MAX_ITEMS values in one result) and the worker's byte budget.
Expect: runtime outcome=bad_type,too_large
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        ctx["memory"]["junk"] = [{} for _ in range(60_000)]
    return []
