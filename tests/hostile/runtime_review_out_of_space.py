"""A review that rewrites every candidate into changes outside the space (an unknown name, a
value past the bounds): before, keep_valid dropped them after review, a silent veto that
burned the step's evaluation.

Layer: inner loop (a reviewed candidate that does not fit the space makes the call fall back
to the default review: the candidate is evaluated as proposed).
Expect: runtime outcome=bad_value error="unknown parameter|outside|not one of"
"""


def review(candidate, ctx):
    if ctx["cycle"] >= 1:
        return {**candidate, "changes": {"no_such_knob": 3.0}}
    return candidate
