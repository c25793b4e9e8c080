"""Real training scripts as they are: int grids, literal choices, the draft's guesses, config
delivery checks, metric sanity, trial copies, and the best config out of a run."""

from __future__ import annotations

import json
import os
import random
import textwrap
from pathlib import Path

import pytest

from bilevel.agents.researcher import step
from bilevel.objectives import make_objective
from bilevel.objectives.script_checks import command_overrides, echo_mismatches, stale_metric
from bilevel.objectives.script_config import ScriptError, load_space
from bilevel.objectives.script_copy import copy_project
from bilevel.objectives.script_draft import draft_space
from bilevel.objectives.space import Param, SearchSpace, SpaceError
from bilevel.reporting.results import best_of, config_as, trial_rows

FIXTURES = Path(__file__).parents[1] / "fixtures" / "script"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# --- integer scales -------------------------------------------------------------------------


def test_log2_grid_is_anchored_at_the_default_and_keeps_its_divisors():
    width = Param(name="n_embd", kind="int", default=768, low=100, high=5000, scale="log2")
    assert width.grid() == [192, 384, 768, 1536, 3072]
    assert all(v % 12 == 0 for v in width.grid())  # n_head = 12 still divides every value
    assert width.repair(700) == 768 and width.repair(1) == 192 and width.repair(10**6) == 3072
    assert sorted(width.neighbors(768)) == [384, 1536]
    assert {width.from_unit(i / 10) for i in range(11)} <= set(width.grid())
    with pytest.raises(SpaceError, match="off its grid"):
        width.check(769)
    space = SearchSpace(params=[width])
    rng = random.Random(0)
    moves = {step(space, "n_embd", 768, [], rng) for _ in range(50)}
    assert moves and moves <= set(width.grid())  # the researcher's steps stay on the grid
    assert SearchSpace.from_json(space.to_json()) == space
    old = Param(name="b", kind="int", default=64, low=8, high=1024, pow2=True)  # older spelling
    assert old.scale == "log2" and old.grid() == [8, 16, 32, 64, 128, 256, 512, 1024]
    with pytest.raises(ValueError, match="not both"):
        Param(name="b", kind="int", default=64, low=8, high=1024, step=8, scale="log2")


def test_literal_choices_reach_each_mode_as_the_python_value(tmp_path):
    space = {
        "params": {
            "init": {
                "type": "categorical",
                "choices": ["None", "(0.9, 0.95)"],
                "literal": True,
                "default": "None",
            },  # fmt: skip
            "bias": {"type": "categorical", "choices": [False, True], "default": False},
        }
    }
    with pytest.raises(ScriptError, match="Python literal"):
        load_space({"params": {"x": {**space["params"]["init"], "choices": ["None", "f("]}}})
    write(tmp_path / "train.py", "init = 'x'\nbias = True\n")
    shared = {"command": "python train.py", "space": space, "workdir": str(tmp_path)}
    cfg = {"init": "(0.9, 0.95)", "bias": False}
    constants = make_objective("script", **shared)
    passed = constants.passed_values(cfg, None)
    work = tmp_path / "copy"
    work.mkdir()
    (work / "train.py").write_text((tmp_path / "train.py").read_text())
    constants.delivery(passed, work, tmp_path / "c.json")
    assert (work / "train.py").read_text() == "init = (0.9, 0.95)\nbias = False\n"
    args = make_objective("script", **shared, config_via="args")
    argv, _ = args.delivery(args.passed_values(cfg, None), work, tmp_path / "c.json")
    assert argv[-2:] == ["--init=(0.9, 0.95)", "--bias=False"]  # what literal_eval reads
    as_json = make_objective("script", **shared, config_via="json")
    as_json.delivery(as_json.passed_values(cfg, None), work, tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text()) == {"init": [0.9, 0.95], "bias": False}
    env = make_objective("script", **shared, config_via="env")
    _, variables = env.delivery(env.passed_values({"init": "None", "bias": True}, None), work, work)
    assert variables == {"INIT": "None", "BIAS": "true"}


# --- the draft ------------------------------------------------------------------------------

