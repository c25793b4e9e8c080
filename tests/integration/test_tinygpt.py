"""tinygpt through the objective: real training subprocesses, reproducibility, failure statuses."""

from __future__ import annotations

import math

import pytest

from bilevel.objectives import make_objective

pytestmark = pytest.mark.slow

# 4 optimizer steps of the baseline model: a real run, a few seconds on 2 cores.
SMALL = {"budget_tokens": 32_768, "total_batch_size": 8_192}


async def test_a_real_evaluation_is_ok_and_reproducible():
    obj = make_objective("tinygpt", budget_tokens=SMALL["budget_tokens"], val_targets=16_384)
    config = {"total_batch_size": SMALL["total_batch_size"]}
    first = await obj.evaluate(config, seed=11)
    assert first.status == "ok", first.log_tail
    assert first.metric is not None and math.isfinite(first.metric) and 0 < first.metric < 8.5
    for key in ("val_bpb", "training_seconds", "total_tokens_M", "num_steps", "num_params_M"):
        assert key in first.extra
    assert first.extra["num_steps"] == 4 and "peak_memory_mb" in first.extra
    assert "val_bpb:" in first.log_tail and len(first.log_tail.splitlines()) <= 30
    again = await obj.evaluate(config, seed=11)
    assert again.status == "ok" and again.metric == first.metric  # bit for bit


async def test_invalid_combination_is_a_fast_crash():
    obj = make_objective("tinygpt")
    result = await obj.evaluate({"total_batch_size": 1024}, seed=0)  # < 8 x 256
    assert result.status == "crash" and result.metric is None
    assert "not a multiple of device_batch_size" in result.extra["reason"]
    assert "Traceback" not in result.log_tail and result.seconds < 60


async def test_overrun_is_a_timeout():
    obj = make_objective("tinygpt", timeout_s=0.5)
    result = await obj.evaluate({}, seed=0)
    assert result.status == "timeout" and result.metric is None and result.seconds < 10
    assert result.log_tail.endswith("killed after 0.5s")
