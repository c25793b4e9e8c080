"""What is measured: the Objective protocol, evaluation results and the registry by name."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from importlib import metadata
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


ENTRY_POINT_GROUP = "bilevel.objectives"  # a package's own objectives: name = "pkg.mod:factory"


def registered() -> dict[str, ObjectiveFactory]:
    """The built-in objectives and those packages declare in the `bilevel.objectives`
    entry-point group."""
    _load_builtins()
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _REGISTRY:
            _REGISTRY[entry.name] = _loaded(entry.name, entry.value, entry.load)
    return dict(_REGISTRY)


def _loaded(name: str, where: str, load: Callable[[], Any]) -> ObjectiveFactory:
    try:
        factory = load()
    except (ImportError, AttributeError) as exc:
        raise UnknownObjective(
            f"objective {name!r}: cannot load {where} ({exc}); is its package installed, or "
            "its module on PYTHONPATH?"
        ) from None
    if not callable(factory):
        raise UnknownObjective(f"objective {name!r}: {where} is not a callable factory")
    return factory


def user_factory(name: str) -> ObjectiveFactory | None:
    """`package.module:factory`: an objective that lives in the user's own code, imported by
    its path (the evaluation subprocesses import it the same way)."""
    module, sep, attr = name.partition(":")
    if not sep or not attr or not module.replace(".", "_").isidentifier():
        return None
    if any(name.startswith(prefix) for prefix in BUILTIN_MODULES):
        return None

    def load() -> Any:
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        return target

    return _loaded(name, name, load)


def resolve(name: str) -> ObjectiveFactory:
    """The factory of an objective name: built-in, an entry point, or `package.module:factory`.
    A `@label` suffix names one use of it (`script@nanogpt`, `script@sklearn`: two scripts in
    one batch plan, each with its own options) and does not change the factory."""
    name = name.partition("@")[0]
    # Only the module that defines name: an evaluation subprocess for a synthetic objective must
    # not pay for importing torch (tinygpt).
    _load_builtin(name)
    if name not in _REGISTRY and (factory := user_factory(name)) is not None:
        _REGISTRY[name] = factory
    factories = dict(_REGISTRY) if name in _REGISTRY else registered()
    if name not in factories:
        known = ", ".join(sorted(factories))
        raise UnknownObjective(
            f"unknown objective {name!r}: choose one of {known}, or give your own as "
            "package.module:factory"
        )
    return factories[name]


def make_objective(name: str, **options: Any) -> Objective:
    """Build an objective by name (see resolve); options (e.g. noise=0.01) go to its factory."""
    factory = resolve(name)
    try:
        return factory(**options)
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
