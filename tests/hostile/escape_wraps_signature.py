"""functools.wraps to hide a (*args, **kwargs) hook behind a one-parameter signature, so that
inspect.signature (which follows __wrapped__) reports what validation wants to see.

Layer: guards (wraps is not in the functools view, so the module body fails) and validation
(hook parameters are read from the real code object).
Expect: rejected reason="wraps"
"""

import functools


def shape(ctx):
    return []


@functools.wraps(shape)
def propose(*args, **kwargs):
    return []
