"""Patch a shared module view so that later calls (and other mechanisms in the worker) see a
wrong math.sqrt: first by plain assignment, then through functools.update_wrapper's unguarded
setattr.

Layer: guards (write guard; module views refuse attribute writes even from unguarded code;
update_wrapper absent) and one mechanism per worker process.
Expect: runtime outcome=error error="cannot modify|read-only|update_wrapper"
"""

import functools
import math


def propose(ctx):
    if ctx["cycle"] >= 1:
        try:
            math.sqrt = lambda x: 42.0
        except TypeError:
            pass
        functools.update_wrapper(math, functools.partial(abs), assigned=("sqrt",), updated=())
        return [{"lr": 0.01}]
    return []
