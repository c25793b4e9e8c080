"""Escape via frame attributes spelled without any underscore: `tb_frame`, `f_back` and
`f_globals` on a caught exception's traceback-like object.

Layer: RestrictedPython's compile step (tb_frame, f_back, f_globals are inspect attributes).
Expect: rejected reason="policy:" reason="tb_frame"
"""


def advise(ctx):
    if ctx["cycle"] >= 1:
        try:
            raise ValueError("x")
        except ValueError as exc:
            tb = exc.with_traceback(None)
            return str(tb.tb_frame.f_back.f_globals)
    return ""
