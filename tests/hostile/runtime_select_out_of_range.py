"""Select out of range: an index past the end, a negative index (valid in Python), a bool, a
float, duplicates and more picks than ctx['picks'], rotating per call.

Layer: the contract's result check: bad_type, the default (first candidate) is evaluated.
Expect: runtime outcome=bad_type error="select"
"""


def select(candidates, ctx):
    if ctx["cycle"] >= 1:
        choices = [[len(candidates)], [-1], [True], [0.0], [0, 0], list(range(len(candidates) + 3))]
        return choices[ctx["iteration"] % len(choices)]
    return [0]
