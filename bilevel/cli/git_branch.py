"""`bilevel apply --git BRANCH`: the run's kept changes as commits on a new branch of the user's
repository, one per kept trial up to the best one (message: what changed and the metric), as
Karpathy's autoresearch keeps its branch. The user's checkout is never touched: the commits are
made in a temporary worktree that is removed afterwards."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bilevel.objectives.script_config import rewrite_constants


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
    sources: dict[int, dict[str, str]] | None = None,
) -> tuple[Path, list[str]]:
    """Create branch (from HEAD of the repository holding the train file) with one commit per
    kept change; returns the repository and the commit subjects. sources: a --code-edits run's
    edited files per trial (committed too: the tip is the best trial's source and config)."""
    original = (obj.workdir / obj.file).resolve()
    try:
        repo = Path(git(original.parent, "rev-parse", "--show-toplevel"))
    except (GitError, FileNotFoundError) as exc:
        raise GitError(f"{original.parent} is not in a git repository ({exc}): use "
                       "`bilevel apply` without --git") from None  # fmt: skip
    if subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                       f"refs/heads/{branch}"], capture_output=True).returncode == 0:  # fmt: skip
        raise GitError(f"branch {branch} already exists in {repo}: choose another name")
    git(repo, "check-ref-format", "--branch", branch)
    by_id = {t["trial"]: t for t in trials}
    source = original.read_text(encoding="utf-8")  # as the run copied it, edits included
    subjects = []
    with tempfile.TemporaryDirectory(prefix="bilevel-git-") as tmp:
        work = Path(tmp) / "tree"
        git(repo, "worktree", "add", "--quiet", "-b", branch, str(work), "HEAD")
        try:
            target = work / original.relative_to(repo)
            project = work / obj.workdir.resolve().relative_to(repo)
            for t in lineage(trials, by_id[best_id]):
                files = (sources or {}).get(t["trial"], {})
                for name, text in files.items():
                    (project / name).write_text(text, encoding="utf-8")
                    git(work, "add", str(project / name))
                text = files.get(obj.file, source)
                passed = obj.passed_values(t["config"], seed)
                target.write_text(rewrite_constants(text, passed, obj.file), encoding="utf-8")
                metric = f"{obj.metric} {t['metric']:.6g}"
                subject = f"{t['description'] or 'config'}: {metric}"
                body = f"trial {t['trial']}, cycle {t['cycle']}, {t['source']}, {t['mechanism']}"
                hypothesis = t.get("hypothesis")
                if hypothesis:
                    body = f"{hypothesis}\n\n{body}"
                git(work, "add", str(target))
                git(work, "-c", "user.name=bilevel", "-c", "user.email=bilevel@localhost",
                    "commit", "--quiet", "--allow-empty", "-m", subject, "-m", body)  # fmt: skip
                subjects.append(subject)
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(work)],
                           capture_output=True)  # fmt: skip
    return repo, subjects
