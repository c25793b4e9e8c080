"""Candidates outside the search space: lr far above its bound, a negative batch size, a
fractional integer, an unknown parameter and a wrong type, hoping one is evaluated as is.

Why no failure is expected: the proposals are well-typed JSON, so the hook call is `ok`; the
inner loop then clips the numbers into range or rejects the candidate with a recorded
`rejected_candidate` note. The test checks that every evaluated config lies inside the space.
Expect: harmless outcome=ok note=rejected_candidate
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        return [
            {"lr": 1e9},
            {"batch_size": -5},
            {"batch_size": 3.5},
            {"learning_rate_typo": 0.1},
            {"lr": "0.1"},
            {"lr": True},
        ]
    return []
