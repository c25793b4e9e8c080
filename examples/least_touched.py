"""Least-touched: propose a neighbouring value of the parameter changed least so far."""


def propose(ctx):
    counts = ctx["memory"].setdefault("counts", {})
    for trial in ctx["history"]:
        for name in trial["changes"]:
            counts[name] = counts.get(name, 0) + 1
    ctx["memory"]["counts"] = {}  # recount from history next time
    free = [n for n in ctx["neighbors"] if n not in ctx["frozen"] and ctx["neighbors"][n]]
    if not free:
        return []
    name = min(free, key=lambda n: counts.get(n, 0))
    return [{name: ctx["neighbors"][name][-1]}]
