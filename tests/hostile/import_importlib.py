"""`importlib.import_module("os")`: a dynamic import whose target is a string, invisible to an
import-statement check.

Layer: static policy (import of 'importlib' refused).
Expect: rejected reason="policy: line" reason="import of 'importlib' is not allowed"
"""

import importlib


def advise(ctx):
    if ctx["cycle"] >= 1:
        os_module = importlib.import_module("o" + "s")
        return os_module.environ.get("BILEVEL_TEST_SECRET", "")
    return ""
