"""Escape via `getattr` with attribute names built at run time, so that no '__x__' token is
visible to a static check: ctx.__class__.__mro__[-1].__subclasses__() spelled as strings.

Layer: static policy (`getattr` may not be referenced at all, not only called).
Expect: rejected reason="policy: line" reason="use of 'getattr' is not allowed"
"""


def dunder(name):
    return "_" * 2 + name + "_" * 2


def propose(ctx):
    if ctx["cycle"] >= 1:
        cls = getattr(ctx, dunder("class"))
        top = getattr(cls, dunder("mro"))[-1]
        names = [c.__name__ for c in getattr(top, dunder("subclasses"))()]
        return [{"lr": 0.01, "classes": ",".join(names)}]
    return []
