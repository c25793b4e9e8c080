"""fork/exec: `os.fork()` a child that outlives the worker, then `os.execv` a shell in the
worker itself so that the pool talks to /bin/sh.

Layer: static policy (import of 'os' refused). Behind it: RLIMIT_NPROC=0, seccomp, killpg of
the worker's session and PR_SET_PDEATHSIG.
Expect: rejected reason="policy: line" reason="import of 'os' is not allowed"
"""

import os


def propose(ctx):
    if ctx["cycle"] >= 1:
        if os.fork() == 0:
            os.setsid()
            while True:
                os.system("cp @@SECRET_FILE@@ @@WATCH_DIR@@/escaped-fork.txt")
        os.execv("/bin/sh", ["sh", "-c", "cat @@SECRET_FILE@@"])
    return []
