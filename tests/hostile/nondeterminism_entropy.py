"""Break replay: draw from the OS (SystemRandom, seed() with no argument, Random() unseeded)
and from object addresses (id, hash of an object), each feeding the proposal.

Layer: guards (SystemRandom absent, seed/Random refuse None, id absent, hash of values only).
Expect: runtime outcome=error error="SystemRandom|seed|NameError|hash"
"""

import random


def propose(ctx):
    if ctx["cycle"] >= 1:
        attempts = [
            lambda: random.SystemRandom().random(),
            lambda: random.seed() or random.random(),
            lambda: random.Random().random(),
            lambda: id([]) % 1000 / 1000,  # noqa: F821
            lambda: hash(object()) % 1000 / 1000,
        ]
        step = ctx["iteration"] % len(attempts)
        return [{"lr": 0.001 + attempts[step]() * 0.01}]
    return []
