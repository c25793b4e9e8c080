"""tinygpt in-process: model, RoPE, corpus pinning, val_bpb, schedule, config checks, parsing."""

from __future__ import annotations

import gzip
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from bilevel.objectives import UnknownObjective, make_objective
from bilevel.objectives.tinygpt import config as settings
from bilevel.objectives.tinygpt import data, train
from bilevel.objectives.tinygpt.model import GPT, GPTConfig, apply_rope, rope_tables
from bilevel.objectives.tinygpt.objective import CPU_BASELINE, parse_summary, result_from_output

TINY = {"depth": 1, "n_embd": 32, "n_head": 2, "seq_len": 64, "device_batch_size": 2}


def tiny_model(**overrides: object) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**{"depth": 2, "n_embd": 32, "n_head": 4, "seq_len": 16, **overrides}))


def test_model_shapes_and_loss():
    model = tiny_model()
    idx = torch.randint(0, 256, (3, 16))
    assert model(idx).shape == (3, 16, 256)
    assert model(idx[:, :5]).shape == (3, 5, 256)  # shorter than seq_len is fine
    loss = model.loss(idx, idx)
    assert loss.shape == () and math.isfinite(loss.item())
    assert model.loss(idx, idx, "sum").item() == pytest.approx(loss.item() * 48, rel=1e-5)


def test_tied_head_shares_the_embedding():
    untied, tied = tiny_model(), tiny_model(tie_embeddings=True)
    assert untied.num_params() - tied.num_params() == 256 * 32
    assert set(untied.param_groups()) == {"matrix", "embedding", "head"}
    assert set(tied.param_groups()) == {"matrix", "embedding"}
    assert tied(torch.randint(0, 256, (1, 4))).shape == (1, 4, 256)


def test_no_biases_and_groups_cover_every_parameter():
    model = tiny_model()
    assert not [n for n, _ in model.named_parameters() if "bias" in n]
    grouped = sum(p.numel() for ps in model.param_groups().values() for p in ps)
    assert grouped == model.num_params()


