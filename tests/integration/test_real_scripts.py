"""Training scripts in the conventions of real projects, through the real CLI: a configurator that
literal_evals `--key=value` flags and checks their types, a config file that overrides constants,
a `step N: train loss X, val loss Y` log, a summary after `\\r` progress lines, an asserted batch
divisibility; and the best config back out of the run, re-run by hand to the same metric."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import BILEVEL, bilevel, plant_escape_targets, show_json, trials, trials_done

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parents[1] / "fixtures" / "script"
NANO_METRIC = ["--metric", "val_loss", "--metric-pattern", r"val loss (\S+)"]
NANO_SPACE = """\
[params.learning_rate]
type = "logfloat"
low = 1e-4
high = 1e-1
default = 1e-3

[params.n_embd]
type = "int"
low = 16
high = 512
scale = "log2"
default = 64

[params.bias]
type = "categorical"
choices = [false, true]
default = false

[params.betas]
type = "categorical"
choices = ["(0.9, 0.95)", "(0.9, 0.99)"]
literal = true
default = "(0.9, 0.95)"
"""


@pytest.fixture(autouse=True)
def venv_python_on_path(monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def nano(tmp_path: Path) -> Path:
    """A copy of the nanoGPT-style project with a space file beside it."""
    proj = tmp_path / "nano"
    shutil.copytree(FIXTURES / "configured", proj)
    (proj / "space.toml").write_text(NANO_SPACE)
    return proj


def by_hand(command: str, cwd: Path) -> str:
    """Run a printed `cd DIR && VAR=x cmd ...` line the way a user pastes it into a shell."""
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120,
                         cwd=cwd)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_constants_mode_refuses_a_command_that_overrides_them(nano: Path):
    common = ["run", "--objective", "script", "--workdir", str(nano), "--space", "space.toml",
              *NANO_METRIC]  # fmt: skip
    proc = bilevel(*common, "--command", "python train.py config/small.py", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "config/small.py (named in --command) sets learning_rate, n_embd" in proc.stderr
    assert "--config-via args" in proc.stderr
    proc = bilevel(*common, "--command", "python train.py --bias=True", check=False)
    assert proc.returncode == 2 and "--command sets --bias itself" in proc.stderr


def test_args_mode_passes_python_literals_and_the_best_config_comes_back_out(nano: Path):
    run_dir = nano.parent / "run"
    bilevel(
        "run", "--objective", "script", "--command", "python train.py config/small.py",
        "--config-via", "args", "--workdir", str(nano), "--space", "space.toml", *NANO_METRIC,
        "--iterations", "8", "--cycle", "4", "--run-dir", str(run_dir),
    )  # fmt: skip
    rows = trials(run_dir)
    assert len(rows) == 9 and all(r["status"] == "ok" for r in rows), [r["log_tail"] for r in rows]
    assert "Overriding: bias = False" in rows[0]["log_tail"]  # the configurator took the bool
    summary = show_json(run_dir)
    best = summary["best"]
    assert best["metric"] == summary["best_metric"]
    assert set(best["config"]) == {"learning_rate", "n_embd", "bias", "betas"}
    on_disk = json.loads((run_dir / "best.json").read_text())
    assert on_disk == json.loads(bilevel("best", str(run_dir)).stdout)
    assert on_disk["script"]["config_via"] == "args" and on_disk["trial"] == best["trial"]
    args = bilevel("best", str(run_dir), "--format", "args").stdout
    assert "--bias=" in args and "'--betas=(0.9, 0.9" in args
    toml = bilevel("best", str(run_dir), "--format", "toml").stdout
    assert f"learning_rate = {best['config']['learning_rate']!r}" in toml
    applied = bilevel("apply", str(run_dir)).stdout.strip().splitlines()[-1]
    assert applied.startswith(f"cd {nano} && BILEVEL_SEED=0 python train.py config/small.py ")
    last = [line for line in by_hand(applied, nano).splitlines() if "val loss" in line][-1]
    assert float(last.rsplit(" ", 1)[1]) == best["metric"]  # re-run by hand: the same metric
    refused = bilevel("apply", str(run_dir), "--git", "best", check=False)
    assert refused.returncode == 2 and "edited no code" in refused.stderr, refused.stderr
    report = bilevel("report", str(run_dir)).stdout
    assert "report.md" in report and "## best config" in (run_dir / "report.md").read_text()

    import pandas

    bilevel("export", str(run_dir), "--out", str(nano.parent / "t.csv"))
    frame = pandas.read_csv(nano.parent / "t.csv")
    assert len(frame) == 9 and frame["metric"].min() == best["metric"]
    assert {"config.learning_rate", "config.n_embd", "status", "source", "cycle"} <= set(frame)
    jsonl = bilevel("export", str(run_dir), "--format", "jsonl").stdout
    lines = pandas.read_json(__import__("io").StringIO(jsonl), lines=True)
    assert list(lines["trial"]) == list(range(9)) and lines["config.bias"].dtype == bool


def test_constants_mode_on_a_summary_style_script_with_a_drafted_space(tmp_path: Path):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(FIXTURES / "summary_style.py", proj / "train.py")
    draft = bilevel("space", "draft", str(proj / "train.py")).stdout
    (proj / "space.toml").write_text(draft)
    assert 'scale = "log2"' in draft  # TOTAL_BATCH_SIZE and SEQ_LEN stay multiples
    original = (proj / "train.py").read_bytes()
    run_dir = tmp_path / "run"
    shown = bilevel(
        "run", "--objective", "script", "--command", "python train.py", "--workdir", str(proj),
        "--space", "space.toml", "--iterations", "12", "--cycle", "4", "--run-dir", str(run_dir),
    ).stdout  # fmt: skip
    rows = trials(run_dir)
    assert all(r["status"] == "ok" for r in rows), [r["log_tail"][-300:] for r in rows]
    assert len({r["config"] for r in rows}) == 13  # 12 different configs, none divisibility-broken
    assert "best config (trial" in shown and "trial copy:" in shown
    summary = show_json(run_dir)
    out = bilevel("apply", str(run_dir)).stdout
    assert (proj / "train.py").read_bytes() == original  # never the user's file unless asked
    applied = (proj / "train_best.py").read_text()
    assert applied.startswith("# written by `bilevel apply`")
    for name, value in summary["best"]["config"].items():
        assert f"\n{name} = {value!r}" in applied
    command = out.strip().splitlines()[-1]
    assert command.endswith("python train_best.py")
    printed = [line for line in by_hand(command, proj).splitlines() if line.startswith("val_bpb:")]
    assert float(printed[0].split()[1]) == summary["best"]["metric"]
    again = bilevel("apply", str(run_dir))  # its own earlier output may be replaced
    assert again.returncode == 0
    (proj / "train_best.py").write_text("mine\n")
    refused = bilevel("apply", str(run_dir), check=False)
    assert refused.returncode == 2 and "pass --to FILE" in refused.stderr
    assert (proj / "train_best.py").read_text() == "mine\n"


def test_a_metric_printed_only_at_step_0_warns_during_and_after_the_run(nano: Path):
    run_dir = nano.parent / "run"
    (nano / "lr.toml").write_text(NANO_SPACE.split("\n\n")[0] + "\n")
    proc = bilevel(
        "run", "--objective", "script", "--command", "python train.py --eval_interval=100",
        "--workdir", str(nano), "--space", "lr.toml", *NANO_METRIC, "--iterations", "3",
        "--cycle", "3", "--run-dir", str(run_dir),
    )  # fmt: skip
    assert "warning (trial 0): val_loss was printed once and last at step 0" in proc.stderr
    assert proc.stderr.count("printed once and last at step 0") == 2  # live once, summary once
    assert "eval_interval > max_iters" in bilevel("show", str(run_dir)).stderr


def test_a_config_the_script_loads_itself_is_caught_by_its_echo(nano: Path):
    train = nano / "train.py"  # the script now always applies config/small.py itself
    train.write_text(train.read_text().replace(
        'exec(open("configure.py").read())',
        'import sys\nsys.argv[1:1] = ["config/small.py"]\nexec(open("configure.py").read())',
    ))  # fmt: skip
    run_dir = nano.parent / "run"
    proc = bilevel(
        "run", "--objective", "script", "--command", "python train.py", "--workdir", str(nano),
        "--space", "space.toml", *NANO_METRIC, "--iterations", "2", "--cycle", "2",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert "this trial set n_embd = 64 but the script printed n_embd = 32" in proc.stderr


def test_a_plan_with_two_scripts_and_list_shows_each_state(tmp_path: Path, nano: Path):
    proj = tmp_path / "summary"
    proj.mkdir()
    shutil.copy(FIXTURES / "summary_style.py", proj / "train.py")
    (proj / "space.toml").write_text(bilevel("space", "draft", str(proj / "train.py")).stdout)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f"""\
