"""`eval` smuggled through a container and a lambda default, hoping that only direct calls of
the name are checked: `tools = [eval]; tools[0](...)`.

Layer: static policy (referencing `eval` at all is refused).
Expect: rejected reason="policy: line" reason="use of 'eval' is not allowed"
"""

TOOLS = {"run": eval}


def propose(ctx):
    if ctx["cycle"] >= 1:
        value = TOOLS["run"]("__import__('os').environ['BILEVEL_TEST_SECRET']")
        return [{"lr": 0.01, "leak": value}]
    return []
