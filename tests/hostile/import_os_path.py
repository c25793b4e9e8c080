"""`import os.path` / `import collections.abc` style dotted imports: the first component of
one of them is an allowed module, hoping the check looks only at the first component.

Layer: static policy (the full dotted name must be allowed).
Expect: rejected reason="policy: line" reason="import of 'collections.abc' is not allowed"
"""

import collections.abc
import os.path


def advise(ctx):
    if ctx["cycle"] >= 1:
        return open(os.path.join("@@SECRET_FILE@@")).read()
    return ""
