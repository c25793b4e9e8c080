"""Escape via frames: `sys._getframe(1).f_back.f_globals` reaches the worker's own module
namespace (with `os`, `json` and the protocol file objects) from inside a hook.

Layer: static policy (import of 'sys' refused, and '_getframe').
Expect: rejected reason="policy: line" reason="import of 'sys' is not allowed"
"""

import sys

SECRET = "@@SECRET_FILE@@"


def advise(ctx):
    if ctx["cycle"] >= 1:
        worker_globals = sys._getframe(1).f_back.f_globals
        worker_globals["os"].system("cat " + SECRET)
        return worker_globals["os"].environ.get("BILEVEL_TEST_SECRET", "")
    return ""
