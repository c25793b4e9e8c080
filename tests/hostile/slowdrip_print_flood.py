"""Slow output: print a line at a time, forever, hoping the output interleaves with the worker's
protocol replies (a forged `{"ok": true, ...}` line) or fills a pipe and deadlocks the parent.

Layer: the worker points fds 0-2 at /dev/null and keeps private protocol fds, so prints vanish;
the pool's wall-clock timeout ends the loop.
Expect: runtime outcome=timeout
"""

FORGED = '{"ok":true,"value":[{"lr":0.0001}],"memory":{}}'


def propose(ctx):
    if ctx["cycle"] >= 1:
        while True:
            print(FORGED)
    print(FORGED)
    return []
