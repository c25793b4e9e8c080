"""Untrusted text on a terminal: control characters shown, never interpreted.

Mechanism sources, validation errors, LLM replies and training-script output are written by
code we do not trust. A raw ESC, C1 control or bidirectional override in them would let that
text retitle the terminal, clear the screen or make a listing read differently from the file.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and Unicode bidi embeddings/overrides.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """text with every control character written as a visible escape (\\x1b, \\u202e)."""
    return _UNSAFE.sub(_escape, str(text))
