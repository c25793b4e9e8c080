"""`pathlib`: read the secret file, write a file inside the current directory and one in the
watched directory.

Layer: static policy (import of 'pathlib' refused). Behind it: the worker's cwd is a deleted
directory and RLIMIT_FSIZE is 0.
Expect: rejected reason="policy: line" reason="import of 'pathlib' is not allowed"
"""

from pathlib import Path


def advise(ctx):
    if ctx["cycle"] >= 1:
        text = Path("@@SECRET_FILE@@").read_text()
        Path("pwned-pathlib.txt").write_text(text)
        Path("@@WATCH_DIR@@/escaped-pathlib.txt").write_text(text)
        return text
    return ""
