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
    "graph_config": "bilevel.runner",
    "Context": "bilevel.graphs.context",
}
__all__ = sorted(_EXPORTS)


def lazy_exports(package: str, exports: dict[str, str]) -> Any:
    """A module `__getattr__` that imports each public name from its module on first use."""

    def getattr_(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return getattr_


__getattr__ = lazy_exports("bilevel", _EXPORTS)
