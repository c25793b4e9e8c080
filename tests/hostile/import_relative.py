"""Relative imports: `from . import policy` / `from .. import sandbox`, hoping the mechanism is
executed as part of a package and reaches the sandbox's own modules.

Layer: static policy (relative imports are not in the allow-list).
Expect: rejected reason="policy: line" reason="import of '.' is not allowed"
"""

from . import policy
from ..sandbox import worker


def advise(ctx):
    if ctx["cycle"] >= 1:
        return str(policy.ALLOWED_MODULES) + str(worker.LIMIT_AS_BYTES)
    return ""
