"""The script objective: constants rewriting, config modes, output parsing, spaces, drafts."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bilevel.objectives import UnknownObjective, make_objective
from bilevel.objectives.script import Run, ScriptObjective, cli_options
from bilevel.objectives.script_config import (
    ScriptError,
    load_space,
    rewrite_constants,
    space_tables,
)
from bilevel.objectives.script_draft import draft_space

PYTHON = shlex.quote(sys.executable)
FIXTURES = Path(__file__).parents[1] / "fixtures" / "script"
SPACE = {
    "params": {
        "LR": {"type": "logfloat", "low": 1e-4, "high": 1.0, "default": 0.01},
        "BATCH_SIZE": {"type": "int", "low": 1, "high": 512, "default": 32},
        "OPT": {"type": "categorical", "choices": ["adamw", "sgd"], "default": "adamw"},
    }
}


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def objective(tmp_path: Path, script: str, **options) -> ScriptObjective:
    write(tmp_path / "train.py", script)
    options = {"command": f"{PYTHON} train.py", "space": SPACE, "workdir": str(tmp_path), **options}
    obj = make_objective("script", **options)
    obj.preflight()
    return obj


def evaluate(obj: ScriptObjective, config: dict, seed: int = 7):
    return asyncio.run(obj.evaluate(config, seed))


# --- constants --------------------------------------------------------------------------------

TRAIN = """\
    import os
    LR = 3e-3  # learning rate, keep this comment
    BATCH_SIZE: int = 2**4   # annotated
    NAME = "é"; OPT = "adamw"  # after a non-ASCII character
    DEPTH = (
        4
    )
    def f():
        LR = 99  # local: never rewritten
    class C:
        BATCH_SIZE = 1
    if __name__ == "__main__":
        LR = 5
"""


def test_rewrite_keeps_comments_and_touches_only_top_level_names():
    source = textwrap.dedent(TRAIN)
    values = {"LR": 0.02, "BATCH_SIZE": 64, "OPT": "sgd", "DEPTH": 8}
    out = rewrite_constants(source, values, "train.py")
    lines = out.splitlines()
    assert lines[1] == "LR = 0.02  # learning rate, keep this comment"
    assert lines[2] == "BATCH_SIZE: int = 64   # annotated"
    assert lines[3] == "NAME = \"é\"; OPT = 'sgd'  # after a non-ASCII character"
    assert lines[4:7] == ["DEPTH = (", "    8", ")"]
    assert "LR = 99  # local" in out and "BATCH_SIZE = 1" in out and "LR = 5" in out
    namespace: dict = {}
    exec(compile(out, "train.py", "exec"), namespace)
    assert namespace["LR"] == 0.02 and namespace["OPT"] == "sgd" and namespace["DEPTH"] == 8
    assert type(namespace["BATCH_SIZE"]) is int


def test_rewrite_every_top_level_assignment_of_a_name():
    out = rewrite_constants("A = 1\nprint(A)\nA = 2\n", {"A": 3}, "t.py")
    assert out == "A = 3\nprint(A)\nA = 3\n"


def test_rewrite_missing_name_is_a_clear_error():
    with pytest.raises(ScriptError, match=r"t.py: no top-level assignment for WIDTH.*has: LR"):
        rewrite_constants("LR = 1\ndef f():\n    WIDTH = 2\n", {"WIDTH": 3}, "t.py")


def test_constants_mode_runs_a_rewritten_copy_and_never_touches_the_original(tmp_path):
    obj = objective(
        tmp_path,
        """\
        import os
        LR = 0.01  # lr
        BATCH_SIZE = 32
        OPT = "adamw"
        open("scratch.txt", "w").write("written by the trial")
        print(f"val_bpb: {LR * BATCH_SIZE}")
        print(f"batch_size: {BATCH_SIZE}")
        print(f"opt_is_sgd: {int(OPT == 'sgd')}")
        print(f"seed: {os.environ['BILEVEL_SEED']}")
        """,
    )
    before = (tmp_path / "train.py").read_bytes()
    result = evaluate(obj, {"LR": 0.5, "BATCH_SIZE": 4, "OPT": "sgd"}, seed=11)
    assert result.status == "ok" and result.metric == 2.0
    copy = result.extra.pop("trial_copy")
    assert result.extra == {"batch_size": 4, "opt_is_sgd": 1, "seed": 11}
    assert copy["copied_mb"] > 0 and copy["linked_files"] == 0 and copy["seconds"] >= 0
    assert (tmp_path / "train.py").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.py"]


def test_parallel_trials_each_get_their_own_copy(tmp_path):
    obj = objective(
        tmp_path,
        """\
        import time
        LR = 0.01
        BATCH_SIZE = 32
        OPT = "adamw"
        with open("shared.txt", "a") as f:
            f.write(f"{LR}\\n")
        time.sleep(0.3)
        print("val_bpb:", len(open("shared.txt").read().split()), LR)
        """,
        metric_pattern=r"^val_bpb: (\d+)",
    )

    async def three():
        return await asyncio.gather(*(obj.evaluate({"LR": lr}, 0) for lr in (0.1, 0.2, 0.3)))

    results = asyncio.run(three())
    assert [r.metric for r in results] == [1.0, 1.0, 1.0]  # no trial saw another's file
    assert not (tmp_path / "shared.txt").exists()


# --- the other config modes ---------------------------------------------------------------------

ECHO = """\
    import json, os, sys
    config = {}
    if "BILEVEL_CONFIG" in os.environ:
        config = json.load(open(os.environ["BILEVEL_CONFIG"]))
    for arg in sys.argv[1:]:
        if arg.startswith("--"):
            key, value = arg[2:].split("=", 1)
            config[key] = value
    for key in ("LR", "BATCH_SIZE", "OPT", "SEED", "X_LR"):
        if key in os.environ:
            config[key] = os.environ[key]
    print("config " + json.dumps(config, sort_keys=True))
    print("argv " + json.dumps(sys.argv[1:]))
    print("val_bpb: 1.0")
