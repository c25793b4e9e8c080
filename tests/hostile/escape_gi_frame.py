"""Escape via a generator's frame: `gen.gi_frame.f_back.f_globals` climbs out of the hook into
the worker's frames without any underscore in the code.

Layer: RestrictedPython's compile step (gi_frame and the other inspect attributes are refused).
Expect: rejected reason="policy:" reason="gi_frame"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        gen = (i for i in range(3))
        outer = gen.gi_frame.f_back.f_back
        env = outer.f_globals
        return str(env["os"].environ.get("BILEVEL_TEST_SECRET"))
    return ""
