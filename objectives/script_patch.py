"""Patches to a training script's source: parsed, checked and applied before anything runs.

A patch is search/replace blocks (what both local and API models were seen to write most
reliably), or a unified diff, whose hunks become the same edits:

    train.py
    <<<<<<< SEARCH
    LR = 3e-3
    =======
    LR = 1e-3
    >>>>>>> REPLACE

An edit's SEARCH text must occur exactly once in the file it names; the file must be one the
run may edit; and every edited Python file must still compile. A patch that fails any of these
raises PatchError with the reason, and is never evaluated.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

BLOCK = re.compile(
    r"^(?P<file>[^\n<>=]+?)[ \t]*\n(?:```[^\n]*\n)?<{5,9} ?SEARCH[^\n]*\n"
    r"(?P<search>.*?)^={5,9}[ \t]*\n(?P<replace>.*?)^>{5,9} ?REPLACE[^\n]*$",
    re.MULTILINE | re.DOTALL,
)
MAX_PATCH_CHARS = 64_000


class PatchError(ValueError):
    """A patch that cannot be used; the message says why, for the model's repair round."""


@dataclass(frozen=True)
class Edit:
    file: str
    search: str
    replace: str


def parse_patch(text: str) -> list[Edit]:
    """The edits of a patch in either format; PatchError when none can be read."""
    if len(text) > MAX_PATCH_CHARS:
        raise PatchError(f"the patch is {len(text)} characters: at most {MAX_PATCH_CHARS}")
    edits = [
        Edit(m["file"].strip().strip("`*"), m["search"], m["replace"]) for m in BLOCK.finditer(text)
    ]
    if edits:
        return edits
    if re.search(r"^@@ ", text, re.MULTILINE):
        return diff_edits(text)
    raise PatchError(
        "no edits found: write FILE, then <<<<<<< SEARCH, the exact lines to replace, =======, "
        "the new lines, >>>>>>> REPLACE"
    )


def diff_edits(text: str) -> list[Edit]:
    """A unified diff's hunks as edits: context and removed lines are searched for, context and
    added lines replace them (line numbers are ignored: models get them wrong)."""
    edits: list[Edit] = []
    file = None
    old: list[str] = []
    new: list[str] = []

    def flush() -> None:
        if file is not None and (old or new):
            if not old:
                raise PatchError(f"a hunk for {file} has no context or removed lines to anchor it")
            edits.append(Edit(file, "".join(old), "".join(new)))
        old.clear()
        new.clear()

    for line in text.splitlines(keepends=True):
        if line.startswith("+++ "):
            flush()
            name = line[4:].strip().split("\t")[0]
            file = name[2:] if name.startswith(("a/", "b/")) else name
        elif line.startswith("--- "):
            flush()
        elif line.startswith("@@"):
            flush()
        elif file is None:
            continue
        elif line.startswith("+"):
            new.append(line[1:])
        elif line.startswith("-"):
            old.append(line[1:])
        elif line.startswith(" ") or line in ("\n", "\r\n"):
            body = line[1:] if line.startswith(" ") else line
            old.append(body)
            new.append(body)
        elif line.startswith("\\"):  # "\ No newline at end of file"
            continue
    flush()
    if not edits:
        raise PatchError("the unified diff has no hunks with changes")
    return edits


def apply_patch(files: dict[str, str], edits: list[Edit], allowed: set[str]) -> dict[str, str]:
    """The files after the edits, checked: every edited file is allowed and every SEARCH text
    occurs exactly once; every edited .py file compiles. files maps path -> source."""
    out = dict(files)
    for edit in edits:
        if edit.file not in allowed:
            raise PatchError(
                f"{edit.file} may not be edited (allowed: {', '.join(sorted(allowed))})"
            )
        source = out[edit.file]
        count = source.count(edit.search) if edit.search else 0
        if count == 0:
            raise PatchError(
                f"the SEARCH text of an edit to {edit.file} is not in the file (copy the lines "
                f"exactly as they are now, indentation included): {first_line(edit.search)!r}"
            )
        if count > 1:
            raise PatchError(
                f"the SEARCH text of an edit to {edit.file} occurs {count} times: include more "
                f"lines so it is unique: {first_line(edit.search)!r}"
            )
        out[edit.file] = source.replace(edit.search, edit.replace, 1)
    for name in {e.file for e in edits}:
        if name.endswith(".py"):
            try:
                compile(out[name], name, "exec")
            except SyntaxError as exc:
                raise PatchError(
                    f"{name} no longer compiles: line {exc.lineno}: {exc.msg}"
                ) from None
    if out == files:
        raise PatchError("the patch changes nothing")
    return out


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")[:80]


def unified_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """A unified diff from before to after, file by file."""
    parts = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name, ""), after.get(name, "")
        if a != b:
            parts += difflib.unified_diff(
                a.splitlines(keepends=True), b.splitlines(keepends=True), f"a/{name}", f"b/{name}"
            )
    return "".join(parts)


def patch_summary(diff: str) -> str:
    """`train.py +3 -1`: the files a diff touches with its added and removed line counts."""
    counts: dict[str, list[int]] = {}
    name = ""
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = line[4:].removeprefix("b/")
            counts.setdefault(name, [0, 0])
        elif line.startswith("+") and name:
            counts[name][0] += 1
        elif line.startswith("-") and not line.startswith("--- ") and name:
            counts[name][1] += 1
    return ", ".join(f"{n} +{a} -{r}" for n, (a, r) in counts.items())
