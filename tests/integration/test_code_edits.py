"""--code-edits through a real OpenAI-compatible HTTP server (tests/openai_server.py) that replies
with scripted patches, against a real script run in the real jail: each outcome in the ledger,
and the evaluations each costs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bilevel.objectives.jail import JailUnavailable, check_jail
from tests.helpers import bilevel, ledger_query, plant_escape_targets, show_json, trials
from tests.openai_server import OpenAIServer, ok

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "script"
pytestmark = pytest.mark.slow


def jail_or_skip() -> None:
    try:
        check_jail()
    except JailUnavailable as exc:
        pytest.skip(str(exc))


def edit(search: str, replace: str, file: str = "train.py") -> str:
    return f"{file}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def reply(patch: str = "", changes: list[dict[str, Any]] | None = None, why: str = "idea") -> Any:
    return ok(
        json.dumps(
            {
                "changes": changes or [],
                "patch": patch,
                "hypothesis": why,
                "expected_direction": "lower",
            }
        )
    )


GOOD = edit("    overhead = 0.5", "    overhead = 0.25")
SCRIPT = [
    # step 1: a good patch, kept (0.875 -> 0.625)
    ("propose", reply(GOOD, why="less overhead")),
    # step 2: a patch that does not apply, then (repair round) one to a file it may not edit:
    # both refused, the prior researcher proposes parameters instead
    ("propose", reply(edit("    overhead = 0.9", "    overhead = 0.1"))),
    ("repair", reply(edit("SCALE = 1.0", "SCALE = 0.5", file="helper.py"))),
    # step 3: a patch that does not compile, then a parameter change in the repair round
    ("propose", reply(edit("    overhead = 0.25", "    overhead = (0.25"))),
    ("repair", reply(changes=[{"param": "WIDTH", "value": 16}], why="wider")),
    # step 4: a patch that crashes when it runs
    ("propose", reply(edit("    overhead = 0.25", "    overhead = 0.1 / undefined_name"))),
    # step 5: the fix, asked with the crash's log tail, applied to the crashed source
    ("fix", reply(edit("    overhead = 0.1 / undefined_name", "    overhead = 0.1"), why="typo")),
]


def purpose(body: dict[str, Any]) -> str:
    text = str(body["messages"][-1]["content"])
    if "Your reply could not be used" in text:
        return "repair"
    return "fix" if "crashed. Its patch" in text else "propose"


def scripted(seen: list[str]):
    def script(body: dict[str, Any], index: int) -> Any:
        want, behaviour = SCRIPT[len(seen)]
        seen.append(purpose(body))
        assert seen[-1] == want, (seen, str(body["messages"][-1]["content"])[-2000:])
        return behaviour

    return script


def project(tmp_path: Path, script: str = "train.py") -> Path:
    proj = tmp_path / "proj"
    shutil.copytree(FIXTURES / "editable", proj)
    if script != "train.py":
        shutil.copy(FIXTURES / script, proj / "train.py")
    return proj


def run_args(server_url: str, proj: Path, run_dir: Path, iterations: int) -> list[str]:
    return ["run", "--objective", "script", "--command", "python train.py", "--workdir",
            str(proj), "--space", "space.toml", "--code-edits", "--llm", server_url,
            "--llm-model", "fake", "--arm", "inner", "--iterations", str(iterations),
            "--cycle", str(iterations), "--run-dir", str(run_dir)]  # fmt: skip


def decoded(run_dir: Path) -> list[dict[str, Any]]:
    rows = trials(run_dir)
    for r in rows:
        r["patch"] = json.loads(r["patch"]) if r["patch"] else None
        r["changes"] = json.loads(r["changes"])
    return rows


def notes(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    rows = ledger_query(run_dir, f"SELECT detail FROM notes WHERE kind = '{kind}' ORDER BY key")
    return [json.loads(r["detail"]) for r in rows]


def blob(run_dir: Path, digest: str) -> str:
    return ledger_query(run_dir, f"SELECT data FROM blobs WHERE hash = '{digest}'")[0]["data"]


def test_scripted_patches_each_outcome_in_the_ledger(tmp_path: Path):
    jail_or_skip()
    proj = project(tmp_path)
    original = (proj / "train.py").read_text()
    run_dir = tmp_path / "run"
    seen: list[str] = []
    with OpenAIServer(scripted(seen)) as server:
        bilevel(*run_args(server.url, proj, run_dir, 5), timeout=300)
        assert not server.errors, server.errors
    assert seen == [s[0] for s in SCRIPT]
    rows = decoded(run_dir)
    # 1 + 5 evaluations: the four refused patches cost none
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4, 5]
    base, good, prior, wider, crash, fix = rows
    assert base["metric"] == pytest.approx(0.875) and base["code"] is None
    # the good patch: kept, and the incumbent's source from then on
    assert good["status"] == "ok" and good["accepted"] and good["metric"] == pytest.approx(0.625)
    assert good["patch"]["summary"] == "train.py +1 -1" and good["patch"]["base_code"] is None
    assert "overhead = 0.25" in blob(run_dir, good["patch"]["diff"])
    assert good["description"] == "patch train.py +1 -1"
    # step 2 fell back to the prior researcher: parameters only, on the patched source
    assert prior["source"] == "prior" and prior["patch"] is None and prior["code"] == good["code"]
    rejected = notes(run_dir, "patch_rejected")
    assert [n["round"] for n in rejected] == [0, 1, 0]
    assert "is not in the file" in rejected[0]["reason"]
    assert "helper.py may not be edited (allowed: train.py)" in rejected[1]["reason"]
    assert "no longer compiles" in rejected[2]["reason"]
    assert "SCALE = 0.5" in blob(run_dir, rejected[1]["patch"])  # each patch, whole
    assert any("llm_fallback" == n for n in [r["kind"] for r in ledger_query(
        run_dir, "SELECT kind FROM notes")])  # fmt: skip
    # step 3's repair round gave parameters: an ordinary trial, on the patched source
    assert wider["source"] == "llm" and wider["changes"] == {"WIDTH": 16}
    assert wider["code"] == good["code"] and wider["patch"] is None
    # the crash, then its fix: a new trial linked to it, applied to the crashed source
    assert crash["status"] == "crash" and "NameError" in crash["log_tail"]
    assert crash["patch"]["repair_of"] is None and not crash["accepted"]
    assert fix["patch"]["repair_of"] == crash["trial"]
    assert fix["patch"]["base_code"] == crash["code"]
    assert fix["status"] == "ok" and fix["metric"] < good["metric"] and fix["accepted"]
    # each kept code change: the source, and the diff against the user's original
    kept = notes(run_dir, "incumbent_source")
    assert [n["trial"] for n in kept] == [good["trial"], fix["trial"]]
    assert "+    overhead = 0.1\n" in blob(run_dir, kept[-1]["diff"])
    source = json.loads(blob(run_dir, kept[-1]["code"]))["train.py"]
    assert "overhead = 0.1\n" in source and (proj / "train.py").read_text() == original
    # results.tsv: a patch column
    lines = (run_dir / "results.tsv").read_text().splitlines()
    assert lines[0].split("\t")[-1] == "patch"
    assert lines[1 + fix["trial"]].split("\t")[-1] == "train.py +1 -1"
    summary = show_json(run_dir)
    assert summary["trials"] == summary["budget"] == 6
    # apply: a copy of the project with the best source and config reproduces the best metric
    best = summary["best"]
    assert best["trial"] == fix["trial"]
    out = bilevel("apply", str(run_dir)).stdout
    command = out.strip().splitlines()[-1]
    assert command.startswith(f"cd {run_dir / 'best' / 'work'} && ")
    rerun = subprocess.run(command, shell=True, capture_output=True, text=True, check=True)
    assert f"val_bpb: {best['metric']:.6f}" in rerun.stdout
    # apply --git: one commit per kept change, the tip reproduces the best metric
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start"],
    ):
        subprocess.run(["git", "-C", str(proj), *args], check=True)  # fmt: skip
    out = bilevel("apply", str(run_dir), "--git", "bilevel/best").stdout
    kept_trials = [r for r in rows if r["accepted"] and 0 < r["trial"] <= best["trial"]]
    assert f"branch bilevel/best in {proj}: {len(kept_trials)} commits" in out
    tip = tmp_path / "tip"
    subprocess.run(["git", "-C", str(proj), "worktree", "add", "-q", str(tip), "bilevel/best"],
                   check=True)  # fmt: skip
    ran = subprocess.run(["python", "train.py"], cwd=tip, capture_output=True, text=True)
    assert f"val_bpb: {best['metric']:.6f}" in ran.stdout
    log = subprocess.run(["git", "-C", str(tip), "log", "--format=%B", "-1"], capture_output=True,
                         text=True).stdout  # fmt: skip
    assert "patch train.py +1 -1" in log and "typo\n" in log and "trial 5" in log
    assert [r["hypothesis"] for r in rows if r["trial"] in (good["trial"], fix["trial"])] == [
        "less overhead",
        "typo",
    ]
    assert (proj / "train.py").read_text() == original


def escape_patch() -> str:
    """A patch that puts escape.py's attempts (write outside, socket, secret, a process left
    behind) into the editable script, before its metric line."""
    text = (FIXTURES / "escape.py").read_text()
    body = text[text.index("import os") : text.index('print(f"val_bpb')].replace("LR = 0.01\n", "")
    metric = 'print(f"val_bpb: {model_loss(LR, WIDTH):.6f}")'
    return edit(metric, body + metric)


def test_a_patched_trial_is_jailed_and_the_run_goes_on(tmp_path: Path, monkeypatch):
    jail_or_skip()
    proj = project(tmp_path)
    listener, token = plant_escape_targets(tmp_path, proj, monkeypatch)
    replies = [reply(escape_patch(), why="escape"), reply(changes=[{"param": "WIDTH", "value": 4}])]
    run_dir = tmp_path / "run"
    with OpenAIServer(lambda body, i: replies[min(i, 1)]) as server:
        bilevel(*run_args(server.url, proj, run_dir, 2), timeout=300)
    rows = decoded(run_dir)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    hostile = rows[1]
    assert hostile["patch"] is not None and json.loads(hostile["extra"])["jail"]
    tail = hostile["log_tail"]
    for name in ("write_original", "socket", "read_secret"):
        assert f"{name}: blocked" in tail, tail
    assert "hunter2" not in tail and "api_key: absent" in tail
    assert not (proj / "escaped.txt").exists() and not (tmp_path / "outside.txt").exists()
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    left = subprocess.run(["pgrep", "-f", token], capture_output=True, text=True)
    assert left.stdout == "", "a jailed trial left a process behind"
    # the baseline ran the user's own code: not jailed without --jail
    assert "jail" not in json.loads(rows[0]["extra"])


def test_code_edit_flags_are_checked_before_the_run(tmp_path: Path):
    proj = project(tmp_path)
    base = ["run", "--objective", "script", "--command", "python train.py", "--workdir",
            str(proj), "--space", "space.toml", "--run-dir", str(tmp_path / "r")]  # fmt: skip
    cases = [
        ([*base, "--code-edits"], "code edits need --objective script and an llm researcher"),
        ([*base, "--edit-files", "train.py"], "--edit-files names what --code-edits may change"),
        ([*base, "--code-edits", "--llm", "http://127.0.0.1:9/v1", "--edit-files", "nope.py"],
         "--edit-files nope.py does not exist"),
        (["run", "--objective", "synthetic:trainsim", "--code-edits", "--llm",
          "http://127.0.0.1:9/v1"], "--code-edits patches a training script"),
    ]  # fmt: skip
    for args, message in cases:
        proc = bilevel(*args, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert message in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


ARGS_TRAIN = '''"""The editable script, its settings given as --NAME=value (nanoGPT-style)."""
import math
import sys

LR = 0.1
WIDTH = 8
for arg in sys.argv[1:]:
    name, value = arg.removeprefix("--").split("=")
    globals()[name] = type(globals()[name])(value)


def model_loss(lr, width):
    overhead = 0.5
    return (math.log10(lr) + 1.5) ** 2 + 1.0 / width + overhead


print(f"val_bpb: {model_loss(LR, WIDTH):.6f}")
'''


def test_apply_git_on_an_args_mode_run_commits_the_source_and_prints_the_config(tmp_path: Path):
    jail_or_skip()
    proj = project(tmp_path)
    (proj / "train.py").write_text(ARGS_TRAIN)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start"],
    ):
        subprocess.run(["git", "-C", str(proj), *args], check=True)  # fmt: skip
    replies = [
        reply(GOOD, why="less overhead"),
        reply(changes=[{"param": "WIDTH", "value": 16}], why="wider"),
    ]
    run_dir = tmp_path / "run"
    with OpenAIServer(lambda body, i: replies[min(i, 1)]) as server:
        bilevel(*run_args(server.url, proj, run_dir, 2), "--config-via", "args", timeout=300)
    rows = decoded(run_dir)
    assert [r["accepted"] for r in rows] == [1, 1, 1], rows  # the patch, then WIDTH=16
    best = show_json(run_dir)["best"]
    assert best["trial"] == 2 and best["config"]["WIDTH"] == 16
    out = bilevel("apply", str(run_dir), "--git", "edits").stdout
    assert f"branch edits in {proj}: 2 commits" in out
    command = out.strip().splitlines()[-1]
    assert "--WIDTH=16" in command and command.startswith(f"cd {proj} && ")
    subprocess.run(["git", "-C", str(proj), "checkout", "-q", "edits"], check=True)
    rerun = subprocess.run(command, shell=True, capture_output=True, text=True, check=True)
    assert f"val_bpb: {best['metric']:.6f}" in rerun.stdout
    log = subprocess.run(["git", "-C", str(proj), "log", "--format=%B", "-1"],
                         capture_output=True, text=True).stdout  # fmt: skip
    assert log.startswith("WIDTH") and "wider\n" in log and "run it with: " in log
    assert "run it with: BILEVEL_SEED=0 python train.py --LR=0.1 --WIDTH=16" in log
    assert "overhead = 0.25" in (proj / "train.py").read_text()
