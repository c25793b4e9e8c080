"""Escape via f-strings: attribute chains inside replacement fields, and a nested format spec
that is itself an f-string, hoping a checker looks only at plain expressions.

Layer: static policy (the f-string's expressions are parsed; '__class__' is refused).
Expect: rejected reason="policy: line" reason="__class__"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        width = 10
        return f"{ctx.__class__.__mro__!r:>{f'{width}'}}"
    return ""
