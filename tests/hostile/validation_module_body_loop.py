"""CPU loop in the module body: loading the mechanism never finishes, hoping to hang the run
before any hook is called.

Layer: the pool's wall-clock timeout during validation's load (inspect); the worker is killed.
Expect: rejected reason="loading the mechanism failed" reason="timeout"
"""

counter = 0
while True:
    counter = counter + 1


def propose(ctx):
    return []
