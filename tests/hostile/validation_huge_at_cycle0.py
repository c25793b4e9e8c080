"""A huge reply on the very first call (20 MB of advice), hoping to exhaust the parent's memory
or stall its reader before anything else runs.

Layer: the pool's reply size limit (too_large, worker killed) during validation.
Expect: rejected reason="advise returned too much data" reason="bytes"
"""


def advise(ctx):
    return "A" * 20_000_000
