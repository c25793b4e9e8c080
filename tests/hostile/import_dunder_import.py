"""`__import__("os")`: the import machinery called as a function with a computed name.

Layer: static policy (`__import__` may not be referenced). Behind it: the builtins' guarded
`__import__` hands out only read-only views of the allowed modules.
Expect: rejected reason="policy: line" reason="__import__"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        os_module = __import__("o" + "s")
        return os_module.environ.get("BILEVEL_TEST_SECRET", "")
    return ""
