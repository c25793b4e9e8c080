"""BaseException subclasses: SystemExit, KeyboardInterrupt and GeneratorExit raised from hooks,
hoping the worker (or a parent that runs the hook in-process) exits or stops serving, and a
5 MB exception message to bloat the ledger's error column.

Layer: the worker catches BaseException per call (error outcome, message cut to 500 chars).
Expect: runtime outcome=error error="SystemExit|KeyboardInterrupt|GeneratorExit|ValueError"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        raise SystemExit(0)
    return []


def review(candidate, ctx):
    if ctx["cycle"] >= 1:
        raise KeyboardInterrupt
    return candidate


def select(candidates, ctx):
    if ctx["cycle"] >= 1:
        raise GeneratorExit
    return [0]


def advise(ctx):
    if ctx["cycle"] >= 1:
        raise ValueError("E" * 5_000_000)
    return ""
