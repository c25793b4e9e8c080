"""`marshal.loads` + `types.FunctionType`: build an unrestricted code object from bytes (no
RestrictedPython rewriting) and call it.

Layer: static policy (imports of 'marshal' and 'types' refused).
Expect: rejected reason="policy: line" reason="import of 'marshal' is not allowed"
"""

import marshal
import types

CODE = b"\xe3\x00\x00\x00"


def advise(ctx):
    if ctx["cycle"] >= 1:
        func = types.FunctionType(marshal.loads(CODE), {})
        return str(func())
    return ""
