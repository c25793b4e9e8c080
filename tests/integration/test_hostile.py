"""The hostile-mechanism corpus (tests/hostile/*.py) against the whole stack.

Every corpus file is installed as the user mechanism of a small real bilevel run, with a secret
planted in a file and in this process's environment. Whatever the file attempts, the run must
complete with its full budget, the ledger must name the cause (a rejection at validation, or a
failed hook call that fell back to the default -- or, for attacks that are harmless by design,
nothing they attempted took effect), the secret must appear nowhere in the run directory or the
output, no file may appear outside the run directory, no sandbox worker may be left behind, and
every evaluation must be exactly what the objective computes for a config inside the space.

Each corpus file states what it expects in its docstring:
  Expect: rejected reason="..." ...         validation refused it; each text is in the reason
  Expect: runtime outcome=a,b [error="re"]  installed; a call at cycle >= 1 ended in one of the
                                            outcomes (its error matching the regex)
  Expect: harmless outcome=a,b [unchanged] [note=kind] [max_ok_ms=N]
                                            installed; every call ended in one of the outcomes
                                            (unchanged: no call changed anything)
  Known-bug: ...                            a containment bug not fixed yet: the run is expected
                                            to die (xfail); once it completes, the test says so
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bilevel.config import RunConfig
from bilevel.contract import better
from bilevel.execution.evaluator import eval_seed
from bilevel.objectives import make_objective
from bilevel.runner import arun
from bilevel.sandbox.pool import SandboxPool

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "tests" / "hostile"
FILES = sorted(p.name for p in HOSTILE.glob("*.py"))
ENV_NAME = "BILEVEL_TEST_SECRET"
TOKEN = f"hostile-secret-{secrets.token_hex(16)}"
OBJECTIVE = "synthetic:interact"
CLI_OBJECTIVE = "synthetic:trainsim"  # the CLI's default: the sample runs exactly the spec'd line
ITERATIONS, CYCLE, HOOK_TIMEOUT = 4, 2, 0.3
SEED = 0
WORKER_MODULE = b"bilevel.sandbox.worker"
IGNORED_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
CLI_SAMPLE = [
    "runtime_cpu_loop.py",
    "runtime_memory_bomb.py",
    "runtime_recursion_bomb.py",
    "runtime_huge_return.py",
    "runtime_c_stack_crash.py",
    "import_os.py",
    "env_read_secret.py",
    "file_write_cwd.py",
]


# --- what a corpus file expects --------------------------------------------------------------


@dataclass
class Expect:
    kind: str  # rejected | runtime | harmless
    outcomes: set[str] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)
    error: re.Pattern[str] | None = None
    unchanged: bool = False
    note: str | None = None
    max_ok_ms: float | None = None
    known_bug: str | None = None


def expectation(source: str) -> Expect:
    lines = [line for line in source.splitlines() if line.startswith("Expect:")]
    assert len(lines) == 1, "a corpus file needs exactly one 'Expect:' line in its docstring"
    kind, *options = shlex.split(lines[0].removeprefix("Expect:"))
    assert kind in ("rejected", "runtime", "harmless"), kind
    exp = Expect(kind)
    for option in options:
        key, _, value = option.partition("=")
        if key == "outcome":
            exp.outcomes = set(value.split(","))
        elif key == "reason":
            exp.reasons.append(value)
        elif key == "error":
            exp.error = re.compile(value)
        elif key == "unchanged":
            exp.unchanged = True
        elif key == "note":
            exp.note = value
        elif key == "max_ok_ms":
            exp.max_ok_ms = float(value)
        else:
            raise AssertionError(f"unknown Expect option {option!r}")
    assert kind == "rejected" or exp.outcomes, "runtime and harmless need outcome=..."
    bug = re.search(r"^Known-bug: (.*)$", source, re.M)
    exp.known_bug = bug.group(1).strip() if bug else None
    return exp


def corpus_params() -> list[Any]:
    """One test per file; known bugs are visible in the test id."""
    out = []
    for name in FILES:
        bug = expectation((HOSTILE / name).read_text()).known_bug
        out.append(pytest.param(name, id=name.removesuffix(".py") + ("-known-bug" if bug else "")))
    return out


# --- the world the runs happen in ------------------------------------------------------------


@dataclass
class Harness:
    root: Path
    secret_file: Path
    watch: Path
    cwd: Path
    runner: asyncio.Runner
    pool: SandboxPool
    sandbox_dirs: set[str]

    def source(self, name: str) -> str:
        text = (HOSTILE / name).read_text()
        assert TOKEN not in text
        return text.replace("@@SECRET_FILE@@", str(self.secret_file)).replace(
            "@@WATCH_DIR@@", str(self.watch)
        )

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return self.runner.run(asyncio.wait_for(coro, timeout))


def sandbox_tmp_dirs() -> set[str]:
    # Workers create bilevel-sandbox-* and remove it at once (their cwd is a deleted directory).
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("bilevel-sandbox-")}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    root = tmp_path_factory.mktemp("hostile")
    secret_file = root / "secret.txt"
    secret_file.write_text(TOKEN + "\n")
    for sub in ("watch", "cwd", "runs", "cli"):
        (root / sub).mkdir()
    before = sandbox_tmp_dirs()
    os.environ[ENV_NAME] = TOKEN  # before any worker starts: workers must not inherit it
    runner = asyncio.Runner()
    pool = SandboxPool(workers=2)
    runner.run(pool.start())
    h = Harness(root, secret_file, root / "watch", root / "cwd", runner, pool, before)
    try:
        yield h
    finally:
        runner.run(pool.close())
        runner.close()
        os.environ.pop(ENV_NAME, None)


# --- observations ----------------------------------------------------------------------------


def snapshot(root: Path, skip: Path | None = None) -> dict[str, int]:
    """Every path under root (but not under skip) with its size."""
    out: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS and here / d != skip]
        for name in dirnames + filenames:
            path = here / name
            try:
                out[str(path.relative_to(root))] = path.lstat().st_size if name in filenames else -1
            except FileNotFoundError:
                pass
    return out


def top_level(path: Path) -> set[str]:
    return {n for n in os.listdir(path) if n not in IGNORED_DIRS}


def proc_info(pid: str) -> tuple[int, str, list[bytes]] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return int(ppid), state, argv


def sandbox_processes(parent: int) -> set[int]:
    """Processes parent started (live or zombie), and sandbox workers started for parent
    (their argv carries the parent's pid), wherever they have been reparented to."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = proc_info(entry)
        if info is None:
            continue
        ppid, _state, argv = info
        if ppid == parent:
            out.add(int(entry))
        elif WORKER_MODULE in argv:
            rest = argv[argv.index(WORKER_MODULE) + 1 :]
            if str(parent).encode() in rest:
                out.add(int(entry))
    return out


def settle(check: Any, seconds: float = 3.0) -> Any:
    """check() until it is falsy (a process just killed may take a moment to be reaped)."""
    deadline = time.monotonic() + seconds
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def secret_in_files(run_dir: Path) -> list[str]:
    needles = (TOKEN.encode(), TOKEN.encode("utf-16-le"))
    hits = []
    for path in sorted(run_dir.rglob("*")):
        if path.is_file() and any(n in path.read_bytes() for n in needles):
            hits.append(str(path.relative_to(run_dir)))
    return hits


def rows(db: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    cur = db.execute(sql)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --- checks ----------------------------------------------------------------------------------


def check_evaluations(
    db: sqlite3.Connection, objective_name: str, runner: asyncio.Runner, iterations: int
) -> None:
    """Every trial was evaluated on a config inside the space, built from its base and changes,
    its metric is what the objective computes, and acceptance followed the greedy rule."""
    objective = make_objective(objective_name)
    space = objective.space
    trials = rows(db, "SELECT * FROM trials ORDER BY trial")
    assert [t["trial"] for t in trials] == list(range(1 + iterations))
    inc_config: dict[str, Any] | None = None
    inc_metric: float | None = None
    for t in trials:
        config, changes = json.loads(t["config"]), json.loads(t["changes"])
        assert sorted(config) == sorted(space.names), t
        assert space.validate(config) == config, f"trial {t['trial']} outside the space: {config}"
        if t["trial"] == 0:
            assert config == space.defaults() and t["source"] == "baseline"
        else:
            assert changes and json.loads(t["base"]) == inc_config, t
            assert config == {**inc_config, **changes}, t
        result = runner.run(objective.evaluate(config, eval_seed(SEED, t["trial"], False)))
        assert (t["metric"], t["status"]) == (result.metric, result.status), t
        keep = t["trial"] == 0 or (
            t["status"] == "ok" and better(t["metric"], inc_metric, objective.direction)
        )
        assert bool(t["accepted"]) == keep, f"trial {t['trial']}: acceptance is not the rule's"
        if keep:
            inc_config, inc_metric = config, t["metric"]
        assert t["incumbent_metric"] == inc_metric


def check_cause(db: sqlite3.Connection, exp: Expect) -> None:
    (mech,) = rows(db, "SELECT status, validation FROM mechanisms WHERE id = 'user'")
    calls = rows(db, "SELECT * FROM hook_calls WHERE mechanism = 'user' ORDER BY rowid")
    for call in calls:
        if call["outcome"] != "ok":  # a failed call is explained and used the default
            assert call["error"] and call["changed"] == 0, call
    if exp.kind == "rejected":
        reason = json.loads(mech["validation"])["reason"]
        assert mech["status"] == "rejected" and reason, mech
        for needle in exp.reasons:
            assert needle in reason, f"{needle!r} not in the rejection reason {reason!r}"
        assert calls == [], "a rejected mechanism's hooks must never be called"
        return
    assert mech["status"] == "installed", mech
    late = [c for c in calls if c["cycle"] >= 1]
    assert late, "the mechanism's hooks were not called after cycle 0"
    if exp.kind == "runtime":
        hits = [
            c
            for c in late
            if c["outcome"] in exp.outcomes
            and (exp.error is None or exp.error.search(c["error"] or ""))
        ]
        seen = sorted({(c["hook"], c["outcome"], c["error"]) for c in late})
        assert hits, f"no call ended in {sorted(exp.outcomes)}: {seen}"
        return
    outcomes = {c["outcome"] for c in calls}
    assert outcomes <= exp.outcomes, f"unexpected outcomes {outcomes - exp.outcomes}"
    if exp.unchanged:
        assert all(c["changed"] == 0 for c in calls), [c for c in calls if c["changed"]]
    if exp.note:
        notes = rows(db, f"SELECT kind FROM notes WHERE kind = '{exp.note}'")
        assert notes, f"no {exp.note!r} note recorded"
    if exp.max_ok_ms is not None:
        slow = [c for c in calls if c["outcome"] == "ok" and c["ms"] > exp.max_ok_ms]
        assert not slow, slow


def check_world(
    h: Harness,
    run_dir: Path,
    before_root: dict[str, int],
    before_top: dict[Path, set[str]],
    output: str,
) -> None:
    leaks = secret_in_files(run_dir)
    assert not leaks, f"the secret reached {leaks}"
    assert TOKEN not in output, "the secret reached stdout/stderr"
    after_root = snapshot(h.root, skip=run_dir)
    assert after_root == before_root, {
        "created": sorted(set(after_root) - set(before_root)),
        "removed": sorted(set(before_root) - set(after_root)),
        "resized": sorted(
            k for k in after_root if before_root.get(k, after_root[k]) != after_root[k]
        ),
    }
    for path, names in before_top.items():
        assert top_level(path) == names, f"files appeared in {path}: {top_level(path) - names}"
    assert h.secret_file.read_text() == TOKEN + "\n"


def world_before(h: Harness, run_dir: Path) -> tuple[dict[str, int], dict[Path, set[str]]]:
    watched = {REPO, Path.cwd(), HOSTILE}
    return snapshot(h.root, skip=run_dir), {p: top_level(p) for p in watched}


# --- the corpus, in-process ------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    assert len(FILES) >= 40
    readme = (HOSTILE / "README.md").read_text()
    for name in FILES:
        source = (HOSTILE / name).read_text()
        assert source.startswith('"""'), f"{name}: docstring naming the attack first"
        expectation(source)
        assert f"`{name}`" in readme, f"{name} is not described in tests/hostile/README.md"


@pytest.mark.parametrize("name", corpus_params())
def test_hostile_mechanism_is_contained(
    harness: Harness, name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    h = harness
    source = h.source(name)
    exp = expectation(source)
    run_dir = h.root / "runs" / name.removesuffix(".py")
    before_root, before_top = world_before(h, run_dir)
    config = RunConfig(
        objective=OBJECTIVE,
        arm="inner",
        iterations=ITERATIONS,
        cycle=CYCLE,
        seed=SEED,
        hook_timeout_s=HOOK_TIMEOUT,
        mechanism_source=source,
    )
    try:
        summary = h.run(arun(config, run_dir, pool=h.pool))
    except Exception as exc:
        if exp.known_bug is None:
            raise
        failure: BaseException | None = exc
    else:
        failure = None
    out, err = capfd.readouterr()

    # Containment holds even when the run itself died of a known bug.
    assert not (sandbox_processes(os.getpid()) - set(h.pool.pids())), "stray processes"
    check_world(h, run_dir, before_root, before_top, out + err)
    if failure is not None:
        pytest.xfail(f"known containment bug: {exp.known_bug} [{failure!r:.200}]")

    assert summary["trials"] == summary["budget"] == 1 + ITERATIONS
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        check_cause(db, exp)
        check_evaluations(db, OBJECTIVE, h.runner, ITERATIONS)
    finally:
        db.close()
    if exp.known_bug:
        pytest.fail(f"{name}: the known bug no longer reproduces; remove its 'Known-bug:' line")


# --- a sample through the real CLI -----------------------------------------------------------


def bilevel_cli() -> list[str]:
    script = Path(sys.executable).with_name("bilevel")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bilevel.cli"]


@pytest.mark.parametrize("name", CLI_SAMPLE)
def test_cli_contains_hostile_mechanism(harness: Harness, name: str) -> None:
    h = harness
    exp = expectation(h.source(name))
    assert exp.known_bug is None
    mech_file = h.root / "cli" / name
    mech_file.write_text(h.source(name))
    run_dir = h.root / "runs" / ("cli-" + name.removesuffix(".py"))
    before_root, before_top = world_before(h, run_dir)
    args = ["run", "--mechanism", str(mech_file), "--arm", "inner", "--iterations", "4"]
    args += ["--cycle", "2", "--hook-timeout", "0.3", "--run-dir", str(run_dir)]
    env = {**os.environ, ENV_NAME: TOKEN, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [*bilevel_cli(), *args],
        cwd=h.cwd,  # relative writes would land in a watched directory
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Traceback" not in out + err
    assert not settle(lambda: sandbox_processes(proc.pid)), "workers outlived the CLI"
    if exp.kind == "rejected":  # refused before anything runs, with validation's reason
        assert proc.returncode == 2, f"{out}\n{err}"
        assert "was rejected" in err and all(n in err for n in exp.reasons), err
        assert not run_dir.exists()
        check_world(h, run_dir, before_root, before_top, out + err)
        return
    assert proc.returncode == 0, f"{out}\n{err}"
    check_world(h, run_dir, before_root, before_top, out + err)
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        check_cause(db, exp)
        check_evaluations(db, CLI_OBJECTIVE, h.runner, ITERATIONS)
    finally:
        db.close()


# --- killed mid-call, over and over ----------------------------------------------------------

KILLED_EVERY_CALL = """
def spin(ctx):
    while ctx["cycle"] >= 1:
        pass


def advise(ctx):
    spin(ctx)
    return ""


def propose(ctx):
    spin(ctx)
    return []


def review(candidate, ctx):
    spin(ctx)
    return candidate


def select(candidates, ctx):
    spin(ctx)
    return [0]


def accept(trial, ctx):
    spin(ctx)
    metric, best = trial["metric"], ctx["incumbent"]["metric"]
    return trial["status"] == "ok" and metric is not None and (best is None or metric < best)
"""


def test_killed_mid_call_a_hundred_times(harness: Harness) -> None:
    """Every hook call from cycle 1 on busy-loops past the timeout, so its worker is killed
    and a fresh one serves the next call: the run completes on the defaults, every time."""
    h = harness
    iterations, cycle = 26, 2
    run_dir = h.root / "runs" / "killed-100"
    config = RunConfig(
        objective=OBJECTIVE,
        arm="inner",
        iterations=iterations,
        cycle=cycle,
        seed=SEED,
        hook_timeout_s=0.05,
        mechanism_source=KILLED_EVERY_CALL,
    )
    pool = SandboxPool(workers=2)
    try:
        summary = h.run(arun(config, run_dir, pool=pool), timeout=240)
        assert len(pool.pids()) <= 2
        assert not (sandbox_processes(os.getpid()) - set(pool.pids()) - set(h.pool.pids()))
    finally:
        h.run(pool.close())
    assert not settle(lambda: sandbox_processes(os.getpid()) - set(h.pool.pids()))
    assert summary["trials"] == summary["budget"] == 1 + iterations

    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        (status,) = db.execute("SELECT status FROM mechanisms WHERE id = 'user'").fetchone()
        assert status == "installed"
        calls = rows(db, "SELECT * FROM hook_calls WHERE mechanism = 'user' ORDER BY rowid")
        late = [c for c in calls if c["cycle"] >= 1]
        assert late and all(c["outcome"] == "timeout" and c["changed"] == 0 for c in late)
        streak = best = 0
        for c in calls:
            streak = streak + 1 if c["outcome"] == "timeout" else 0
            best = max(best, streak)
        assert best >= 100, f"only {best} calls killed in a row"
        assert {c["hook"] for c in late} == {"advise", "propose", "review", "select", "accept"}
        trials = rows(db, "SELECT trial, cycle, source FROM trials WHERE trial > 0")
        # proposed by the researcher itself, selected and accepted by the default rules
        assert all(t["source"] == "prior" for t in trials if t["cycle"] >= 1), trials
        check_evaluations(db, OBJECTIVE, h.runner, iterations)
    finally:
        db.close()


def test_no_worker_outlives_the_pool(harness: Harness) -> None:
    """Last: closing the shared pool leaves no sandbox process and no sandbox directory."""
    harness.run(harness.pool.close())
    assert harness.pool.pids() == []
    assert not settle(lambda: sandbox_processes(os.getpid())), "workers outlived the pool"
    assert not (sandbox_tmp_dirs() - harness.sandbox_dirs), "a worker left its directory"
