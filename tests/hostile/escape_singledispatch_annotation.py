"""singledispatch().register(fn) calls typing.get_type_hints(fn), which evals fn's string
annotations with real (unrestricted) eval; the payload is built with chr() at run time, so no
source scan sees it.

Layer: guards (singledispatch is not in the functools view).
Expect: runtime outcome=error error="singledispatch"
"""

import functools


def propose(ctx):
    if ctx["cycle"] >= 1:
        payload = "".join(chr(c) for c in [95, 95, 105, 109, 112, 111, 114, 116, 95, 95])
        dispatch = functools.singledispatch(lambda x: x)

        def handler(x: payload):  # noqa: F821
            return x

        dispatch.register(handler)
        return [{"lr": 0.01}]
    return []
