"""Source versions of a `--code-edits` run: the files the researcher may edit, by content hash.

A version is the JSON {path: text} of every editable file, stored once as a ledger blob; its hash
names it. The user's own files, read once when the run starts, are the original (run meta
`code_original`); a trial row's `code` names the version it ran (None: the original), its `patch`
says what its patch did:

    {"code": version, "base_code": the version it was applied to (None: the original),
     "summary": "train.py +3 -1", "lines": 4, "diff": blob of the diff against base_code,
     "repair_of": the crashed trial it fixes, or None}

A kept trial's version becomes the incumbent's; the ledger then notes `incumbent_source` with the
diff against the original, so every kept state of the code can be read back.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from bilevel.objectives.script_patch import patch_summary, unified_diff
from bilevel.store.ledger import Ledger

ORIGINAL_KEY = "code_original"
MAX_EDIT_FILE_BYTES = 1_000_000  # an editable file is shown to the model whole


class SourceError(ValueError):
    """An editable file that cannot be read (missing, outside the workdir, not text, too big)."""


def default_edit_files(options: dict[str, Any]) -> list[str]:
    """What code edits may change when --edit-files is not given: the script objective's train
    file (constants mode), else the first .py file its command names."""
    names = shlex.split(options.get("command") or "")
    default = options.get("file") or next((a for a in names if a.endswith(".py")), None)
    if default is None:
        raise SourceError("--code-edits: name the files it may change with --edit-files")
    return [default]


def read_edit_files(workdir: str | Path, names: list[str]) -> dict[str, str]:
    """The editable files' text, by path relative to workdir; SourceError says which is wrong."""
    root = Path(workdir).resolve()
    out = {}
    for name in names:
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise SourceError(f"--edit-files {name} is outside --workdir {root}")
        if not path.is_file():
            raise SourceError(f"--edit-files {name} does not exist in {root}")
        if path.stat().st_size > MAX_EDIT_FILE_BYTES:
            raise SourceError(f"--edit-files {name} is over {MAX_EDIT_FILE_BYTES} bytes")
        try:
            out[str(path.relative_to(root))] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SourceError(f"--edit-files {name} is not UTF-8 text") from None
    return out


def put_files(ledger: Ledger, files: dict[str, str]) -> str:
    return ledger.put_blob(json.dumps(files, sort_keys=True))


def files_of(ledger: Ledger, code: str | None) -> dict[str, str]:
    """The files of version code (None: the original)."""
    if code is None:
        code = ledger.get_meta(ORIGINAL_KEY)
        if code is None:
            return {}
    return json.loads(ledger.blob(code))


def record_original(ledger: Ledger, files: dict[str, str]) -> str:
    """Store the user's files as the run's original, once (a resumed run keeps the first)."""
    known = ledger.get_meta(ORIGINAL_KEY)
    if known is not None:
        return known
    code = put_files(ledger, files)
    ledger.set_meta(ORIGINAL_KEY, code)
    return code


def new_version(
    ledger: Ledger,
    base_code: str | None,
    files: dict[str, str],
    repair_of: int | None = None,
) -> dict[str, Any]:
    """Store patched files as a version; the trial's `patch` record (see the module docstring)."""
    before = files_of(ledger, base_code)
    diff = unified_diff(before, files)
    return {
        "code": put_files(ledger, files),
        "base_code": base_code,
        "summary": patch_summary(diff),
        "lines": sum(
            1
            for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
        ),
        "diff": ledger.put_blob(diff),
        "repair_of": repair_of,
    }


def diff_from_original(ledger: Ledger, code: str | None) -> str:
    """The unified diff from the user's files to version code."""
    return unified_diff(files_of(ledger, None), files_of(ledger, code))


def record_incumbent_source(ledger: Ledger, trial: dict[str, Any], key: str) -> None:
    """A kept trial that changed the code: note its source and the diff against the original."""
    diff = diff_from_original(ledger, trial["code"])
    ledger.add_note(
        key,
        trial["cycle"],
        trial["iteration"],
        "incumbent_source",
        {
            "trial": trial["trial"],
            "code": trial["code"],
            "diff": ledger.put_blob(diff),
            "summary": patch_summary(diff),
        },
    )
