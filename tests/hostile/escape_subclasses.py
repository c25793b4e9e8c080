"""Escape via object.__subclasses__(): walk from a tuple to `object`, find a class whose
`__init__.__globals__` holds `os` (e.g. os._wrap_close) and run a shell command that copies the
secret file into the watched directory; also return it through advise.

Layer: static policy (names and attributes starting with '_' are refused).
Expect: rejected reason="policy: line" reason="leading '_'"
"""

SECRET = "@@SECRET_FILE@@"
WATCH = "@@WATCH_DIR@@"


def find_os():
    for cls in ().__class__.__bases__[0].__subclasses__():
        if cls.__name__ == "_wrap_close":
            return cls.__init__.__globals__
    return None


def advise(ctx):
    if ctx["cycle"] >= 1:
        env = find_os()
        env["system"]("cp " + SECRET + " " + WATCH + "/escaped-subclasses.txt")
        return env["popen"]("cat " + SECRET).read()
    return ""
