"""A module body that takes longer than one hook call may (1 s here), as a large table built
at import would on a loaded machine. Loading has its own limit, so this is not a failure.

Layer: the pool's load limit (separate from the hook timeout).
Expect: harmless outcome=ok
"""

TABLE = []
for i in range(3_000_000):
    TABLE.append(i % 7)
TABLE = sum(TABLE)


def advise(ctx):
    return f"table {TABLE}"
