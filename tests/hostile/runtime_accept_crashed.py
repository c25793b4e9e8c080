"""Accept by other means: truthy non-bool values ("yes", 1, a dict) to keep trials, and True for
any trial whose status is not ok (a crashed trial must never become the incumbent).

Layer: the contract's result check for accept (a bool; never True for a non-ok trial):
bad_type, the default greedy rule decides.
Expect: runtime outcome=bad_type error="accept must return True or False"
"""


def accept(trial, ctx):
    if trial["status"] != "ok":
        return True
    if ctx["cycle"] >= 1:
        return ["yes", 1, {"keep": True}][ctx["iteration"] % 3]
    metric, best = trial["metric"], ctx["incumbent"]["metric"]
    return metric is not None and (best is None or metric < best)
