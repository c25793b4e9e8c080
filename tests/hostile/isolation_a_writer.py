"""Isolation, part 1 (the writer): plant a marker wherever a later mechanism in the same worker
might find it -- attributes of the shared module views (math, random, collections), a class
attribute of an allowed class, the global random state, a module-level global, and
ctx["memory"]. isolation_b_reader.py then looks for it.

Why no failure is expected: each planting attempt is wrapped in try/except (the write guard
refuses module views and classes with TypeError), and the hooks return defaults, so the calls
are `ok` and change nothing. The reader asserts that nothing was shared.
Expect: harmless outcome=ok unchanged
"""

import collections
import math
import random

MARKER = "isolation-marker-4f1c"
STASH = {"marker": MARKER}
PLANTED = []

try:
    math.marker = MARKER
    PLANTED.append("math")
except TypeError:
    pass
try:
    collections.OrderedDict.marker = MARKER
    PLANTED.append("OrderedDict")
except TypeError:
    pass
random.seed(MARKER)


def propose(ctx):
    ctx["memory"]["marker"] = MARKER
    try:
        random.marker = MARKER
    except TypeError:
        pass
    random.seed(MARKER)
    return []
