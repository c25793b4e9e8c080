"""The LLM factory and call wrapper: ChatOpenAI against any OpenAI-compatible server.

One place for retries (tenacity: 429, 5xx, timeouts, connection errors, with backoff and jitter),
the token and money budget, the fallback model, and accounting: every request, failed or not,
becomes a row of the ledger's `llm_calls` table through the `record` callback.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from bilevel.config import LLMSettings

Record = Callable[[dict[str, Any]], Awaitable[None]]
TRANSIENT = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


class BudgetExhausted(RuntimeError):
    """The run's token or money budget is spent: LLM calls stop, the offline path takes over."""


class ReplyError(ValueError):
    """A reply that does not parse into the schema; keeps the model's own text for repair."""

    def __init__(self, message: str, reply: str) -> None:
        super().__init__(message)
        self.reply = reply


class LLMFailure(RuntimeError):
    """No usable reply after retries, the fallback model and any repair round."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def make_chat(settings: LLMSettings, model: str, base_url: str | None) -> BaseChatModel:
    """A ChatOpenAI that honours max_tokens on every server (llama.cpp ignores
    max_completion_tokens, so servers other than OpenAI's get max_tokens in the body)."""
    from langchain_openai import ChatOpenAI

    key = os.environ.get(settings.api_key_env) or "not-needed"
    openai_api = settings.provider.startswith("openai:") and base_url is None
    extra = {} if openai_api else {"extra_body": {"max_tokens": settings.max_tokens}}
    limit = {"max_tokens": settings.max_tokens} if openai_api else {}
    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=key,
        temperature=settings.temperature,
        timeout=settings.timeout_s,
        max_retries=0,
        seed=settings.seed,
        **limit,
        **extra,
    )


def extract_json(text: str) -> str:
    """The first {...} object in a reply (models wrap JSON in prose or code fences)."""
    match = re.search(r"\{.*\}", text, flags=re.S)
    if not match:
        raise ValueError("no JSON object in the reply")
    return match.group(0)


def extract_code(text: str) -> str:
    """The Python code of a reply: the longest fenced block, else the whole text."""
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, flags=re.S)
    return max(blocks, key=len).strip() + "\n" if blocks else text.strip() + "\n"


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


def usage_of(message: Any) -> Usage:
    meta = getattr(message, "usage_metadata", None) or {}
    return Usage(int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0)))


class LLM:
    """One role's model (researcher or meta) with retries, budget, fallback and accounting."""

    def __init__(
        self,
        settings: LLMSettings,
        role: str,
        chat: BaseChatModel,
        fallback: BaseChatModel | None,
        record: Record,
        spent: Callable[[], Awaitable[tuple[int, float]]],
    ) -> None:
        self.settings, self.role, self.chat, self.fallback = settings, role, chat, fallback
        self.record, self.spent = record, spent

    async def _check_budget(self) -> None:
        tokens, cost = await self.spent()
        s = self.settings
        if s.token_budget is not None and tokens >= s.token_budget:
            raise BudgetExhausted(f"token budget {s.token_budget} spent ({tokens} used)")
        if s.cost_budget_usd is not None and cost >= s.cost_budget_usd:
            raise BudgetExhausted(f"cost budget ${s.cost_budget_usd} spent (${cost:.4f} used)")

    def cost(self, usage: Usage) -> float:
        s = self.settings
        return (
            usage.input_tokens * s.price_in_per_mtok + usage.output_tokens * s.price_out_per_mtok
        ) / 1e6

    async def _request(
        self, chat: BaseChatModel, messages: list[BaseMessage], purpose: str, **bind: Any
    ) -> AIMessage:
        """One request with retries on transient faults; every attempt is recorded."""
        await self._check_budget()
        runnable = chat.bind(**bind) if bind else chat
        model = getattr(chat, "model_name", None) or type(chat).__name__
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retries + 1),
            wait=wait_random_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                start = time.perf_counter()
                try:
                    reply = await runnable.ainvoke(messages)
                except Exception as exc:
                    await self.record(
                        {
                            "purpose": purpose,
                            "model": model,
                            "outcome": "retry" if is_transient(exc) else "error",
                            "error": f"{type(exc).__name__}: {exc}"[:500],
                            "ms": (time.perf_counter() - start) * 1000,
                        }
                    )
                    raise
                usage = usage_of(reply)
                await self.record(
                    {
                        "purpose": purpose,
                        "model": model,
                        "outcome": "ok",
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                        "cost": self.cost(usage),
                        "ms": (time.perf_counter() - start) * 1000,
                    }
                )
                return reply
        raise AssertionError("unreachable")

    async def _reply(self, messages: list[BaseMessage], purpose: str, **bind: Any) -> AIMessage:
        """The model's reply, or the fallback model's when the model fails for good."""
        try:
            return await self._request(self.chat, messages, purpose, **bind)
        except BudgetExhausted:
            raise
        except Exception as exc:
            if self.fallback is None:
                raise LLMFailure(f"{type(exc).__name__}: {exc}") from exc
            try:
                return await self._request(self.fallback, messages, purpose + ":fallback", **bind)
            except BudgetExhausted:
                raise
            except Exception as again:
                raise LLMFailure(f"{type(again).__name__}: {again}") from again

    async def text(self, messages: list[BaseMessage], purpose: str) -> str:
        reply = await self._reply(messages, purpose)
        return reply.content if isinstance(reply.content, str) else json.dumps(reply.content)

    async def structured(
        self, messages: list[BaseMessage], schema: type[BaseModel], purpose: str
    ) -> BaseModel:
        """A reply parsed into schema; raises ValueError (with the reason) when it does not fit."""
        method = self.settings.method()
        if method == "json_mode":
            # llama-cpp-python honours a schema inside json_object; other servers ignore it.
            fmt = {"type": "json_object", "schema": schema.model_json_schema()}
            reply = await self._reply(messages, purpose, response_format=fmt)
            text = reply.content if isinstance(reply.content, str) else ""
        elif method == "json_schema":
            fmt = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "schema": strict_schema(schema),
                    "strict": True,
                },
            }
            reply = await self._reply(messages, purpose, response_format=fmt)
            text = reply.content if isinstance(reply.content, str) else ""
        else:
            tool = {
                "type": "function",
                "function": {
                    "name": schema.__name__,
                    "description": schema.__doc__ or schema.__name__,
                    "parameters": schema.model_json_schema(),
                },
            }
            reply = await self._reply(
                messages,
                purpose,
                tools=[tool],
                tool_choice={"type": "function", "function": {"name": schema.__name__}},
            )
            calls = reply.tool_calls
            text = json.dumps(calls[0]["args"]) if calls else str(reply.content)
        try:
            return schema.model_validate_json(extract_json(text))
        except (ValueError, ValidationError) as exc:
            raise ReplyError(
                f"reply does not fit {schema.__name__}: {short(exc)}; reply was: {text[:300]!r}",
                text,
            ) from None


def short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)


def strict_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAI strict mode wants every property required and no extra properties."""

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: fix(v) for k, v in node.items() if k not in ("default", "title")}
            if node.get("type") == "object" and "properties" in node:
                node["required"] = list(node["properties"])
                node["additionalProperties"] = False
        elif isinstance(node, list):
            node = [fix(v) for v in node]
        return node

    return fix(schema.model_json_schema())