"""


def echoed(result) -> tuple[dict, list]:
    lines = result.log_tail.splitlines()
    config = json.loads(next(x for x in lines if x.startswith("config "))[7:])
    return config, json.loads(next(x for x in lines if x.startswith("argv "))[5:])


def test_env_mode_sets_upper_case_variables(tmp_path):
    obj = objective(tmp_path, ECHO, config_via="env")
    config, _ = echoed(evaluate(obj, {"LR": 0.5, "OPT": "sgd"}))
    assert config == {"LR": "0.5", "BATCH_SIZE": "32", "OPT": "sgd"}
    prefixed = objective(tmp_path, ECHO, config_via="env", env_prefix="X_", seed_param="seed")
    config, _ = echoed(evaluate(prefixed, {"LR": 0.5}, seed=9))
    assert config == {"X_LR": "0.5"}  # the others went to X_BATCH_SIZE, X_OPT, X_SEED


def test_json_mode_writes_a_config_file_and_fills_the_placeholder(tmp_path):
    obj = objective(tmp_path, ECHO, config_via="json", seed_param="seed")
    obj.command += " --config-file={config}"
    config, argv = echoed(evaluate(obj, {"BATCH_SIZE": 8}, seed=3))
    assert config["BATCH_SIZE"] == 8 and config["LR"] == 0.01 and config["seed"] == 3
    assert argv[0].startswith("--config-file=/") and argv[0].endswith("config.json")
    assert not list(tmp_path.glob("config.json"))


def test_args_mode_appends_overrides(tmp_path):
    obj = objective(tmp_path, ECHO, config_via="args")
    _, argv = echoed(evaluate(obj, {"LR": 0.25, "OPT": "sgd"}))
    assert argv == ["--LR=0.25", "--BATCH_SIZE=32", "--OPT=sgd"]


# --- reading the output ---------------------------------------------------------------------------


def judge(output: str, returncode: int = 0, timed_out: bool = False, **options):
    obj = make_objective("script", command="python train.py", space=SPACE, **options)
    return obj.judge(Run(returncode, output, 1.0, timed_out))


def test_metric_parsing():
    ok = judge("step 1 loss: 9\nval_bpb: 0.5\n---\nval_bpb:   0.9979\ntraining_seconds: 300.1\n")
    assert (ok.status, ok.metric) == ("ok", 0.9979)
    assert ok.extra == {"training_seconds": 300.1}  # "step 1 loss: 9" is a log line, not a key
    assert judge("score=0.7\n", metric_pattern=r"score=(\S+)").metric == 0.7
    assert judge("acc: 0.9\n", metric="acc", direction="maximize").metric == 0.9
    assert judge("val_bpb: 1.5\n", returncode=1).status == "ok"  # the metric was printed


@pytest.mark.parametrize(
    "output, code, timed_out, status, reason",
    [
        ("val_bpb: nan\n", 0, False, "nan", "val_bpb is nan"),
        ("val_bpb: -inf\n", 0, False, "nan", "val_bpb is -inf"),
        ("val_bpb: oops\n", 0, False, "crash", "'oops' is not a number"),
        ("done\n", 0, False, "crash", "no 'val_bpb:' line in the output"),
        ("Traceback\nValueError: x\n", 1, False, "crash", "exit status 1; no 'val_bpb:' line"),
        ("torch.OutOfMemoryError: CUDA out of memory\n", 1, False, "oom", "out of memory"),
        ("MemoryError\n", 1, False, "oom", "out of memory"),
        ("step 1\n", -signal.SIGKILL, False, "oom", "OOM killer"),
        ("step 1\n", -signal.SIGKILL, True, "timeout", "killed the process group after 600s"),
    ],
)
def test_statuses(output, code, timed_out, status, reason):
    result = judge(output, returncode=code, timed_out=timed_out)
    assert result.status == status and result.metric is None
    assert result.log_tail.splitlines()[-1].startswith(f"[bilevel] {status}: ")
    assert reason in result.log_tail


def test_log_tail_is_the_last_40_lines():
    result = judge("".join(f"line {i}\n" for i in range(100)) + "val_bpb: 1\n")
    assert result.log_tail.splitlines() == [f"line {i}" for i in range(61, 100)] + ["val_bpb: 1"]


def test_timeout_kills_the_whole_process_group(tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("OVERRUN_PID_FILE", str(pid_file))
    obj = make_objective(
        "script",
        command=f"{PYTHON} overrun.py",
        space=FIXTURES / "space.toml",
        workdir=str(FIXTURES),
        timeout_s=1.0,
    )
    start = time.perf_counter()
    result = evaluate(obj, {})
    assert result.status == "timeout" and time.perf_counter() - start < 10
    assert "step 0" in result.log_tail and "killed the process group after 1s" in result.log_tail
    child = int(pid_file.read_text())
    for _ in range(50):  # reaped by init a moment after SIGKILL
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the script's child {child} survived the timeout")


def test_a_command_that_does_not_start_is_a_crash(tmp_path):
    obj = objective(tmp_path, "LR = 1\nBATCH_SIZE = 1\nOPT = 'sgd'\n")
    obj.command = "no-such-program-xyz train.py"
    result = evaluate(obj, {})
    assert result.status == "crash" and "no-such-program-xyz" in result.log_tail


# --- options and checks -----------------------------------------------------------------------


def test_script_needs_options_to_be_listed_or_built():
    with pytest.raises(UnknownObjective, match="needs options: command"):
        make_objective("script")
    with pytest.raises(UnknownObjective, match="bad options"):
        make_objective("script", command="python t.py", space=SPACE, nope=1)


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"direction": "down"}, "--direction must be minimize or maximize"),
        ({"config_via": "yaml"}, "--config-via must be one of constants, env, json, args"),
        ({"command": "python"}, "--config-via constants needs --train-file"),
        ({"file": "../x.py"}, "outside --workdir"),
        ({"metric_pattern": "val"}, "needs a (group)"),
        ({"timeout_s": 0}, "--eval-timeout a positive number"),
    ],
)
def test_bad_options_are_clear_errors(options, needle):
    with pytest.raises(ScriptError, match=None) as info:
        make_objective("script", **{"command": "python t.py", "space": SPACE, **options})
    assert needle in str(info.value)


def test_cli_options_resolve_paths_inline_the_space_and_check_the_file(tmp_path, monkeypatch):
    write(tmp_path / "train.py", "LR = 0.01\nBATCH_SIZE = 32\nOPT = 'adamw'\n")
    (tmp_path / "space.toml").write_text(
        '[params.OPT]\ntype = "categorical"\nchoices = ["adamw", "sgd"]\ndefault = "adamw"\n'
        '[params.LR]\ntype = "logfloat"\nlow = 1e-4\nhigh = 1.0\ndefault = 0.01\n'
    )
    monkeypatch.chdir(tmp_path.parent)
    flags = {"command": "python train.py", "space": "space.toml", "workdir": tmp_path.name}
    options = cli_options({}, flags)
    assert options["workdir"] == str(tmp_path) and options["file"] == "train.py"
    assert [p["name"] for p in options["space"]["params"]] == ["OPT", "LR"]
    with pytest.raises(ScriptError, match="needs --command"):
        cli_options({}, {**flags, "command": None})
    with pytest.raises(ScriptError, match="needs --space FILE"):
        cli_options({}, {**flags, "space": None})
    write(tmp_path / "train.py", "LR = 0.01\n")
    with pytest.raises(ScriptError, match="no top-level assignment for OPT"):
        cli_options({}, flags)


# --- search space files ---------------------------------------------------------------------


def test_space_file_keeps_order_and_round_trips_through_sorted_json(tmp_path):
    path = write(
        tmp_path / "s.toml",
        """\
        [params.LR]
        type = "logfloat"; low = 1e-4; high = 1e-1; default = 3e-3
        """.replace("; ", "\n"),
    )
    path.write_text(
        path.read_text()
        + '[params.DEPTH]\ntype = "int"\nlow = 1\nhigh = 8\ndefault = 4\ndescription = "layers"\n'
        + '[params.ACT]\ntype = "categorical"\nchoices = ["gelu", "relu"]\ndefault = "gelu"\n'
    )
    space = load_space(path)
    assert space.names == ["LR", "DEPTH", "ACT"] and space["DEPTH"].description == "layers"
    stored = json.loads(json.dumps(space_tables(space), sort_keys=True))
    assert load_space(stored) == space


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[params.LR]\ntype = \nlow = 1", "does not parse: Invalid value (at line 2, column 8)"),
        ('# c\n\n[params.LR]\ntype = "float"\nlo = 0\n', "line 3: [params.LR]: unknown key 'lo'"),
        ('x = 1\n[params.LR]\ntype = "float"\n', "unknown top-level key 'x'"),
        ('[params.LR]\ntype = "real"\n', "type must be one of float, logfloat, int, categorical"),
        ('[params.LR]\ntype = "float"\nlow = 0\nhigh = 1\n', "needs a default"),
        (
            '[params.LR]\ntype = "logfloat"\nlow = 0\nhigh = 1\ndefault = 0.1\n',
            "[params.LR]: LR: logfloat needs low > 0",
        ),
        ('[params.A]\ntype = "int"\nlow = 1\nhigh = 4\ndefault = 9\n', "A=9 is out of range"),
        ("", "no parameters"),
    ],
)
def test_space_file_errors_name_the_line_and_key(tmp_path, text, needle):
    with pytest.raises(ScriptError) as info:
        load_space(write(tmp_path / "bad.toml", text))
    assert needle in str(info.value) and "bad.toml" in str(info.value)


# --- drafts -----------------------------------------------------------------------------------


def test_draft_infers_types_ranges_and_parses_back(tmp_path):
    path = write(
        tmp_path / "train.py",
        """\
        import os
        LR = 3e-3  # learning rate
        TOTAL_BATCH_SIZE = 2**19
        DEPTH = 8
        DROPOUT = 0.0
        WARMDOWN_RATIO = 0.5
        USE_BIAS = False
        OPTIMIZER = "adamw"
        ADAM_BETAS = (0.8, 0.95)
        SEED = 42
        lower_case = 1
        def f():
            HIDDEN = 3
        """,
    )
    draft = draft_space(path)
    assert draft.startswith("# DRAFT") and "Review it" in draft
    space = load_space(write(tmp_path / "draft.toml", draft))
    assert space.names == [
        "LR", "TOTAL_BATCH_SIZE", "DEPTH", "DROPOUT", "WARMDOWN_RATIO", "USE_BIAS"
    ]  # fmt: skip
    lr = space["LR"]
    assert (lr.kind, lr.low, lr.high, lr.default, lr.description) == (
        "logfloat", 3e-4, 3e-2, 3e-3, "learning rate"
    )  # fmt: skip
    tbs = space["TOTAL_BATCH_SIZE"]
    assert (tbs.kind, tbs.low, tbs.high, tbs.default, tbs.scale) == (
        "int", 2**17, 2**21, 2**19, "log2"
    )  # fmt: skip
    assert (space["DEPTH"].low, space["DEPTH"].high) == (2, 32)
    assert (space["DROPOUT"].kind, space["DROPOUT"].low, space["DROPOUT"].high) == ("float", 0, 0.5)
    assert (space["WARMDOWN_RATIO"].low, space["WARMDOWN_RATIO"].high) == (0.25, 0.75)
    assert space["USE_BIAS"].choices == [False, True]
    # kept, commented out, with why: a choice of one, a tuple, a seed
    assert '# choices = ["adamw"]' in draft and '# choices = ["(0.8, 0.95)"]' in draft
    assert "# [params.SEED]" in draft and "lower_case" not in draft


def test_draft_without_constants_is_an_error(tmp_path):
    with pytest.raises(ScriptError, match="no top-level UPPER_CASE constants"):
        draft_space(write(tmp_path / "t.py", "x = 1\n"))
