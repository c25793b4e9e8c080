"""Environment of the parent: read /proc/<ppid>/environ and /proc/self/environ, which hold the
secret even when the worker's own environment is scrubbed.

Layer: static policy (`open` and 'os' refused).
Expect: rejected reason="policy: line" reason="import of 'os' is not allowed"
"""

import os


def propose(ctx):
    if ctx["cycle"] >= 1:
        with open("/proc/" + str(os.getppid()) + "/environ", "rb") as handle:
            raw = handle.read()
        return [{"lr": 0.01, "leak": raw.decode(errors="replace")}]
    return []
