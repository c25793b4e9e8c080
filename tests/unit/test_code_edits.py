"""Code edits' logic: proposals checked against the source, patches carried through review,
source versions keyed apart, and what the meta-researcher is told."""

from __future__ import annotations

import pytest

from bilevel.agents.code_edits import CodeContext, CodeProposal, check_proposal
from bilevel.agents.llm_researcher import Change
from bilevel.agents.researcher import trial_key
from bilevel.agents.roles import ResearchRequest
from bilevel.graphs.history import EvaluatedBefore
from bilevel.graphs.inner import carry_patch, describe
from bilevel.objectives import SpaceError, make_objective
from bilevel.objectives.script_patch import PatchError
from bilevel.store.ledger import Ledger
from bilevel.store.sources import files_of, new_version, put_files, record_original

SOURCE = {"train.py": "LR = 0.1\nX = 1\nprint(f'val_bpb: {LR}')\n", "model.py": "W = 2\n"}


def request(**extra) -> ResearchRequest:
    objective = make_objective("synthetic:trainsim")
    config = objective.space.defaults()
    return ResearchRequest(
        objective=objective,
        incumbent={"config": config, "metric": 1.0, "trial": 0},
        history=[],
        params={"frozen": [], "temperature": 1.0, "candidates": 1},
        advice="",
        seed="0",
        running=[],
        free_evaluations=1,
        evaluated=set(),
        **extra,
    )


def proposal(patch: str = "", changes: list[Change] | None = None) -> CodeProposal:
    return CodeProposal(
        changes=changes or [], patch=patch, hypothesis="h", expected_direction="lower"
    )


def edit(search: str, replace: str, file: str = "train.py") -> str:
    return f"{file}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_a_patch_is_applied_to_the_given_source_and_only_allowed_files():
    req = request()
    code = CodeContext(SOURCE, None, ["train.py"])
    cand = check_proposal(proposal(edit("X = 1", "X = 2")), req, code, set())
    assert cand["changes"] == {} and cand["files"]["files"]["train.py"].startswith(
        "LR = 0.1\nX = 2"
    )
    assert cand["files"]["base_code"] is None and cand["files"]["repair_of"] is None
    with pytest.raises(PatchError, match="model.py may not be edited"):
        check_proposal(proposal(edit("W = 2", "W = 3", "model.py")), req, code, set())
    with pytest.raises(PatchError, match="no longer compiles"):
        check_proposal(proposal(edit("X = 1", "X = (1")), req, code, set())
    with pytest.raises(SpaceError):  # no patch and nothing changed
        check_proposal(proposal(), req, code, set())


def test_a_fix_keeps_the_crashed_trials_changes_and_needs_a_patch():
    req = request()
    name = req.objective.space.names[0]
    value = req.objective.space[name].neighbors(req.incumbent["config"][name])[0]
    repair = {"trial": 4, "diff": "", "log_tail": "NameError", "changes": {name: value}}
    code = CodeContext(SOURCE, "abc", ["train.py"], repair)
    cand = check_proposal(proposal(edit("X = 1", "X = 3")), req, code, set())
    assert cand["changes"] == {name: value}
    assert cand["files"]["repair_of"] == 4 and cand["files"]["base_code"] == "abc"
    with pytest.raises(PatchError, match="a fix needs a patch"):
        check_proposal(proposal(changes=[Change(param=name, value=value)]), req, code, set())


def test_review_may_drop_a_patch_but_never_forge_or_alter_one():
    patch = {"code": "v1", "summary": "train.py +1 -1", "lines": 2, "repair_of": None}
    cand = {"changes": {}, "source": "llm", "hypothesis": "", "patch": patch}
    assert carry_patch(cand, dict(cand))["patch"] == patch
    assert "patch" not in carry_patch(cand, {**cand, "patch": {**patch, "code": "evil"}})
    assert "patch" not in carry_patch(cand, {"changes": {"a": 1}, "source": "x", "hypothesis": ""})
    plain = {"changes": {"a": 1}, "source": "prior", "hypothesis": ""}
    assert "patch" not in carry_patch(plain, {**plain, "patch": patch})  # no forging
    assert carry_patch(cand, None) is None
    assert describe(cand, {}) == "patch train.py +1 -1"


def test_the_same_config_on_another_source_version_is_a_new_trial():
    config = {"a": 1}
    first_seen = {trial_key(config): 0, trial_key(config, "v1"): 3}
    assert trial_key(config) != trial_key(config, "v1")
    assert trial_key(config) in EvaluatedBefore(first_seen, 5)
    seen_v1 = EvaluatedBefore(first_seen, 5, "v1")
    assert trial_key(config) in seen_v1  # asked by canonical key, answered for version v1
    assert trial_key(config) not in EvaluatedBefore(first_seen, 5, "v2")
    assert trial_key(config) not in EvaluatedBefore(first_seen, 2, "v1")


def test_source_versions_are_stored_once_and_diffed(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    original = record_original(ledger, SOURCE)
    assert record_original(ledger, {"train.py": "other"}) == original  # the first one stays
    assert files_of(ledger, None) == SOURCE
    patched = {**SOURCE, "train.py": SOURCE["train.py"].replace("X = 1", "X = 2")}
    record = new_version(ledger, None, patched, repair_of=None)
    assert (
        record["code"] == put_files(ledger, patched) and files_of(ledger, record["code"]) == patched
    )
    assert record["summary"] == "train.py +1 -1" and record["lines"] == 2
    assert "-X = 1\n+X = 2\n" in ledger.blob(record["diff"])
    ledger.close()


def test_the_meta_assessment_says_which_code_edits_paid(tmp_path):
    from bilevel.graphs.assessment import code_edit_effects

    ledger = Ledger(tmp_path / "ledger.sqlite")
    patch = {"summary": "train.py +1 -1", "lines": 2, "repair_of": None}

    def trial(n, metric, status, accepted, incumbent, patch=None):
        return {"trial": n, "metric": metric, "status": status, "accepted": accepted,
                "incumbent_metric": incumbent, "patch": patch, "hypothesis": f"h{n}"}  # fmt: skip

    trace = [
        trial(0, 1.0, "ok", True, 1.0),
        trial(1, 0.8, "ok", True, 0.8, patch),
        trial(2, None, "crash", False, 0.8, patch),
        trial(3, 0.9, "ok", False, 0.8, {**patch, "repair_of": 2}),
        trial(4, 0.7, "ok", True, 0.7),
    ]
    ledger.add_note("1:patch_rejected", 0, 1, "patch_rejected", {"reason": "r"})
    effects = code_edit_effects(ledger, trace, 1, 0)
    assert [e["trial"] for e in effects["patched_trials"]] == [1, 2, 3]
    first, crashed, fix = effects["patched_trials"]
    assert first["kept"] and first["metric_change"] == pytest.approx(-0.2)
    assert crashed["metric_change"] is None and fix["fixes"] == 2 and fix["hypothesis"] == "h3"
    assert fix["metric_change"] == pytest.approx(0.1)
    assert (effects["kept"], effects["crashed"], effects["refused_before_running"]) == (1, 1, 1)
    assert code_edit_effects(ledger, trace[:1] + trace[4:], 1, 5) is None  # no edits: no entry
    ledger.close()
