"""Escape via a builtins dict reached without an underscore in the code: `globals()` returns
the module namespace, whose builtins entry holds the original (unrestricted) functions; the key
is built at run time so no '__builtins__' token appears in the source.

Layer: static policy (`globals` may not be referenced at all).
Expect: rejected reason="policy: line" reason="use of 'globals' is not allowed"
"""

SECRET = "@@SECRET_FILE@@"


def advise(ctx):
    if ctx["cycle"] >= 1:
        key = "_" * 2 + "builtins" + "_" * 2
        table = globals()[key]
        return table["open"](SECRET).read()
    return ""
