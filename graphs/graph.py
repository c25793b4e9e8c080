"""Compiled graphs for LangGraph Studio / `langgraph dev` (no checkpointer: the server has its own).

`graph` is the bilevel loop; `inner_graph` runs the baseline and one inner cycle on its own.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from bilevel.graphs.context import Context
from bilevel.graphs.inner import build_inner_graph
from bilevel.graphs.outer import build_bilevel_graph
from bilevel.graphs.setup import setup
from bilevel.graphs.state import BilevelState, InputState, OutputState


def build_inner_only() -> StateGraph:
    builder = StateGraph(
        BilevelState, input_schema=InputState, output_schema=OutputState, context_schema=Context
    )
    builder.add_node("setup", setup)
    builder.add_node("run_inner", build_inner_graph().compile())
    builder.add_edge(START, "setup")
    builder.add_edge("setup", "run_inner")
    builder.add_edge("run_inner", END)
    return builder


graph = build_bilevel_graph().compile(name="bilevel")
inner_graph = build_inner_only().compile(name="inner")
