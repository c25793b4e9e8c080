"""bilevel-autoresearch: an outer meta-researcher loop that improves how an inner autoresearch
loop searches, by writing sandboxed search mechanisms that the inner loop calls.

Public names are imported lazily so that light submodules (the sandbox worker, the evaluator
subprocess) do not pay for LangGraph at start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
_EXPORTS = {
    "RunConfig": "bilevel.config",
    "InnerParams": "bilevel.config",
    "build_graph": "bilevel.runner",
    "run": "bilevel.runner",
    "arun": "bilevel.runner",
    "aresume": "bilevel.runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bilevel' has no attribute {name!r}")
