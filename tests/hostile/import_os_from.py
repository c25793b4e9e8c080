"""`from os import ...` with innocuous-looking aliases (`from os import environ as settings`),
hoping an import check looks only at the names bound.

Layer: static policy (the module imported from is checked).
Expect: rejected reason="policy: line" reason="import of 'os' is not allowed"
"""

from os import environ as settings
from os import system as run


def advise(ctx):
    if ctx["cycle"] >= 1:
        run("cat @@SECRET_FILE@@ > @@WATCH_DIR@@/escaped-os-from.txt")
        return settings.get("BILEVEL_TEST_SECRET", "")
    return ""
