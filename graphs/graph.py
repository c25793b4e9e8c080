"""Compiled graphs for LangGraph Studio / `langgraph dev` (no checkpointer: the server has its own;
no context schema: the server passes no Context, and nodes build one from the run directory).

`graph` is the bilevel loop; `inner_graph` runs the inner loop alone for the whole budget (the
arms without an outer loop).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from bilevel.config import ARM_SPECS
from bilevel.graphs.context import Context
from bilevel.graphs.outer import assess, build_bilevel_graph, build_loop
from bilevel.graphs.setup import setup
from bilevel.graphs.state import BilevelState, InputState

INNER_ARMS = tuple(name for name, spec in ARM_SPECS.items() if not spec.outer)


async def setup_inner(
    state: InputState, runtime: Runtime[Context], config: RunnableConfig
) -> dict[str, Any]:
    """setup, for an arm without an outer loop; any other is refused, not silently changed."""
    arm = state.get("arm", "inner")
    if arm not in INNER_ARMS:
        raise ValueError(
            f"the inner graph runs the inner loop alone: arm {arm!r} has an outer loop; "
            f"use the bilevel graph, or one of {', '.join(INNER_ARMS)}"
        )
    return await setup({**state, "arm": arm}, runtime, config)  # type: ignore[typeddict-item]


async def assess_inner(
    state: BilevelState, runtime: Runtime[Context]
) -> Command[Literal["run_inner", "__end__"]]:
    """assess, whose route for these arms is the next cycle or the end (never meta_research)."""
    routed = await assess(state, runtime)
    return Command(update=routed.update, goto=routed.goto)


def build_inner_only(context_schema: type | None = Context) -> StateGraph:
    return build_loop(setup_inner, assess_inner, context_schema)


graph = build_bilevel_graph(context_schema=None).compile(name="bilevel")
inner_graph = build_inner_only(context_schema=None).compile(name="inner")
