"""Isolation, part 2 (the reader): look for what isolation_a_writer.py planted in the same
worker -- the writer's module global STASH, attributes on the module views and on an allowed
class, the writer's ctx["memory"], and the global random state seeded with the writer's marker.
If anything is found, advise returns it (and the call is then recorded as `changed`).

Why no failure is expected: each mechanism source gets its own namespace, module views are
read-only and random is re-seeded per call; so every probe comes back empty, the calls are `ok`
and `changed` stays 0, which the test asserts.
Expect: harmless outcome=ok unchanged
"""

import collections
import math
import random

MARKER = "isolation-marker-4f1c"


def probes(ctx):
    found = []
    try:
        found.append(str(STASH))
    except NameError:
        pass
    try:
        found.append(math.marker)
    except AttributeError:
        pass
    try:
        found.append(collections.OrderedDict.marker)
    except AttributeError:
        pass
    if "marker" in ctx["memory"]:
        found.append("memory:" + str(ctx["memory"]["marker"]))
    here = random.random()
    random.seed(MARKER)
    if here == random.random():
        found.append("random state seeded by the writer")
    return found


def advise(ctx):
    found = probes(ctx)
    return "LEAK: " + "; ".join(found) if found else ""
