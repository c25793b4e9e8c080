"""Code edits (`--code-edits`): the LLM researcher proposes patches to the training script.

A proposal may carry parameter changes, a patch (search/replace blocks or a unified diff,
objectives/script_patch.py), or both. The patch is checked before anything runs -- it applies to
the incumbent's source, touches only the files the run may edit, and the result compiles -- and
a patch that fails goes back to the model once, with the reason; neither attempt costs an
evaluation, and both land in the ledger (notes `patch_rejected`). After a patched trial crashes,
the next step asks for one fix instead: the crashed source, its patch and the log tail, as
Karpathy's agent reads the stack trace; the fix is a new trial linked to the crashed one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from bilevel.agents import llm_researcher, prompts, researcher
from bilevel.agents.llm import LLM
from bilevel.agents.llm_researcher import Change
from bilevel.objectives import SpaceError
from bilevel.objectives.script_patch import PatchError, apply_patch, parse_patch

if TYPE_CHECKING:
    from bilevel.agents.roles import ResearchRequest
    from bilevel.contract import Candidate

MAX_SHOWN_CHARS = 24_000  # of each source file in the prompt (the rest is cut, and said so)
LOG_TAIL_LINES = 30


class CodeProposal(BaseModel):
    """One experiment: up to 3 parameter changes, a patch to the source, or both."""

    changes: list[Change] = Field(default_factory=list, max_length=3)
    patch: str = Field("", description="Search/replace edits to the source files, or '' for none.")
    hypothesis: str
    expected_direction: Literal["lower", "higher"]


@dataclass
class CodeContext:
    """What a code-edit step works on: the source the patch applies to, and what may change."""

    files: dict[str, str]  # the incumbent's source (or, for a fix, the crashed trial's)
    code: str | None  # its version (None: the user's original)
    allowed: list[str]
    repair: dict[str, Any] | None = None  # the crashed trial to fix: trial, diff, log_tail, config


def show_files(files: dict[str, str]) -> str:
    parts = []
    for name, text in files.items():
        shown = text[:MAX_SHOWN_CHARS]
        more = len(text) - len(shown)
        cut = f"\n# ... ({more} more characters not shown)" if more else ""
        parts.append(f"### {name}\n```python\n{shown}{cut}\n```")
    return "\n\n".join(parts)


def code_prompt(request: ResearchRequest, code: CodeContext) -> list[Any]:
    """The researcher's prompt with the source, the patch format, and a crash to fix if any."""
    messages = llm_researcher.build_prompt(
        request.objective, request.incumbent, request.history, request.params, request.advice
    )
    better = "lower" if request.objective.direction == "minimize" else "higher"
    first = next(iter(code.files))
    example = json.dumps(
        {
            "changes": [],
            "patch": f"{first}\n<<<<<<< SEARCH\n<exact lines now in the file>\n=======\n"
            "<the lines that replace them>\n>>>>>>> REPLACE",
            "hypothesis": f"this edit should make {request.objective.metric} {better}",
            "expected_direction": better,
        }
    )
    patch_format = prompts.PATCH_FORMAT.format(allowed=", ".join(code.allowed))
    if code.repair is None:
        task = prompts.CODE_EDIT.format(
            files=show_files(code.files), patch_format=patch_format, example=example
        )
    else:
        r = code.repair
        tail = "\n".join((r["log_tail"] or "").splitlines()[-LOG_TAIL_LINES:])
        task = prompts.CODE_FIX.format(
            trial=r["trial"],
            diff=r["diff"],
            tail=tail,
            files=show_files(code.files),
            patch_format=patch_format,
            example=example,
        )
    return [SystemMessage(prompts.CODE_SYSTEM), HumanMessage(f"{messages[1].content}\n\n{task}")]


def check_proposal(
    proposal: CodeProposal, request: ResearchRequest, code: CodeContext, tried: set[str]
) -> dict[str, Any]:
    """The proposal as a candidate (with its patched files), or PatchError / SpaceError."""
    incumbent = request.incumbent["config"]
    base = dict(incumbent)
    if code.repair is not None:  # a fix keeps the crashed trial's parameter changes
        base = {**incumbent, **code.repair["changes"]}
    has_patch = bool(proposal.patch.strip())
    if code.repair is not None and not has_patch:
        raise PatchError("a fix needs a patch: write the edits that make the crashed code run")
    # with a patch, restating a current value is no error: only real changes are checked
    asked = [c for c in proposal.changes if not has_patch or base.get(c.param) != c.value]
    changes: dict[str, Any] = {}
    if asked or not has_patch:
        changes = llm_researcher.to_changes(
            proposal.model_copy(update={"changes": asked}),  # type: ignore[arg-type]
            request.objective, base, request.params["frozen"], set() if has_patch else tried,
        )  # fmt: skip
    changes = {**{k: v for k, v in base.items() if v != incumbent[k]}, **changes}
    files = None
    if has_patch:
        files = apply_patch(code.files, parse_patch(proposal.patch), set(code.allowed))
    cand: dict[str, Any] = {"changes": changes, "source": "llm", "hypothesis": proposal.hypothesis}
    if files is not None:
        repair_of = None if code.repair is None else code.repair["trial"]
        cand["files"] = {"files": files, "base_code": code.code, "repair_of": repair_of}
    return cand


async def propose(
    llm: LLM, request: ResearchRequest, code: CodeContext
) -> tuple[list[dict[str, Any]], str | None]:
    """This step's candidate and, when the model gave nothing usable in two rounds, why.
    Each unusable reply is a note; the caller has the prior researcher propose instead."""
    messages = code_prompt(request, code)
    tried = {researcher.canonical(t["config"]) for t in request.history}

    def rejected(round_: int, exc: Exception, said: str) -> None:
        if isinstance(exc, PatchError):  # a refused patch lands in the ledger, with why
            request.notes.append(
                (
                    "patch_rejected",
                    {
                        "round": round_,
                        "reason": str(exc),
                        "patch": json.loads(said).get("patch", "") if said else "",
                        "repair_of": None if code.repair is None else code.repair["trial"],
                    },
                )
            )

    candidate, error = await llm_researcher.ask_until_usable(
        llm,
        messages,
        CodeProposal,
        "code",
        lambda proposal: check_proposal(proposal, request, code, tried),
        (SpaceError, PatchError),
        rejected,
    )
    return ([candidate] if candidate is not None else []), error


class CodeEditResearcher:
    """The Researcher interface over `propose` for --code-edits runs; a step the prior
    researcher had to take (parameters only) is noted."""

    def __init__(self, llm: LLM, label: str) -> None:
        self.llm, self.label = llm, f"{label} with code edits"

    async def propose(self, request: ResearchRequest) -> list[Candidate]:
        own, reason = await propose(self.llm, request, request.code)
        if own:
            return own  # type: ignore[return-value]
        request.notes.append(("llm_fallback", {"reason": reason}))
        params = request.params
        return researcher.propose(  # type: ignore[return-value]
            request.objective.space,
            request.incumbent["config"],
            request.history,
            params["frozen"],
            params["temperature"],
            params["candidates"],
            seed=request.seed,
            avoid=request.running,
        )
