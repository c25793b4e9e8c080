"""Escape via the unbound method `str.format` passed through `map`, so that the call site has
no `.format(...)` on a string literal: `map(str.format, [template], [ctx])`.

Layer: static policy (the attribute name `format` is refused on any object).
Expect: rejected reason="policy: line" reason="str.format is not allowed"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        template = "{0." + "_" * 2 + "class" + "_" * 2 + "}"
        return "".join(map(str.format, [template], [ctx]))
    return ""
