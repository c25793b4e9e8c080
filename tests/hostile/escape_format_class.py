"""Escape via a format string: `"{0.__class__.__init__.__globals__}".format(ctx)` performs
attribute lookups inside str.format, where no attribute guard runs.

Layer: static policy (`.format` is refused; RestrictedPython's getattr also refuses str.format).
Expect: rejected reason="policy: line" reason="str.format is not allowed"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        template = "{0." + "_" * 2 + "class" + "_" * 2 + "}"
        return template.format(ctx)
    return ""
