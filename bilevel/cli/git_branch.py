"""`bilevel apply --git BRANCH`: the run's kept changes as commits on a new branch of the user's
repository, one per kept trial up to the best one (message: what changed, the metric and the
researcher's hypothesis), as
Karpathy's autoresearch keeps its branch. The user's checkout is never touched: the commits are
made in a temporary worktree that is removed afterwards."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bilevel.cli.common import shell_line


class GitError(ValueError):
    """A git step failed or the repository is not fit for a new branch; one line why."""


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise GitError(f"git {' '.join(args[:2])} failed: {reason}")
    return proc.stdout.strip()


def lineage(trials: list[dict[str, Any]], best: dict[str, Any]) -> list[dict[str, Any]]:
    """The kept trials of the best trial's trace, in order, ending with the best trial."""
    kept = [
        t for t in trials
        if t["trace"] == best["trace"] and t["accepted"] and 0 < t["trial"] < best["trial"]
    ]  # fmt: skip
    return [*kept, best]


def commit_kept_changes(
    obj: Any,
    trials: list[dict[str, Any]],
    best_id: int,
    seed: int,
    branch: str,
    sources: dict[int, dict[str, str]] | None,
    config_file: Path,
) -> tuple[Path, list[str], list[str], dict[str, str]]:
    """Create branch (from HEAD of the repository holding the train file) with one commit per
    kept change; returns the repository, the commit subjects, and the command and environment
    that run the tip with the best config. sources: a --code-edits run's edited files per trial
    (committed too). In constants mode the tip holds the config as well; in the other modes
    each commit's message says how its config is passed (json mode writes config_file)."""
    root = obj.workdir.resolve()
    try:
        repo = Path(git(root, "rev-parse", "--show-toplevel"))
    except (GitError, FileNotFoundError) as exc:
        raise GitError(f"{root} is not in a git repository ({exc}): use "
                       "`bilevel apply` without --git") from None  # fmt: skip
    if subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                       f"refs/heads/{branch}"], capture_output=True).returncode == 0:  # fmt: skip
        raise GitError(f"branch {branch} already exists in {repo}: choose another name")
    git(repo, "check-ref-format", "--branch", branch)
    by_id = {t["trial"]: t for t in trials}
    own: dict[str, str] = {}  # constants mode: the train file as the run copied it, edits included
    if obj.config_via == "constants":
        own = {obj.file: (root / obj.file).read_text(encoding="utf-8")}
    subjects: list[str] = []
    argv, env = shlex.split(obj.command), {}
    with tempfile.TemporaryDirectory(prefix="bilevel-git-") as tmp:
        work = Path(tmp) / "tree"
        git(repo, "worktree", "add", "--quiet", "-b", branch, str(work), "HEAD")
        try:
            project = work / root.relative_to(repo)
            for t in lineage(trials, by_id[best_id]):
                files = {**own, **(sources or {}).get(t["trial"], {})}
                for name, text in files.items():
                    (project / name).write_text(text, encoding="utf-8")
                passed = obj.passed_values(t["config"], seed)
                # constants mode rewrites the train file here; the others say how to pass it
                argv, env = obj.delivery(passed, project, config_file)
                for name in files:
                    git(work, "add", str(project / name))
                metric = f"{obj.metric} {t['metric']:.6g}"
                subject = f"{t['description'] or 'config'}: {metric}"
                body = f"trial {t['trial']}, cycle {t['cycle']}, {t['source']}, {t['mechanism']}"
                if obj.config_via != "constants":
                    seeded = {"BILEVEL_SEED": str(seed), **env}  # as the run evaluated it
                    body += f"\nrun it with: {shell_line(seeded, argv)}"
                hypothesis = t.get("hypothesis")
                if hypothesis:
                    body = f"{hypothesis}\n\n{body}"
                git(work, "-c", "user.name=bilevel", "-c", "user.email=bilevel@localhost",
                    "commit", "--quiet", "--allow-empty", "-m", subject, "-m", body)  # fmt: skip
                subjects.append(subject)
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(work)],
                           capture_output=True)  # fmt: skip
    return repo, subjects, argv, env
