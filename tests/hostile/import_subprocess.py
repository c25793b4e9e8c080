"""`subprocess`: run a shell that copies the secret file and the secret env var into the
watched directory, and returns them through a proposal.

Layer: static policy (import of 'subprocess' refused). Behind it: RLIMIT_NPROC=0 in the worker.
Expect: rejected reason="policy: line" reason="import of 'subprocess' is not allowed"
"""

import subprocess


def propose(ctx):
    if ctx["cycle"] >= 1:
        cmd = "cat @@SECRET_FILE@@; echo $BILEVEL_TEST_SECRET | tee @@WATCH_DIR@@/escaped-sub.txt"
        out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout
        return [{"lr": 0.01, "leak": out}]
    return []
