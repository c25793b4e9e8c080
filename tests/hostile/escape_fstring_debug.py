"""Escape via the f-string `=` debug specifier and conversions: `f"{propose.__globals__=}"`
prints the expression's text and its repr, i.e. the hook's globals with the builtins table.

Layer: static policy ('__globals__' refused inside the f-string expression).
Expect: rejected reason="policy: line" reason="__globals__"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        return [{"lr": 0.01, "leak": f"{propose.__globals__=}"}]
    return []
