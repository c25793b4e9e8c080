"""What is measured: the Objective protocol, evaluation results and the registry by name."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from bilevel.objectives.space import SearchSpace

Status = Literal["ok", "crash", "timeout", "nan", "oom"]
Direction = Literal["minimize", "maximize"]


class EvalResult(BaseModel):
    """One evaluation. metric is None unless status is ok."""

    metric: float | None
    status: Status = "ok"
    seconds: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict)
    log_tail: str = ""


@runtime_checkable
class Objective(Protocol):
    name: str
    metric: str
    direction: Direction
    space: SearchSpace
    description: str
    # True when evaluate is pure, fast and cannot crash the process (safe to run inline).
    inline: bool

    async def evaluate(
        self, config: dict[str, Any], seed: int, budget: float | None = None
    ) -> EvalResult: ...


class UnknownObjective(ValueError):
    pass


ObjectiveFactory = Callable[..., Objective]
_REGISTRY: dict[str, ObjectiveFactory] = {}


def register(name: str) -> Callable[[ObjectiveFactory], ObjectiveFactory]:
    def wrap(factory: ObjectiveFactory) -> ObjectiveFactory:
        _REGISTRY[name] = factory
        return factory

    return wrap


def registered() -> dict[str, ObjectiveFactory]:
    _load_builtins()
    return dict(_REGISTRY)


def make_objective(name: str, **options: Any) -> Objective:
    """Build a registered objective; options (e.g. noise=0.01) go to its factory."""
    # Only the module that defines name: an evaluation subprocess for a synthetic objective must
    # not pay for importing torch (tinygpt).
    _load_builtin(name)
    factories = dict(_REGISTRY) if name in _REGISTRY else registered()
    if name not in factories:
        known = ", ".join(sorted(factories))
        raise UnknownObjective(f"unknown objective {name!r}: choose one of {known}")
    try:
        return factories[name](**options)
    except TypeError as exc:
        raise UnknownObjective(f"bad options for objective {name!r}: {exc}") from None


_BUILT: dict[str, Objective] = {}


def objective_for(name: str, options: dict[str, Any]) -> Objective:
    """make_objective, once per (name, options) in this process: the graph and the executors
    ask for the run's objective at every step and every trial."""
    key = json.dumps([name, options], sort_keys=True, default=str)
    if key not in _BUILT:
        _BUILT[key] = make_objective(name, **options)
    return _BUILT[key]


# Built-in objective modules by name prefix, imported late (for their @register side effects)
# so the registry has no import cycle.
BUILTIN_MODULES = {
    "synthetic:": "bilevel.objectives.synthetic",
    "suite:": "bilevel.objectives.suite",
    "tinygpt": "bilevel.objectives.tinygpt.objective",
    "script": "bilevel.objectives.script",
}


def _load_builtin(name: str) -> None:
    for prefix, module in BUILTIN_MODULES.items():
        if name.startswith(prefix):
            importlib.import_module(module)


def _load_builtins() -> None:
    for module in BUILTIN_MODULES.values():
        importlib.import_module(module)
