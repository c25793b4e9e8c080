"""The redesign changes no behaviour: each recorded run's results.tsv, byte for byte.

The files were recorded (tests/golden/cases.py --record) before the code was moved; a change
that is meant to change search behaviour re-records them in the same commit and says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden.cases import cases, golden_path, results_of

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(cases()))
async def test_results_tsv_is_reproduced_byte_for_byte(tmp_path: Path, name: str):
    if name.startswith("tinygpt") or "optuna" in name or "random" in name:
        pytest.importorskip("optuna" if "tinygpt" not in name else "torch")
    assert await results_of(name, tmp_path / "run") == golden_path(name).read_text()
