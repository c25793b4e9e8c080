"""`exec`, `eval` and `compile` on source built at run time: code that RestrictedPython never
sees, so no guard would be inserted.

Layer: static policy (the three names may not be referenced).
Expect: rejected reason="policy: line" reason="use of 'compile' is not allowed"
"""

PAYLOAD = "open('@@SECRET_FILE@@').read()"


def advise(ctx):
    if ctx["cycle"] >= 1:
        code = compile(PAYLOAD, "x", "eval")
        exec("import os; os.system('touch @@WATCH_DIR@@/escaped-exec.txt')")
        return eval(code)
    return ""
