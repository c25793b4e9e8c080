"""Escape via the `__builtins__` name: look up `open` and `__import__` in the module's builtins
table, read the secret and write it into the watched directory.

Layer: static policy (names starting with '_' are refused).
Expect: rejected reason="policy: line" reason="__builtins__"
"""

SECRET = "@@SECRET_FILE@@"
WATCH = "@@WATCH_DIR@@"


def advise(ctx):
    if ctx["cycle"] >= 1:
        table = __builtins__
        text = table["open"](SECRET).read()
        table["open"](WATCH + "/escaped-builtins.txt", "w").write(text)
        return text
    return ""
