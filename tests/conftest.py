"""Test-wide setup: runs record their mechanisms in a throwaway library, never in the user's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["BILEVEL_LIBRARY"] = str(
    Path(tempfile.mkdtemp(prefix="bilevel-test-library-")) / "library.sqlite"
)
