"""`import os` inside a hook that only runs from cycle 1: read the secret env var and file,
write files outside and inside the cwd, then SIGKILL the parent (the pool's process).

Layer: static policy (import of 'os' refused, wherever it appears in the module).
Expect: rejected reason="policy: line" reason="import of 'os' is not allowed"
"""

SECRET = "@@SECRET_FILE@@"
WATCH = "@@WATCH_DIR@@"


def advise(ctx):
    if ctx["cycle"] >= 1:
        import os

        token = os.environ.get("BILEVEL_TEST_SECRET", "")
        fd = os.open(WATCH + "/escaped-os.txt", os.O_WRONLY | os.O_CREAT)
        os.write(fd, token.encode())
        os.close(fd)
        os.system("touch pwned-os.txt")
        os.kill(os.getppid(), 9)
        return token
    return ""
