"""Patches to a script's source: both formats, and every way a patch is refused before it runs."""

from __future__ import annotations

import pytest

from bilevel.objectives.script_patch import (
    PatchError,
    apply_patch,
    parse_patch,
    patch_summary,
    unified_diff,
)

SOURCE = {
    "train.py": "LR = 3e-3\nDEPTH = 2\n\ndef act(x):\n    return x * 2\n",
    "data.py": "X = 1\n",
}
ALLOWED = {"train.py"}

SEARCH_REPLACE = """I will lower the learning rate and use a different activation.

train.py
<<<<<<< SEARCH
LR = 3e-3
=======
LR = 1e-3
>>>>>>> REPLACE

train.py
<<<<<<< SEARCH
    return x * 2
=======
    return max(x, 0) ** 2
>>>>>>> REPLACE
"""

UNIFIED = """--- a/train.py
+++ b/train.py
@@ -1,2 +1,2 @@
-LR = 3e-3
+LR = 1e-3
 DEPTH = 2
@@ -5,1 +5,1 @@
-    return x * 2
+    return max(x, 0) ** 2
"""


@pytest.mark.parametrize("text", [SEARCH_REPLACE, UNIFIED], ids=["search-replace", "unified"])
def test_both_formats_give_the_same_result(text):
    after = apply_patch(SOURCE, parse_patch(text), ALLOWED)
    assert after["train.py"] == ("LR = 1e-3\nDEPTH = 2\n\ndef act(x):\n    return max(x, 0) ** 2\n")
    assert after["data.py"] == SOURCE["data.py"]
    diff = unified_diff(SOURCE, after)
    assert patch_summary(diff) == "train.py +2 -2"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no edits here", "no edits found"),
        ("train.py\n<<<<<<< SEARCH\nLR = 1\n=======\nLR = 2\n>>>>>>> REPLACE\n", "not in the file"),
        ("data.py\n<<<<<<< SEARCH\nX = 1\n=======\nX = 2\n>>>>>>> REPLACE\n", "may not be edited"),
        (
            "train.py\n<<<<<<< SEARCH\nDEPTH = 2\n=======\nDEPTH = (\n>>>>>>> REPLACE\n",
            "no longer compiles",
        ),
        (
            "train.py\n<<<<<<< SEARCH\nLR = 3e-3\n=======\nLR = 3e-3\n>>>>>>> REPLACE\n",
            "changes nothing",
        ),
    ],
    ids=["unreadable", "does-not-apply", "forbidden-file", "does-not-compile", "no-change"],
)
def test_a_bad_patch_is_refused_with_its_reason(text, reason):
    with pytest.raises(PatchError, match=reason):
        apply_patch(SOURCE, parse_patch(text), ALLOWED)


def test_an_ambiguous_search_must_be_made_unique():
    files = {"train.py": "A = 1\nA = 1\n"}
    text = "train.py\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n>>>>>>> REPLACE\n"
    with pytest.raises(PatchError, match="occurs 2 times"):
        apply_patch(files, parse_patch(text), {"train.py"})
