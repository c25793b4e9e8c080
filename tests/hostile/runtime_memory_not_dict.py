"""Replace ctx["memory"] with a list (and then with None), hoping to corrupt the state that is
carried between calls and checkpointed.

Layer: the worker checks that memory stays a dict: error outcome, memory update dropped.
Expect: runtime outcome=error error="must stay a dict"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        ctx["memory"] = ["not", "a", "dict"] if ctx["iteration"] % 2 else None
    return []