NANO_STYLE = """\
    out_dir = "out"
    eval_interval = 250
    eval_iters = 200
    log_interval = 10
    gradient_accumulation_steps = 40
    batch_size = 12
    n_embd = 768
    dropout = 0.0
    beta2 = 0.99
    learning_rate = 6e-4
    max_iters = 5000
    compile = True
    backend = "nccl"
    init_from = None
    betas = (0.9, 0.95)
    norm_const = 312e12
    n_folds = 5
    max_bins = 255
    model = make(n_embd, dropout, beta2, learning_rate, batch_size, gradient_accumulation_steps,
                 betas, n_folds, max_bins)
    tput = 6 * n_embd / norm_const
    print(f"step 1: mfu {tput:.2f}")
    iter_num = 0
    if n_embd > 1:
        gradient_accumulation_steps //= 2  # a one-off adjustment: still a setting
    while iter_num < 3:
        iter_num += 1  # loop state: not a setting
    """


def test_draft_reads_lowercase_constants_and_says_what_it_left_out(tmp_path):
    path = write(tmp_path / "train.py", NANO_STYLE)
    with pytest.raises(ScriptError, match="--all-constants"):
        draft_space(path)  # no UPPER_CASE names: the error says how to read these
    draft = draft_space(path, all_constants=True)
    space = load_space(write(tmp_path / "space.toml", draft))
    assert space.names == [
        "gradient_accumulation_steps", "batch_size", "n_embd", "dropout", "beta2",
        "learning_rate", "n_folds", "max_bins",
    ]  # fmt: skip
    assert space["batch_size"].scale == "log2" and space["batch_size"].grid() == [3, 6, 12, 24, 48]
    assert space["n_embd"].grid() == [192, 384, 768, 1536, 3072]
    assert (space["beta2"].low, space["beta2"].high) == (0.495, 0.995)  # a fraction stays <= 1
    assert (space["dropout"].low, space["dropout"].high) == (0.0, 0.5)
    assert space["n_folds"].low == 2  # a fold count of 1 is not a count
    assert space["max_bins"].high == 255  # 2^8 - 1: likely a library's maximum
    left_out = {
        "eval_interval": "how the metric is measured",
        "eval_iters": "how the metric is measured",
        "log_interval": "reporting",
        "max_iters": "training budget",
        "compile": "system setting",
        "norm_const": "only reaches printed",  # no telling name: found by where its value goes
        "init_from": "add alternatives",
        "betas": "add alternatives",
        "out_dir": "reporting",
        "iter_num": "assigned again later",
    }
    for name, reason in left_out.items():
        table = draft.index(f"# [params.{name}]")
        assert reason in draft[draft.rindex("\n\n", 0, table) : table], name
    assert '# choices = ["None"]' in draft and "# literal = true" in draft
    assert "check this" in draft and draft.startswith("# DRAFT")
    only = load_space(write(tmp_path / "m.toml", draft_space(path, match="learning_rate|n_.*")))
    assert only.names == ["n_embd", "learning_rate", "n_folds"]


def test_the_metric_and_its_inputs_are_not_reporting(tmp_path):
    path = write(
        tmp_path / "train.py",
        """\
        SCALE = 3.0
        NORM = 7.0
        val_bpb = 1.0 / SCALE
        util = val_bpb / NORM
        print(f"val_bpb: {val_bpb}")
        print(f"util: {util}")
        """,
    )
    draft = draft_space(path)
    assert "\n[params.SCALE]" in draft and "# [params.NORM]" in draft


# --- config delivery ------------------------------------------------------------------------


def test_command_overrides_name_the_flag_or_the_config_file(tmp_path):
    write(tmp_path / "train.py", "lr = 1\nbatch = 2\n")
    write(tmp_path / "config" / "a.py", "batch = 8\n")
    write(tmp_path / "b.json", '{"lr": 0.1}')
    write(tmp_path / "c.toml", "[opt]\nlr = 0.1\n")
    write(tmp_path / "d.yaml", "model:\n  lr: 0.1\n")
    names = ["lr", "batch"]
    assert "--batch" in command_overrides(["python", "train.py", "--batch=4"], tmp_path,
                                          "train.py", names)  # fmt: skip
    for config, clash in (("config/a.py", "batch"), ("b.json", "lr"), ("c.toml", "lr"),
                          ("d.yaml", "lr")):  # fmt: skip
        message = command_overrides(["python", "train.py", config], tmp_path, "train.py", names)
        assert f"{config} (named in --command) sets {clash}" in message
        assert "--config-via args" in message
    assert command_overrides(["python", "train.py", "--other=1"], tmp_path, "train.py", names) == ""


