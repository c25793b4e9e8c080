"""The LLM researcher: one structured proposal per step, checked against the space.

An invalid proposal gets one repair round with the validation error; if that fails too, the
`prior` researcher proposes for that step, and the ledger says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from bilevel.agents import prompts, researcher
from bilevel.agents.llm import LLM, BudgetExhausted, LLMFailure, ReplyError
from bilevel.objectives import Objective, SpaceError

if TYPE_CHECKING:
    from bilevel.agents.roles import ResearchRequest
    from bilevel.contract import Candidate


class Change(BaseModel):
    param: str = Field(description="Parameter name from the search space.")
    value: float | str | bool = Field(description="Its new value.")


class Proposal(BaseModel):
    """One experiment: 1-3 parameter changes, why, and which way the metric should move."""

    changes: list[Change] = Field(min_length=1, max_length=3)
    hypothesis: str
    expected_direction: Literal["lower", "higher"]


def describe_space(objective: Objective) -> str:
    lines = []
    for p in objective.space.params:
        spec = p.to_json()
        allowed = (
            f"one of {spec['choices']}"
            if p.kind == "categorical"
            else f"[{spec['low']:g}, {spec['high']:g}]"
        )
        lines.append(f"- {p.name}: {p.kind}, {allowed}, default {p.default!r}")
    return "\n".join(lines)


def describe_history(history: list[dict[str, Any]], window: int) -> str:
    rows = []
    for t in history[-window:]:
        metric = "-" if t["metric"] is None else f"{t['metric']:.6g}"
        verdict = "kept" if t["accepted"] else "discarded"
        patch = f" + patch {t['patch']['summary']}" if t.get("patch") else ""
        rows.append(
            f"- trial {t['trial']}: {json.dumps(t['changes'])}{patch} -> {metric} "
            f"({t['status']}, {verdict})"
        )
    return "\n".join(rows) or "(none yet)"


def example_reply(
    objective: Objective, config: dict[str, Any], params: dict[str, Any], better: str
) -> str:
    """A well-formed reply with a real parameter name and a real neighbouring value: small
    models copy placeholders like "<name>" literally."""
    frozen = set(params.get("frozen") or [])
    for p in objective.space.params:
        steps = p.neighbors(config[p.name])
        if p.name not in frozen and steps:
            change = {"param": p.name, "value": steps[-1]}
            return json.dumps(
                {
                    "changes": [change],
                    "hypothesis": f"changing {p.name} should make {objective.metric} {better}",
                    "expected_direction": better,
                }
            )
    return json.dumps({"changes": [], "hypothesis": "", "expected_direction": better})


def build_prompt(
    objective: Objective,
    incumbent: dict[str, Any],
    history: list[dict[str, Any]],
    params: dict[str, Any],
    advice: str,
) -> list[Any]:
    better = "lower" if objective.direction == "minimize" else "higher"
    metric = incumbent.get("metric")
    strategy = (
        f"\nStrategy for this cycle: {params['strategy']}\n" if params.get("strategy") else ""
    )
    user = prompts.RESEARCHER_USER.format(
        objective=objective.name,
        description=objective.description,
        metric=objective.metric,
        direction=objective.direction,
        better=better,
        space=describe_space(objective),
        frozen=", ".join(params.get("frozen") or []) or "(none)",
        incumbent_metric="-" if metric is None else f"{metric:.6g}",
        incumbent=json.dumps(incumbent["config"], sort_keys=True),
        history=describe_history(history, params.get("history_window", 10)),
        strategy=strategy,
        advice=f"\nAdvice: {advice}\n" if advice else "",
        example=example_reply(objective, incumbent["config"], params, better),
    )
    return [SystemMessage(prompts.RESEARCHER_SYSTEM), HumanMessage(user)]


def to_changes(
    proposal: Proposal,
    objective: Objective,
    incumbent: dict[str, Any],
    frozen: list[str],
    tried: set[str],
) -> dict[str, Any]:
    """The proposal as a validated changes dict, or SpaceError saying what is wrong."""
    changes: dict[str, Any] = {}
    for change in proposal.changes:
        param = objective.space[change.param]  # unknown names raise SpaceError
        if change.param in frozen:
            raise SpaceError(f"{change.param} is frozen: choose another parameter")
        value = change.value
        if param.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        changes[change.param] = param.check(value)
    changes = {k: v for k, v in changes.items() if v != incumbent[k]}
    if not changes:
        raise SpaceError("the proposal changes nothing: every value equals the current one")
    if researcher.canonical({**incumbent, **changes}) in tried:
        raise SpaceError("that configuration was already tried: propose a new one")
    return changes


async def propose(
    llm: LLM,
    objective: Objective,
    incumbent: dict[str, Any],
    history: list[dict[str, Any]],
    params: dict[str, Any],
    advice: str,
    seed: str,
    avoid: Sequence[dict[str, Any]] = (),
) -> tuple[list[dict[str, Any]], str | None]:
    """Candidates for this step and, when the prior researcher had to step in, why.
    avoid: configs being evaluated now in parallel (never proposed again)."""
    messages = build_prompt(objective, incumbent, history, params, advice)
    tried = {researcher.canonical(t["config"]) for t in history}
    tried |= {researcher.canonical(c) for c in avoid}

    def use(proposal: Proposal) -> dict[str, Any]:
        changes = to_changes(proposal, objective, incumbent["config"], params["frozen"], tried)
        return {"changes": changes, "source": "llm", "hypothesis": proposal.hypothesis}

    candidate, error = await ask_until_usable(llm, messages, Proposal, "propose", use)
    if candidate is not None:
        return [candidate], None
    own = researcher.propose(
        objective.space,
        incumbent["config"],
        history,
        params["frozen"],
        params["temperature"],
        params["candidates"],
        seed=seed,
        avoid=avoid,
    )
    return own, error


async def ask_until_usable(
    llm: LLM,
    messages: list[Any],
    schema: type[BaseModel],
    label: str,
    use: Callable[[Any], dict[str, Any]],
    unusable: tuple[type[Exception], ...] = (SpaceError,),
    rejected: Callable[[int, Exception, str], None] | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    """(use(reply), None), or (None, why) when the model gave nothing usable: a reply `use`
    refuses (ReplyError or `unusable`) goes back once with the reason -- the model sees what it
    said, then why that cannot be used; `rejected(round, error, reply)` hears of each refusal.
    An exhausted budget or a failing server ends it at once."""
    error = None
    for round_ in range(2):  # the proposal, then one repair round
        reply = None
        try:
            proposal = await llm.structured(messages, schema, f"{label}:{round_}")
            reply = proposal.model_dump_json()
            return use(proposal), None
        except (BudgetExhausted, LLMFailure) as exc:
            return None, str(exc)
        except (ReplyError, *unusable) as exc:
            error = str(exc)
            said = exc.reply if isinstance(exc, ReplyError) else reply or ""
            if rejected is not None:
                rejected(round_, exc, said)
            repair = HumanMessage(prompts.REPAIR.format(error=error))
            messages = [*messages, AIMessage(said), repair]
    return None, error


class LLMResearcher:
    """The Researcher interface over `propose`; a step the prior had to take is noted."""

    def __init__(self, llm: LLM, label: str) -> None:
        self.llm, self.label = llm, label

    async def propose(self, request: ResearchRequest) -> list[Candidate]:
        own, fallback_reason = await propose(
            self.llm,
            request.objective,
            request.incumbent,
            request.history,
            request.params,
            request.advice,
            request.seed,
            request.running,
        )
        if fallback_reason is not None:  # the prior researcher proposed this step instead
            request.notes.append(("llm_fallback", {"reason": fallback_reason}))
        return own