objectives = ["script@nano", "script@summary"]
arms = ["inner"]
iterations = 3
cycle = 3

[objective_options."script@nano"]
command = "python train.py"
workdir = "nano"
space = "space.toml"
metric = "val_loss"
metric_pattern = 'val loss (\\S+)'

[objective_options."script@summary"]
command = "python train.py"
workdir = "{proj}"
space = "space.toml"
"""
    )
    out = tmp_path / "batch"
    bilevel("batch", "--file", str(plan), "--out", str(out))
    rows = (out / "summary.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == ["script@nano", "script@summary"]
    nano_run, summary_run = out / "script@nano" / "inner-s0", out / "script@summary" / "inner-s0"
    assert show_json(nano_run)["metric_name"] == "val_loss"
    assert show_json(summary_run)["metric_name"] == "val_bpb"

    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(FIXTURES / "crash.py", broken / "train.py")
    shutil.copy(FIXTURES / "space.toml", broken / "space.toml")
    failed = bilevel("run", "--objective", "script", "--command", "python train.py",
                     "--workdir", str(broken), "--space", "space.toml", "--iterations", "1",
                     "--cycle", "1", "--run-dir", str(out / "broken"), check=False)  # fmt: skip
    assert failed.returncode == 1

    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "train.py").write_text("import time\nLR = 0.01\ntime.sleep(1.0)\nprint('val_bpb: 1')\n")
    (slow / "space.toml").write_text(
        '[params.LR]\ntype = "logfloat"\nlow = 0.001\nhigh = 0.1\ndefault = 0.01\n'
    )
    proc = subprocess.Popen(
        [*BILEVEL, "run", "--objective", "script", "--command", "python train.py", "--workdir",
         str(slow), "--space", "space.toml", "--iterations", "30", "--run-dir", str(out / "slow")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while trials_done(out / "slow") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        states = dict(line.split("\t")[::6] for line in listing(out)[1:])
        assert states[str(out / "slow")] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    states = dict(line.split("\t")[::6] for line in listing(out)[1:])
    assert states == {
        str(out / "broken"): "failed",
        str(nano_run): "finished",
        str(summary_run): "finished",
        str(out / "slow"): "interrupted",
    }


def listing(out: Path) -> list[str]:
    return bilevel("list", str(out)).stdout.strip().splitlines()


def test_link_options_reach_the_trial_copies(nano: Path):
    (nano / "data").mkdir()
    (nano / "data" / "train.bin").write_bytes(b"\0" * 1000)
    (nano / "logs").mkdir()
    (nano / "logs" / "old.txt").write_text("x")
    run_dir = nano.parent / "run"
    train = nano / "train.py"
    train.write_text(train.read_text() + (
        "import os\nprint('linked', os.path.islink('data/train.bin'),"
        " 'logs', os.path.exists('logs'))\n"
    ))  # fmt: skip
    shown = bilevel(
        "run", "--objective", "script", "--command", "python train.py", "--workdir", str(nano),
        "--space", "space.toml", *NANO_METRIC, "--iterations", "1", "--cycle", "1",
        "--run-dir", str(run_dir),
        "--link", "data/*.bin", "--exclude", "logs",
    ).stdout  # fmt: skip
    assert "linked True logs False" in trials(run_dir)[0]["log_tail"]
    assert "1 linked, not copied" in shown
    assert show_json(run_dir)["trial_copy"]["linked_files"] == 1


@pytest.mark.parametrize("mode", ["env", "json"])
def test_apply_prints_a_command_that_reproduces_the_best_trial(tmp_path: Path, mode: str):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(
        "import json, math, os\n"
        "if os.environ.get('BILEVEL_CONFIG'):\n"
        "    cfg = json.load(open(os.environ['BILEVEL_CONFIG']))\n"
        "else:\n"
        "    cfg = {'LR': float(os.environ['LR']), 'DEEP': json.loads(os.environ['DEEP'])}\n"
        "score = (math.log10(cfg['LR']) + 2) ** 2 + (0 if cfg['DEEP'] else 0.5)\n"
        "print(f'val_bpb: {score:.6f}')\n"
    )
    (proj / "space.toml").write_text(
        '[params.LR]\ntype = "logfloat"\nlow = 0.0001\nhigh = 0.1\ndefault = 0.1\n\n'
        '[params.DEEP]\ntype = "categorical"\nchoices = [false, true]\ndefault = false\n'
    )
    run_dir = tmp_path / "run"
    bilevel("run", "--objective", "script", "--command", "python train.py", "--config-via", mode,
            "--workdir", str(proj), "--space", "space.toml", "--iterations", "6", "--cycle", "3",
            "--run-dir", str(run_dir))  # fmt: skip
    best = show_json(run_dir)["best"]
    out = bilevel("apply", str(run_dir)).stdout.strip().splitlines()
    if mode == "json":
        assert out[0] == f"wrote {run_dir / 'best_config.json'}"
        assert json.loads((run_dir / "best_config.json").read_text()) == best["config"]
    printed = by_hand(out[-1], tmp_path)
    assert float(printed.split()[1]) == best["metric"]


@pytest.mark.parametrize("backend", ["bwrap", "namespaces"])
def test_a_jailed_trial_cannot_get_out_and_the_run_goes_on(tmp_path: Path, monkeypatch, backend):
    from bilevel.objectives.jail import _probe

    if reason := _probe(backend):
        pytest.skip(f"no {backend} jail on this machine (.ci/run installs bubblewrap): {reason}")
    monkeypatch.setenv("BILEVEL_JAIL", backend)
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(FIXTURES / "escape.py", proj / "train.py")
    shutil.copy(FIXTURES / "space.toml", proj / "space.toml")
    listener, token = plant_escape_targets(tmp_path, proj, monkeypatch)
    run_dir = tmp_path / "run"
    bilevel("run", "--objective", "script", "--command", "python train.py", "--jail",
            "--workdir", str(proj), "--space", "space.toml", "--iterations", "2", "--cycle", "2",
            "--run-dir", str(run_dir))  # fmt: skip
    rows = trials(run_dir)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        tail = row["log_tail"]
        for name in ("write_original", "socket", "read_secret"):
            assert f"{name}: blocked" in tail, tail
        # /tmp in the jail is its own: a write there may succeed, and never reaches the host
        assert "hunter2" not in tail and "api_key: absent" in tail
    assert not (proj / "escaped.txt").exists() and not (tmp_path / "outside.txt").exists()
    with pytest.raises(TimeoutError):
        listener.accept()  # nothing reached the host's port
    listener.close()
    left = subprocess.run(["pgrep", "-f", token], capture_output=True, text=True)
    assert left.stdout == "", "a jailed trial left a process behind"
    # without the jail the same script gets out: the test can tell the difference
    free = bilevel("run", "--objective", "script", "--command", "python train.py",
                   "--workdir", str(proj), "--space", "space.toml", "--iterations", "1",
                   "--cycle", "1", "--run-dir", str(tmp_path / "free"))  # fmt: skip
    assert free.returncode == 0
    assert "read_secret: done" in trials(tmp_path / "free")[0]["log_tail"]
    (proj / "escaped.txt").unlink()


def test_jail_without_bubblewrap_is_refused_before_the_run(tmp_path: Path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(FIXTURES / "space.toml", proj / "space.toml")
    (proj / "train.py").write_text("LR = 0.01\nprint('val_bpb: 1')\n")
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bare))  # python, but no bwrap
    proc = bilevel("run", "--objective", "script", "--command", "python train.py", "--jail",
                   "--workdir", str(proj), "--space", "space.toml", check=False)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no jail for trials here" in proc.stderr and "apt-get install bubblewrap" in proc.stderr
    assert not any(tmp_path.glob("runs"))


def test_apply_git_commits_each_kept_change_and_the_tip_reproduces_the_best(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(FIXTURES / "summary_style.py", repo / "train.py")
    (repo / "space.toml").write_text(bilevel("space", "draft", str(repo / "train.py")).stdout)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True)  # fmt: skip
    run_dir = tmp_path / "run"
    bilevel("run", "--objective", "script", "--command", "python train.py", "--workdir",
            str(repo), "--space", "space.toml", "--iterations", "8", "--cycle", "4", "--run-dir",
            str(run_dir))  # fmt: skip
    best = show_json(run_dir)["best"]
    kept = [r for r in trials(run_dir) if r["accepted"] and 0 < r["trial"] <= best["trial"]]
    out = bilevel("apply", str(run_dir), "--git", "bilevel/best").stdout
    assert f"branch bilevel/best in {repo}: {len(kept)} commits" in out
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                            capture_output=True, text=True).stdout  # fmt: skip
    assert status == ""  # the user's checkout is as it was
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%s", "main..bilevel/best"],
                         capture_output=True, text=True).stdout.splitlines()  # fmt: skip
    assert len(log) == len(kept) and log[0].endswith(f"val_bpb {best['metric']:.6g}")
    body = subprocess.run(["git", "-C", str(repo), "log", "--format=%b", "-1", "bilevel/best"],
                          capture_output=True, text=True).stdout  # fmt: skip
    hypothesis = next(r["hypothesis"] for r in trials(run_dir) if r["trial"] == best["trial"])
    assert "should" in hypothesis and body.startswith(hypothesis)
    tip = tmp_path / "tip"
    subprocess.run(["git", "clone", "-q", "-b", "bilevel/best", str(repo), str(tip)], check=True)
    printed = by_hand("BILEVEL_SEED=0 python train.py", tip)
    assert f"val_bpb:          {best['metric']:.6f}" in printed
    again = bilevel("apply", str(run_dir), "--git", "bilevel/best", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_apply_keeps_an_encoding_line_first_and_a_docstring_whole(tmp_path: Path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "space.toml").write_text(
        '[params.LR]\ntype = "logfloat"\nlow = 0.001\nhigh = 0.1\ndefault = 0.01\n'
    )
    for head in ("# -*- coding: utf-8 -*-\n", '"""A decoding model.\n\nIt trains.\n"""\n'):
        (proj / "train.py").write_text(head + "LR = 0.01\nprint(f'val_bpb: {LR}')\n")
        run_dir = tmp_path / f"run{len(head)}"
        bilevel("run", "--objective", "script", "--command", "python train.py", "--workdir",
                str(proj), "--space", "space.toml", "--iterations", "2", "--cycle", "2",
                "--run-dir", str(run_dir))  # fmt: skip
        bilevel("apply", str(run_dir))
        lines = (proj / "train_best.py").read_text().splitlines()
        marked = 1 if head.startswith("#") else 0  # after the encoding line, never in a docstring
        assert lines[marked].startswith("# written by `bilevel apply`")
        assert "\n".join(lines[:marked] + lines[marked + 1 :]).startswith(head.rstrip("\n"))
