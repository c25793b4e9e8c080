"""Escape via `str.format_map` with a template built at run time: field lookups such as
`{c.__class__.__mro__}` run inside the formatter, out of reach of attribute guards.

Layer: static policy (`.format_map` is refused).
Expect: rejected reason="policy: line" reason="str.format_map is not allowed"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        template = "{c." + "_" * 2 + "class" + "_" * 2 + "." + "_" * 2 + "mro" + "_" * 2 + "}"
        return [{"lr": 0.01, "leak": template.format_map({"c": ctx})}]
    return []
