"""The LLM meta-researcher: explore -> critique -> specify -> generate, as in the paper, then
repair rounds fed by the sandbox's validation errors; and the parameter-level meta (`params`).

It reads the inner loop's own source: the slot contract, the mechanism now in the slots and the
researcher's prompt, plus the cycle's assessment.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from bilevel.agents import prompts
from bilevel.agents.llm import LLM, BudgetExhausted, LLMFailure, extract_code
from bilevel.agents.meta_researcher import LibraryMeta
from bilevel.agents.roles import MetaRequest, Written
from bilevel.config import MAX_FROZEN, MIN_ACTIVE, InnerParams
from bilevel.sandbox.policy import ALLOWED_MODULES

LLM_ERRORS = (LLMFailure, BudgetExhausted, ValueError)  # ValueError: a reply without code
CONTRACT_SOURCE = (resources.files("bilevel") / "contract.py").read_text()


def context_text(current_source: str, assessment: dict[str, Any], timeout_s: float) -> str:
    return prompts.META_CONTEXT.format(
        contract=CONTRACT_SOURCE,
        current=current_source.strip() or "# (defines no hooks)",
        researcher_prompt=prompts.RESEARCHER_USER,
        assessment=json.dumps(assessment, indent=1),
        modules=", ".join(sorted(ALLOWED_MODULES)),
        timeout=timeout_s,
    )


async def generate(
    llm: LLM, current_source: str, assessment: dict[str, Any], timeout_s: float
) -> str:
    """The four calls of the paper's Level 2; returns the mechanism source."""
    history: list[Any] = [SystemMessage(prompts.META_SYSTEM)]
    steps = (
        ("explore", prompts.META_EXPLORE, "context"),
        ("critique", prompts.META_CRITIQUE, "ideas"),
        ("specify", prompts.META_SPECIFY, "critique"),
        ("generate", prompts.META_GENERATE, "spec"),
    )
    previous = context_text(current_source, assessment, timeout_s)
    for name, template, field in steps:
        history.append(HumanMessage(template.format(**{field: previous})))
        previous = await llm.text(history, f"meta:{name}")
        history.append(AIMessage(previous))
    return extract_code(previous)


async def repair(
    llm: LLM,
    source: str,
    reason: str,
    current_source: str,
    assessment: dict[str, Any],
    timeout_s: float,
) -> str:
    messages = [
        SystemMessage(prompts.META_SYSTEM),
        HumanMessage(context_text(current_source, assessment, timeout_s)),
        HumanMessage(prompts.META_REPAIR.format(reason=reason, source=source)),
    ]
    return extract_code(await llm.text(messages, "meta:repair"))


class ParamsAdvice(BaseModel):
    """The parameter-level meta's reply (the paper's Level 1.5)."""

    diagnosis: str
    strategy: Literal["explore", "exploit", "focused"]
    freeze: list[str] = Field(default_factory=list)
    unfreeze: list[str] = Field(default_factory=list)
    guidance: str = ""
    temperature: float | None = None
    candidates: int | None = None


def apply_advice(params: dict[str, Any], advice: ParamsAdvice, names: list[str]) -> dict[str, Any]:
    """Advice within the caps: known names, at most MAX_FROZEN frozen, MIN_ACTIVE left active."""
    p = InnerParams(**params)
    frozen = [n for n in p.frozen if n not in advice.unfreeze]
    for name in advice.freeze:
        if (
            name in names
            and name not in frozen
            and len(frozen) < MAX_FROZEN
            and len(names) - len(frozen) > MIN_ACTIVE
        ):
            frozen.append(name)
    p.frozen = frozen
    p.strategy = f"{advice.strategy}: {advice.guidance}".strip()[:500]
    if advice.temperature is not None:
        p.temperature = min(8.0, max(0.25, advice.temperature))
    if advice.candidates is not None:
        p.candidates = min(3, max(1, advice.candidates))
    return p.model_dump()


async def adjust_params(
    llm: LLM,
    params: dict[str, Any],
    current_source: str,
    assessment: dict[str, Any],
    names: list[str],
    timeout_s: float,
) -> dict[str, Any]:
    user = prompts.PARAMS_USER.format(
        context=context_text(current_source, assessment, timeout_s),
        params=json.dumps(params),
        names=", ".join(names),
    )
    messages = [SystemMessage(prompts.META_SYSTEM), HumanMessage(user)]
    advice = await llm.structured(messages, ParamsAdvice, "meta:params")
    return apply_advice(params, advice, names)


class LLMMeta:
    """The MetaResearcher interface over the LLM; a failed call falls back to the library (and
    is noted), a failed repair gives up the round."""

    repairs = True

    def __init__(self, llm: LLM, label: str) -> None:
        self.llm, self.label, self.library = llm, label, LibraryMeta()

    async def adjust_params(self, request: MetaRequest) -> dict[str, Any]:
        try:
            return await adjust_params(
                self.llm,
                request.inner_params,
                request.current_source,
                request.assessment,
                request.names,
                request.hook_timeout_s,
            )
        except LLM_ERRORS as exc:
            request.notes.append(("llm_fallback", {"step": "params", "reason": str(exc)}))
        return await self.library.adjust_params(request)

    async def write_mechanism(self, request: MetaRequest) -> Written | None:
        try:
            source = await generate(
                self.llm, request.current_source, request.assessment, request.hook_timeout_s
            )
            return Written("llm", source, "llm")
        except LLM_ERRORS as exc:
            request.notes.append(("llm_fallback", {"step": "generate", "reason": str(exc)}))
        return await self.library.write_mechanism(request)

    async def repair(self, request: MetaRequest, failed: str, reason: str) -> Written | None:
        try:
            source = await repair(
                self.llm,
                failed,
                reason,
                request.current_source,
                request.assessment,
                request.hook_timeout_s,
            )
        except LLM_ERRORS as exc:
            request.notes.append(("llm_fallback", {"step": "repair", "reason": str(exc)}))
            return None
        return Written("llm", source, "llm-repair")
