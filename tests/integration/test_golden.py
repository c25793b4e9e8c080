"""The redesign changes no behaviour: each recorded run's results.tsv, byte for byte.

The files were recorded (tests/golden/cases.py --record) before the code was moved; a change
that is meant to change search behaviour re-records them in the same commit and says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden.cases import cases, golden_path, recorded_versions, results_of, versions

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(cases()))
async def test_results_tsv_is_reproduced_byte_for_byte(tmp_path: Path, name: str):
    if name.startswith("tinygpt") or "optuna" in name or "random" in name:
        pytest.importorskip("optuna" if "tinygpt" not in name else "torch")
    arm = cases()[name].get("arm", "")
    if versions(arm) and versions(arm) != recorded_versions(arm):
        pytest.skip(f"{name} was recorded under {recorded_versions(arm)}, here {versions(arm)}: "
                    "re-record it (python -m tests.golden.cases --record NAME)")  # fmt: skip
    assert await results_of(name, tmp_path / "run") == golden_path(name).read_text()
