"""`from random import *`: a star import that would bind the module's private names too
(`_os`, `_inst`, `_urandom`) if the import machinery handed out the real module.

Layer: static policy (star imports refused).
Expect: rejected reason="policy: line" reason="'from ... import *' is not allowed"
"""

from random import *


def advise(ctx):
    if ctx["cycle"] >= 1:
        return str(_os.environ.get("BILEVEL_TEST_SECRET"))
    return ""
