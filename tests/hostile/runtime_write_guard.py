"""Monkey-patching shared objects at run time: replace math.sqrt, random.random and
collections.Counter in the module views shared by every mechanism the worker runs, hoping to
change what another mechanism computes.

Layer: the write guard at run time (only dicts, lists, sets and deques may be modified:
TypeError -> error outcome).
Expect: runtime outcome=error error="cannot modify"
"""

import collections
import math
import random


def propose(ctx):
    if ctx["cycle"] >= 1:
        math.sqrt = abs
        random.random = math.floor
        collections.Counter = dict
    return []
