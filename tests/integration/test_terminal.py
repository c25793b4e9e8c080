"""Untrusted text never reaches the terminal raw: a mechanism's source, its validation error
and the library listing show control characters as escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bilevel.terminal import safe
from tests.helpers import bilevel

pytestmark = pytest.mark.slow
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"  # retitle, clear screen, C1 CSI, bidi override

VALID = f'''"""Harmless, but its text is not: {ESCAPES}"""

NOTE = "{ESCAPES}"


def advise(ctx):
    return "ok"
'''


def raw_controls(text: str) -> list[str]:
    return [c for c in text if c in "\x1b\x07\x9b\u202e"]


def test_safe_escapes_controls_and_keeps_text() -> None:
    assert safe("a\tb\nc") == "a\tb\nc"
    assert safe("\x1b[2J") == "\\x1b[2J"
    assert safe("\u202eabc") == "\\u202eabc"


def test_mechanism_check_shows_escapes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(f"def propose(ctx):\n    return [{{'{ESCAPES}': 1}}]\n    x = = 1\n")
    proc = bilevel("mechanism", "check", str(bad), check=False)
    assert proc.returncode == 1 and "rejected" in proc.stdout
    assert raw_controls(proc.stdout + proc.stderr) == []
    dunder = tmp_path / "dunder.py"
    dunder.write_text(f"def propose(ctx):\n    return ctx.__class__  # {ESCAPES}\n")
    proc = bilevel("mechanism", "check", str(dunder), check=False)
    assert proc.returncode == 1 and raw_controls(proc.stdout + proc.stderr) == []


def test_library_listing_shows_escapes(tmp_path: Path) -> None:
    env_library = tmp_path / "library.sqlite"
    os.environ["BILEVEL_LIBRARY"], old = str(env_library), os.environ["BILEVEL_LIBRARY"]
    try:
        mechanism = tmp_path / "escapes.py"
        mechanism.write_text(VALID)
        bilevel("run", "--mechanism", str(mechanism), "--iterations", "4", "--cycle", "2",
                "--arm", "inner", "--run-dir", str(tmp_path / "run"))  # fmt: skip
        listing = bilevel("mechanisms", "list").stdout
        ids = [line.split()[0] for line in listing.splitlines()[2:] if "user" in line]
        assert ids, listing
        shown = bilevel("mechanisms", "show", ids[0]).stdout
        assert "\\x1b]0;pwned" in shown and raw_controls(shown) == []
    finally:
        os.environ["BILEVEL_LIBRARY"] = old
