"""Library mechanisms pass exactly the validation path generated code goes through."""

from __future__ import annotations

import pytest

from bilevel.agents import meta_researcher
from bilevel.sandbox.pool import SandboxPool
from bilevel.sandbox.validation import validate_mechanism


@pytest.mark.parametrize("name", sorted(meta_researcher.library()) + ["default"])
async def test_library_mechanism_validates_in_the_sandbox(name):
    source = (
        meta_researcher.DEFAULT_SOURCE if name == "default" else meta_researcher.library()[name]
    )
    async with SandboxPool(workers=1) as pool:
        report = await validate_mechanism(pool, source)
    assert report.ok, report.reason
    assert bool(report.hooks) == (name != "default")
