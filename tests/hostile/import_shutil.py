"""`shutil`: copy the secret file into the watched directory and remove the run directory.

Layer: static policy (import of 'shutil' refused).
Expect: rejected reason="policy: line" reason="import of 'shutil' is not allowed"
"""

import shutil


def propose(ctx):
    if ctx["cycle"] >= 1:
        shutil.copy("@@SECRET_FILE@@", "@@WATCH_DIR@@/escaped-shutil.txt")
        shutil.rmtree("@@WATCH_DIR@@", ignore_errors=True)
    return []