def test_echoes_that_disagree_with_what_was_passed_warn():
    text = "settings from config/x.py:\nbatch_size = 64\nOverriding: lr = 0.0006\n"
    assert echo_mismatches(text, {"lr": 6e-4, "bias": True}) == []
    (warning,) = echo_mismatches(text, {"batch_size": 16, "lr": 6e-4})
    assert "set batch_size = 16 but the script printed batch_size = 64" in warning
    assert echo_mismatches("lr = 0.003\n", {"lr": 0.0028284}) == []  # printed to fewer digits
    assert echo_mismatches("lr = 0.003\n", {"lr": 0.0021}) != []


def test_a_metric_read_before_the_training_ended_is_flagged():
    log = "".join(f"iter {i}: loss 3.0\n" for i in range(0, 100, 10))
    at_zero = "step 0: train loss 4.1, val loss 4.2\n" + log
    pattern = r"val loss (\S+)"
    import re

    matches = list(re.finditer(pattern, at_zero))
    assert "printed once and last at step 0" in stale_metric(at_zero, matches, "val_loss")
    final = at_zero + "step 100: train loss 2.1, val loss 2.2\n"
    assert stale_metric(final, list(re.finditer(pattern, final)), "val_loss") == ""
    karpathy = "".join(f"\rstep {i:05d} ({i}%) | loss: 3.0" for i in range(50)) + (
        "\n---\nval_bpb:          0.99\nnum_steps:        50\n"
    )
    found = list(re.finditer(r"^val_bpb:\s*(\S+)", karpathy, re.M))
    assert stale_metric(karpathy, found, "val_bpb") == ""


# --- trial copies ---------------------------------------------------------------------------


def test_copies_link_venvs_large_files_and_globs_and_see_a_written_original(tmp_path):
    src = tmp_path / "proj"
    write(src / "train.py", "x = 1\n")
    write(src / ".venv" / "pyvenv.cfg", "home = /usr\n")
    write(src / "env2" / "pyvenv.cfg", "home = /usr\n")  # any name: found by pyvenv.cfg
    (src / "data").mkdir()
    (src / "data" / "train.bin").write_bytes(b"\0" * 300_000)
    (src / "data" / "small.bin").write_bytes(b"\0" * 10)
    write(src / "notes" / "big.txt", "y" * 10)
    write(src / "scratch" / "tmp.txt", "z")
    copy = copy_project(src, tmp_path / "a", exclude=["scratch"], link=["notes/*.txt"],
                        avoid=tmp_path / "a", link_over_mb=0.1)  # fmt: skip
    dst = tmp_path / "a"
    assert (dst / ".venv").is_symlink() and (dst / "env2").is_symlink()
    assert (dst / "data" / "train.bin").is_symlink()
    assert not (dst / "data" / "small.bin").is_symlink() and (dst / "data" / "small.bin").exists()
    assert (dst / "notes" / "big.txt").is_symlink() and not (dst / "scratch").exists()
    assert not (dst / "train.py").is_symlink()
    numbers = copy.numbers()
    assert numbers["linked_files"] == 2 and numbers["linked_dirs"] == 2
    assert numbers["linked_mb"] > 0.28 and numbers["copied_mb"] < 0.01
    assert copy.written_originals() == []
    with open(dst / "data" / "train.bin", "ab") as f:  # a trial writing through the link
        f.write(b"1")
    assert copy.written_originals() == [(src / "data" / "train.bin").resolve()]


def test_link_and_exclude_accept_a_string_a_list_or_commas(tmp_path):
    write(tmp_path / "train.py", "LR = 1.0\n")
    space = {"params": {"LR": {"type": "float", "low": 0, "high": 2, "default": 1.0}}}
    base = {"command": "python train.py", "space": space, "workdir": str(tmp_path)}
    assert make_objective("script", **base, link=".venv").link == [".venv"]
    assert make_objective("script", **base, link=".venv, data/*.bin").link == [
        ".venv", "data/*.bin"
    ]  # fmt: skip
    assert make_objective("script", **base, exclude=["a", "b"]).exclude == ["a", "b"]
    with pytest.raises(ScriptError, match="glob"):
        make_objective("script", **base, link=3)


