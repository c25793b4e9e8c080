"""The LLM layer with fake chat models: prompts, parsing, repair rounds, fallbacks, budget."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ValidationError

from bilevel.agents import llm_meta, llm_researcher
from bilevel.agents.llm import LLM, BudgetExhausted, LLMFailure, extract_code, strict_schema
from bilevel.config import InnerParams, LLMSettings
from bilevel.objectives import make_objective

OBJ = make_objective("synthetic:late-lever")
INCUMBENT = {"config": OBJ.space.defaults(), "metric": 1.0375, "trial": 0}
PARAMS = InnerParams(history_window=2, strategy="explore the batch size").model_dump()


class ScriptedChat(GenericFakeChatModel):
    """A fake chat model that replays a script and records what it was sent and bound with."""

    sent: list[Any] = []
    bound: list[dict[str, Any]] = []

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.sent.append(messages)
        self.bound.append(kwargs)
        item = next(self.messages)
        if isinstance(item, Exception):
            raise item
        message = (
            item
            if isinstance(item, AIMessage)
            else AIMessage(
                item, usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
            )
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def chat(*script: Any) -> ScriptedChat:
    return ScriptedChat(messages=iter(script), sent=[], bound=[])


def make_llm(
    primary: ScriptedChat, fallback: ScriptedChat | None = None, **settings: Any
) -> tuple[LLM, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []

    async def record(row: dict[str, Any]) -> None:
        rows.append(row)

    async def spent() -> tuple[int, float]:
        tokens = sum(r.get("input_tokens", 0) + r.get("output_tokens", 0) for r in rows)
        return tokens, 0.0

    s = LLMSettings(provider="http://127.0.0.1:1/v1", retries=2, **settings)
    return LLM(s, "researcher", primary, fallback, record, spent), rows


def proposal(**changes: Any) -> str:
    return json.dumps(
        {
            "changes": [{"param": k, "value": v} for k, v in changes.items()],
            "hypothesis": "h",
            "expected_direction": "lower",
        }
    )


HISTORY = [
    {
        "trial": i,
        "config": {**INCUMBENT["config"], "lr": 0.001 * (i + 1)},
        "changes": {"lr": 0.001 * (i + 1)},
        "metric": 1.0 + i,
        "status": "ok",
        "accepted": False,
    }
    for i in range(4)
]


def test_prompt_shows_the_space_the_window_advice_and_a_real_example():
    messages = llm_researcher.build_prompt(OBJ, INCUMBENT, HISTORY, PARAMS, "try batch_size")
    text = messages[1].content
    assert "synthetic:late-lever" in text and "batch_size: int, [8, 1024], default 512" in text
    assert "trial 3" in text and "trial 2" in text and "trial 1" not in text  # window of 2
    assert "Advice: try batch_size" in text and "explore the batch size" in text
    example = json.loads(text.rsplit("\n", 1)[-1])
    assert example["changes"][0]["param"] in OBJ.space.names


async def test_valid_proposal_becomes_an_llm_candidate():
    llm, rows = make_llm(chat(proposal(batch_size=256)))
    out, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "s")
    assert why is None and out == [
        {"changes": {"batch_size": 256}, "source": "llm", "hypothesis": "h"}
    ]
    assert rows[0]["outcome"] == "ok" and rows[0]["input_tokens"] == 10


async def test_invalid_proposal_is_repaired_once_with_the_error():
    primary = chat(proposal(batch_size=99999), "```json\n" + proposal(batch_size=128) + "\n```")
    llm, _ = make_llm(primary)
    out, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "s")
    assert why is None and out[0]["changes"] == {"batch_size": 128}
    repair_prompt = primary.sent[1][-1].content
    assert "batch_size=99999 is out of range" in repair_prompt


@pytest.mark.parametrize(
    "reply",
    [
        "I think you should lower the learning rate.",  # prose
        '{"changes": [{"param": "lr", "value": 0.0015',  # truncated
        '{"change": "lr"}',  # wrong schema
        proposal(nope=1),  # unknown parameter
    ],
)
async def test_twice_unusable_falls_back_to_the_prior_researcher(reply):
    primary = chat(reply, reply)
    llm, _ = make_llm(primary)
    out, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "seed")
    assert why and out and out[0]["source"] == "prior"
    said = primary.sent[1][-2].content  # the repair round shows the model its own reply
    assert said == reply or json.loads(said)["changes"] == json.loads(reply)["changes"]


async def test_frozen_and_repeated_proposals_are_refused():
    params = {**PARAMS, "frozen": ["lr"]}
    llm, _ = make_llm(chat(proposal(lr=0.006), proposal(lr=0.006)))
    _, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], params, "", "s")
    assert "frozen" in why
    tried = [{**HISTORY[0], "config": {**INCUMBENT["config"], "batch_size": 256}}]
    llm, _ = make_llm(chat(proposal(batch_size=256), proposal(batch_size=256)))
    _, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, tried, PARAMS, "", "s")
    assert "already tried" in why


def rate_limited() -> openai.RateLimitError:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    return openai.RateLimitError(
        "slow down", response=httpx.Response(429, request=request), body=None
    )


async def test_transient_errors_are_retried_and_recorded():
    llm, rows = make_llm(chat(rate_limited(), rate_limited(), proposal(batch_size=256)))
    out, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "s")
    assert why is None and out[0]["source"] == "llm"
    assert [r["outcome"] for r in rows] == ["retry", "retry", "ok"]


async def test_persistent_failure_uses_the_fallback_model_then_the_prior():
    bad = ValueError("server exploded")
    llm, rows = make_llm(chat(bad), fallback=chat(proposal(batch_size=256)))
    out, _ = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "s")
    assert out[0]["source"] == "llm" and rows[-1]["purpose"].endswith(":fallback")
    llm, _ = make_llm(chat(bad), fallback=chat(bad))
    with pytest.raises(LLMFailure):
        await llm.text([], "x")


async def test_budget_stops_calls_cleanly():
    primary = chat(proposal(batch_size=256), proposal(batch_size=128))
    llm, rows = make_llm(primary, token_budget=15)
    await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "s")  # spends 15 tokens
    with pytest.raises(BudgetExhausted):
        await llm.text([], "after")
    out, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "s")
    assert "budget" in why and out[0]["source"] == "prior" and len(rows) == 1


@pytest.mark.parametrize("method", ["json_mode", "json_schema", "function_calling"])
async def test_each_structured_output_method_is_sent_and_parsed(method):
    reply = (
        AIMessage(
            "",
            tool_calls=[
                {"name": "Proposal", "id": "1", "args": json.loads(proposal(batch_size=256))}
            ],
        )
        if method == "function_calling"
        else proposal(batch_size=256)
    )
    primary = chat(reply)
    llm, _ = make_llm(primary, structured_output=method)
    out, why = await llm_researcher.propose(llm, OBJ, INCUMBENT, [], PARAMS, "", "s")
    assert why is None and out[0]["changes"] == {"batch_size": 256}
    bound = primary.bound[0]
    if method == "function_calling":
        assert bound["tools"][0]["function"]["name"] == "Proposal"
    else:
        assert bound["response_format"]["type"] == (
            "json_object" if method == "json_mode" else "json_schema"
        )


def test_strict_schema_requires_everything_and_forbids_extras():
    schema = strict_schema(llm_researcher.Proposal)
    assert schema["required"] == ["changes", "hypothesis", "expected_direction"]
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Change"]["additionalProperties"] is False


async def test_meta_runs_four_steps_and_extracts_the_code():
    code = "def advise(ctx):\n    return 'x'\n"
    primary = chat("ideas", "critique", "spec", f"Here:\n```python\n{code}```\nDone.")
    llm, rows = make_llm(primary)
    source = await llm_meta.generate(llm, "", {"accepted": 0}, 1.0)
    assert source == code
    assert [r["purpose"] for r in rows] == [
        "meta:explore",
        "meta:critique",
        "meta:specify",
        "meta:generate",
    ]
    assert "def check_result" in primary.sent[0][1].content  # it reads the slot contract
    fixed = await llm_meta.repair(
        make_llm(chat("```python\nX = 1\n```"))[0], code, "bad", "", {}, 1.0
    )
    assert fixed == "X = 1\n"
    assert extract_code("no fences") == "no fences\n"


def test_params_advice_is_applied_within_the_caps():
    names = [f"p{i}" for i in range(6)]
    advice = llm_meta.ParamsAdvice(
        diagnosis="d",
        strategy="explore",
        freeze=names + ["zz"],
        guidance="go wide",
        temperature=99,
        candidates=9,
    )
    params = llm_meta.apply_advice(InnerParams().model_dump(), advice, names)
    assert params["frozen"] == ["p0", "p1"]  # 6 names, at least 4 stay active
    assert params["temperature"] == 8.0 and params["candidates"] == 3
    assert params["strategy"] == "explore: go wide"


def test_llm_settings_parse_and_refuse_clearly():
    assert LLMSettings(provider="openai:gpt-4o-mini").method() == "json_schema"
    assert LLMSettings(provider="http://localhost:8000/v1").method() == "json_mode"
    assert LLMSettings(provider="openai:gpt-4o-mini").model_for("meta") == "gpt-4o-mini"
    assert LLMSettings(provider="local", meta_model="m").model_for("meta") == "m"
    with pytest.raises(ValidationError, match="not one of"):
        LLMSettings(provider="gpt4")
