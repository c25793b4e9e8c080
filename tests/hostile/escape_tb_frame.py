"""Escape via a traceback: raise, catch, and follow `tb_frame.f_back` from the exception's
traceback into the worker's frames and their globals.

Layer: static policy ('__traceback__' refused; RestrictedPython also refuses tb_frame, f_back).
Expect: rejected reason="policy: line" reason="__traceback__"
"""


def propose(ctx):
    if ctx["cycle"] >= 1:
        try:
            1 / 0
        except ZeroDivisionError as exc:
            frame = exc.__traceback__.tb_frame
            env = frame.f_back.f_globals
            return [{"lr": 0.01, "secret": env["os"].environ["BILEVEL_TEST_SECRET"]}]
    return []