# --- the best config ------------------------------------------------------------------------


def trial(n, metric, config, status="ok", source="prior"):
    return {"trial": n, "metric": metric, "status": status, "config": config, "cycle": n // 3,
            "source": source, "mechanism": "m", "description": ""}  # fmt: skip


def test_best_is_the_best_trial_not_the_final_incumbent():
    # as with an accepting mechanism (annealing): the incumbent moved on to a worse config
    trials = [
        trial(0, 2.0, {"a": 1, "b": 1}, source="baseline"),
        trial(1, 1.5, {"a": 2, "b": 1}),
        trial(2, 1.7, {"a": 3, "b": 1}),
        trial(3, None, {"a": 4, "b": 1}, status="crash"),
        trial(4, 1.5, {"a": 5, "b": 1}),
    ]
    best = best_of(trials, {"seed": 3}, "minimize")
    assert (best["trial"], best["config"], best["changed"], best["seed"]) == (
        1, {"a": 2, "b": 1}, {"a": 2}, 3
    )  # fmt: skip
    assert best_of(trials, {"seed": 3, "seed_per_trial": True}, "minimize")["seed"] == 3_000_010
    assert best_of(trials, {}, "maximize")["trial"] == 0
    assert best_of([trial(0, None, {}, status="crash")], {}, "minimize") is None


def test_config_formats():
    config = {"lr": 0.003, "bias": False, "init": None, "name": "a b"}
    assert config_as({"lr": 0.003, "bias": False, "name": "a b"}, "toml") == (
        'lr = 0.003\nbias = false\nname = "a b"\n'
    )
    assert config_as(config, "args") == "--lr=0.003 --bias=False --init=None '--name=a b'\n"
    assert config_as(config, "env", "MY_") == (
        "MY_LR=0.003\nMY_BIAS=false\nMY_INIT=null\nMY_NAME='a b'\n"
    )
    with pytest.raises(ValueError, match="unknown format"):
        config_as(config, "yaml")


def test_export_rows_are_flat_and_whole(tmp_path):
    from bilevel.store.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite")
    base = {"trace": 0, "iteration": 0, "base": {}, "description": "", "mechanism": "default",
            "seconds": 0.1, "log_tail": ""}  # fmt: skip
    ledger.add_trial({**base, "trial": 0, "cycle": 0, "config": {"a": 1, "b": "x"},
                      "changes": {}, "source": "baseline", "metric": 1.0, "status": "ok",
                      "extra": {"steps": 3, "trial_copy": {"seconds": 0.5}}})  # fmt: skip
    ledger.add_trial({**base, "trial": 1, "cycle": 0, "config": {"a": 2, "b": "x"},
                      "changes": {"a": 2}, "source": "prior", "metric": None,
                      "status": "crash", "extra": {}, "hypothesis": "a=2 helps"})  # fmt: skip
    rows = trial_rows(ledger)
    ledger.close()
    assert rows[0]["config.a"] == 1 and rows[1]["config.a"] == 2 and rows[1]["config.b"] == "x"
    assert rows[0]["extra.trial_copy.seconds"] == 0.5 and rows[1]["status"] == "crash"
    assert rows[0]["hypothesis"] is None and rows[1]["hypothesis"] == "a=2 helps"
    assert not any(isinstance(v, dict | list) for r in rows for v in r.values())


def test_the_fixture_project_runs_by_hand():
    # the acceptance fixtures are themselves runnable, as a user would run them
    import subprocess
    import sys

    proj = FIXTURES / "configured"
    out = subprocess.run(
        [sys.executable, "train.py", "config/small.py", "--bias=True"], cwd=proj,
        capture_output=True, text=True, env={**os.environ, "BILEVEL_SEED": "0"}, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Overriding: bias = True" in out.stdout and "step 60: train loss" in out.stdout
    bad = subprocess.run([sys.executable, "train.py", "--bias=false"], cwd=proj,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode != 0 and "bool expected" in bad.stderr + bad.stdout