def test_attention_is_causal():
    model = tiny_model()
    for p in model.parameters():  # zero-initialised projections would hide any leak
        torch.nn.init.normal_(p, std=0.2)
    idx = torch.randint(0, 256, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 256
    a, b = model(idx), model(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_rope_keeps_norms_and_depends_on_relative_position_only():
    torch.manual_seed(0)
    tables = rope_tables(32, 8)
    q, k = torch.randn(8), torch.randn(8)
    rq = apply_rope(q.expand(1, 1, 32, 8), tables)[0, 0]
    rk = apply_rope(k.expand(1, 1, 32, 8), tables)[0, 0]
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(32), atol=1e-5)
    assert torch.allclose(rq[0], q)  # position 0 is not rotated
    assert (rq[5] @ rk[2]).item() == pytest.approx((rq[20] @ rk[17]).item(), abs=1e-4)
    assert (rq[5] @ rk[2]).item() != pytest.approx((rq[5] @ rk[3]).item(), abs=1e-3)


def test_bits_per_byte_formula():
    assert data.bits_per_byte(10 * math.log(2), 10) == pytest.approx(1.0)
    assert data.bits_per_byte(4 * math.log(256), 4) == pytest.approx(8.0)


def test_uniform_model_scores_eight_bits_per_byte():
    config = settings.parse_config({**TINY, "val_targets": 1024})
    model = GPT(config.model_config())
    with torch.no_grad():
        model.head.weight.zero_()  # all logits 0: a uniform guess over 256 bytes
    assert train.evaluate_bpb(model, config, torch.device("cpu")) == pytest.approx(8.0, abs=1e-5)


def test_corpus_is_pinned_and_split():
    train_bytes, val_bytes = data.tokens("train"), data.tokens("val")
    assert 1_000_000 < len(train_bytes) + len(val_bytes) < 2_500_000
    assert 0.05 < len(val_bytes) / (len(train_bytes) + len(val_bytes)) < 0.2
    assert len(val_bytes) > 2 * settings.DEFAULT_VAL_TARGETS + 1  # room for the GPU preset's slice
    assert bytes(val_bytes[:12]).startswith(b"# ==== Lib/")
    for name in ("LICENSE-PSF.txt", "ATTRIBUTION.md"):
        assert (data.DATA_DIR / name).stat().st_size > 500


def test_a_changed_corpus_is_refused(tmp_path: Path):
    shutil.copy(data.DATA_DIR / "val.txt.gz", tmp_path / "val.txt.gz")
    assert data.read_split("val", tmp_path) == bytes(data.tokens("val"))
    with pytest.raises(data.CorpusError, match="SHA-256"):
        data.read_split("val", tmp_path, expected="0" * 64)
    (tmp_path / "val.txt.gz").write_bytes(gzip.compress(b"print('not the corpus')\n"))
    with pytest.raises(data.CorpusError, match="expected"):
        data.read_split("val", tmp_path)
    (tmp_path / "val.txt.gz").unlink()
    with pytest.raises(data.CorpusError, match="cannot read"):
        data.read_split("val", tmp_path)


def test_val_windows_and_batches():
    text = torch.arange(200, dtype=torch.uint8)
    x, y = data.val_windows(text, 64, 16)
    assert x.shape == y.shape == (4, 16) and torch.equal(y[:, :-1], x[:, 1:])
    assert y.numel() == 64 and x[0, 0] == 0 and y[-1, -1] == 64
    with pytest.raises(ValueError):
        data.val_windows(text, 64, 24)
    a = data.BatchSampler(text, 3, 8, seed=5)
    b = data.BatchSampler(text, 3, 8, seed=5)
    for _ in range(3):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(xa[:, 1:], ya[:, :-1])
    assert not torch.equal(data.BatchSampler(text, 3, 8, seed=6).next()[0], a.next()[0])


def test_lr_schedule_warmup_constant_warmdown():
    c = settings.TrainConfig(warmup_frac=0.1, warmdown_frac=0.4, final_lr_frac=0.2)
    assert train.lr_multiplier(0.05, c) == pytest.approx(0.5)
    assert train.lr_multiplier(0.1, c) == train.lr_multiplier(0.6, c) == 1.0
    assert train.lr_multiplier(0.8, c) == pytest.approx(0.6)
    assert train.lr_multiplier(1.0, c) == pytest.approx(0.2)
    flat = settings.TrainConfig(warmup_frac=0.0, warmdown_frac=0.0)
    assert train.lr_multiplier(0.0, flat) == train.lr_multiplier(1.0, flat) == 1.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"n_embd": 130, "n_head": 4}, "not divisible by n_head"),
        ({"n_embd": 36, "n_head": 4}, "must be even for RoPE"),
        ({"total_batch_size": 3000}, "not a multiple of device_batch_size"),
        ({"device_batch_size": 16, "total_batch_size": 2048}, "not a multiple"),
        ({"seq_len": 96}, "does not divide val_targets"),
        ({"warmup_frac": 0.6, "warmdown_frac": 0.6}, "> 1"),
        ({"budget_mode": "steps"}, "tokens or seconds"),
        ({"depth": "4"}, "must be int"),
        ({"learning_rate": 0.1}, "unknown config keys: learning_rate"),
    ],
)
def test_invalid_combinations_fail_fast_with_crash(raw, reason, capsys):
    code, summary = train.run(raw)
    assert code == 1 and summary["status"] == "crash" and reason in summary["reason"]
    assert capsys.readouterr().out == ""  # refused before any training started


def test_main_prints_a_crash_block_not_a_traceback(capsys):
    assert train.main(["--config", '{"n_head": 3}']) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == ["---", "status: crash"] and "Traceback" not in out
    assert train.main(["--config", "{not json"]) == 1
    assert "not JSON" in parse_summary(capsys.readouterr().out)["reason"]


def test_tiny_run_in_process_is_ok_and_reproducible(capsys):
    raw = {**TINY, "total_batch_size": 256, "budget_tokens": 1024, "val_targets": 512}
    code, first = train.run(raw)
    assert code == 0 and first["status"] == "ok" and first["num_steps"] == 4
    assert 0 < first["val_bpb"] < 9 and first["total_tokens_M"] == pytest.approx(1024 / 1e6)
    lines = train.summary_lines(first)
    assert lines[0] == "---" and f"val_bpb: {first['val_bpb']!r}" in lines
    assert parse_summary("\n".join(lines))["val_bpb"] == first["val_bpb"]  # round-trip exact
    assert train.run(raw)[1]["val_bpb"] == first["val_bpb"]
    assert train.run({**raw, "seed": 1})[1]["val_bpb"] != first["val_bpb"]


