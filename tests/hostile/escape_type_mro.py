"""Escape via `type(x).mro()` and three-argument `type()` to build a class whose dunder
methods (given as dict keys, invisible to an AST check) call back into the interpreter.

Layer: static policy rejects `__subclasses__`; `type` is not even in the mechanism's builtins.
Expect: rejected reason="policy: line" reason="__subclasses__"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        top = type(ctx).mro()[-1]
        evil = type("Evil", (dict,), {"__eq__": lambda self, other: True})
        return [{"lr": 0.01, "n": len(top.__subclasses__())}, evil()]
    return []
