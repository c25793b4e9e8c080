"""`ctypes`: call libc's system() and getenv() directly, bypassing every Python-level guard.

Layer: static policy (import of 'ctypes' refused).
Expect: rejected reason="policy: line" reason="import of 'ctypes' is not allowed"
"""

import ctypes


def advise(ctx):
    if ctx["cycle"] >= 1:
        libc = ctypes.CDLL(None)
        libc.system(b"cp @@SECRET_FILE@@ @@WATCH_DIR@@/escaped-ctypes.txt")
        libc.getenv.restype = ctypes.c_char_p
        return libc.getenv(b"BILEVEL_TEST_SECRET").decode()
    return ""
