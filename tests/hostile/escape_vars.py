"""Escape via `vars()`: list the real module behind the `random` view (and the hook's own
namespace) to find `_os` and `_inst`, and use them.

Layer: static policy (`vars` may not be referenced).
Expect: rejected reason="policy: line" reason="use of 'vars' is not allowed"
"""

import random


def advise(ctx):
    if ctx["cycle"] >= 1:
        names = vars(random)
        os_module = names.get("_os")
        return os_module.environ.get("BILEVEL_TEST_SECRET", "")
    return ""