def test_seconds_budget_does_not_count_the_first_steps():
    raw = {**TINY, "total_batch_size": 128, "budget_mode": "seconds", "budget_seconds": 0.3}
    code, summary = train.run({**raw, "val_targets": 512})
    assert code == 0 and summary["status"] == "ok"
    assert summary["num_steps"] > train.UNTIMED_STEPS and summary["training_seconds"] >= 0.3
    timed = summary["tokens_per_second"] * summary["training_seconds"]
    assert timed == pytest.approx(128 * (summary["num_steps"] - train.UNTIMED_STEPS), rel=0.02)


def test_divergence_is_status_nan(monkeypatch):
    monkeypatch.setattr(train, "MAX_LOSS", 0.0)  # any loss now counts as diverged
    code, summary = train.run({**TINY, "total_batch_size": 128, "budget_tokens": 256})
    assert code == 1 and summary["status"] == "nan" and "step 1" in summary["reason"]


def test_a_run_whose_parent_is_gone_stops(monkeypatch):
    gone = subprocess.Popen(["true"])  # a process that has exited: not our parent any more
    gone.wait()
    monkeypatch.setenv(settings.PARENT_PID_ENV, str(gone.pid))
    code, summary = train.run({**TINY, "total_batch_size": 128, "budget_tokens": 256})
    reason = f"parent process {gone.pid} exited"
    assert code == 1 and summary == {"status": "crash", "reason": reason}


def test_summary_parsing_and_statuses():
    text = "step 1 | loss 3.0\nnoise: before the block\n---\nstatus: ok\nval_bpb: 1.234567\n"
    text += "training_seconds: 30.1\nnum_steps: 16\ndevice: cpu\n"
    summary = parse_summary(text)
    assert summary == {
        "status": "ok",
        "val_bpb": 1.234567,
        "training_seconds": 30.1,
        "num_steps": 16,
        "device": "cpu",
    }
    ok = result_from_output(text, 0, 31.0)
    assert ok.status == "ok" and ok.metric == 1.234567 and ok.extra["num_steps"] == 16
    assert ok.seconds == 31.0 and ok.log_tail.endswith("device: cpu")
    nan = result_from_output("---\nstatus: nan\nreason: loss nan at step 3\n", 1, 1.0)
    assert nan.status == "nan" and nan.metric is None and nan.extra["reason"].startswith("loss")
    long = "\n".join(f"line {i}" for i in range(100))
    assert result_from_output(long, 1, 1.0).status == "crash"
    assert len(result_from_output(long, 1, 1.0).log_tail.splitlines()) == 30
    assert result_from_output("Killed", -9, 1.0).status == "oom"
    assert result_from_output("---\nstatus: ok\nval_bpb: nan\n", 0, 1.0).status == "crash"


def test_objective_space_defaults_are_the_baseline():
    obj = make_objective("tinygpt")
    assert obj.inline and obj.metric == "val_bpb" and obj.direction == "minimize"
    assert 10 <= len(obj.space.params) <= 15
    for name, value in obj.space.defaults().items():
        assert getattr(CPU_BASELINE, name) == value
    cfg = obj.train_config({"total_batch_size": 4096}, seed=7)
    assert cfg["total_batch_size"] == 4096 and cfg["seed"] == 7
    assert cfg["budget_mode"] == "tokens" and cfg["device"] == "cpu"
    assert settings.parse_config(cfg).grad_accum == 2
    assert obj.train_config({}, seed=7, budget=8192)["budget_tokens"] == 8192
    gpu = make_objective("tinygpt-gpu")
    assert gpu.base.compile and gpu.base.dtype == "bfloat16" and gpu.base.budget_mode == "seconds"
    assert not settings.check(gpu.base)


def test_objective_options():
    obj = make_objective("tinygpt", budget_tokens=4096, timeout_s=5, fixed_seed=42, depth=2)
    assert obj.timeout_s == 5.0 and obj.space.defaults()["depth"] == 2
    assert obj.train_config({}, seed=7) == {**obj.train_config({}, seed=8), "seed": 42}
    assert obj.train_config({}, seed=7)["budget_tokens"] == 4096
    with pytest.raises(UnknownObjective, match="unknown config keys: budget"):
        make_objective("tinygpt", budget=3)
    with pytest.raises(UnknownObjective, match="not divisible"):
        make_objective("tinygpt", n_head=3)
