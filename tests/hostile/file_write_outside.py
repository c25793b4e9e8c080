"""File write outside the working directory: create a file in the watched directory and
append to the secret file.

Layer: static policy (`open` refused). Behind it: RLIMIT_FSIZE=0 in the worker.
Expect: rejected reason="policy: line" reason="use of 'open' is not allowed"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        with open("@@WATCH_DIR@@/escaped-write.txt", "w") as handle:
            handle.write("escaped")
        with open("@@SECRET_FILE@@", "a") as handle:
            handle.write("tampered")
    return []
