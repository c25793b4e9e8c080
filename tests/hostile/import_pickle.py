"""`pickle.loads` of a crafted payload that calls os.system on load (a classic RCE gadget).

Layer: static policy (import of 'pickle' refused).
Expect: rejected reason="policy: line" reason="import of 'pickle' is not allowed"
"""

import pickle

PAYLOAD = b"cos\nsystem\n(S'cp @@SECRET_FILE@@ @@WATCH_DIR@@/escaped-pickle.txt'\ntR."


def propose(ctx):
    if ctx["cycle"] >= 1:
        pickle.loads(PAYLOAD)
    return []
