"""Private names of allowed modules: `from random import _os, _inst` and
`import statistics as _stats`, reaching os through a module that is on the allow-list.

Layer: static policy (imported names starting with '_' refused); behind it the module views
carry no private names and no sub-modules.
Expect: rejected reason="policy: line" reason="leading '_'"
"""

import statistics as _stats
from random import _inst, _os


def advise(ctx):
    if ctx["cycle"] >= 1:
        return _os.environ.get("BILEVEL_TEST_SECRET", "") + str(_inst) + str(_stats)
    return ""
