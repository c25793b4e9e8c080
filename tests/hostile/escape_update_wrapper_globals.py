"""Function internals through an allowed module: functools.update_wrapper copies attributes
named by strings inside functools, where no guard applies. `updated=("__globals__",)` would
merge the real statistics namespace (holding sys) into the hook's globals, then
sys.modules["os"] reads the secret and /proc/<ppid>/environ.

Layer: guards (update_wrapper is not in the functools view); OS layers behind it.
Expect: runtime outcome=error error="update_wrapper"
"""

import functools
import statistics


def helper():
    return 0


def propose(ctx):
    if ctx["cycle"] >= 1:
        functools.update_wrapper(helper, statistics.mean, assigned=(), updated=("__globals__",))
        return [{"lr": 0.01}]
    return []
