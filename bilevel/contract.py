"""The mechanism-slot contract: the one interface between the inner and the outer loop.

A mechanism is a Python source module defining any subset of five hooks. Hooks take and
return plain JSON data. A hook that is not defined, or whose call fails, uses the default
below, which together reproduce the standard inner loop.

| slot      | hook                       | returns                                       |
|-----------|----------------------------|-----------------------------------------------|
| tool      | propose(ctx)               | list of partial configs (dicts) to evaluate   |
| tool      | advise(ctx)                | text appended to the researcher's prompt      |
| selection | review(candidate, ctx)     | adjusted candidate, or None to veto it        |
| selection | select(candidates, ctx)    | indices of candidates to evaluate now         |
| selection | accept(trial, ctx)         | True to keep the trial as incumbent           |

The shapes are the TypedDicts below (Ctx, Candidate, TrialView, HistoryEntry); `build_ctx` is
the one place a ctx is made, for the inner loop and for validation alike. In ctx: `neighbors`
are canonical steps from the incumbent's value (/2 and x2 for floats, -1, +1, /2 and x2 for ints,
the other choices for categoricals; clipped to the space, current value excluded); `noise_margin`
is how much better than the incumbent a trial must be to count (k x the noise sigma measured on
repeated baseline evaluations, 0.0 unless the run asks for it); `memory` is a JSON dict private
to the mechanism: mutate it in place and the change is kept for the next call.

The candidates that propose returns come before the researcher's own, so with ctx["picks"] = 1 the
default select evaluates the mechanism's first proposal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import TypedDict  # pydantic (Studio's schemas) needs it on 3.11

if TYPE_CHECKING:  # the sandbox worker imports this module: no pydantic at its start-up
    from bilevel.objectives.space import SearchSpace

SLOTS: dict[str, tuple[str, ...]] = {
    "tool": ("propose", "advise"),
    "selection": ("review", "select", "accept"),
}
HOOKS: dict[str, tuple[str, ...]] = {
    "propose": ("ctx",),
    "advise": ("ctx",),
    "review": ("candidate", "ctx"),
    "select": ("candidates", "ctx"),
    "accept": ("trial", "ctx"),
}
Direction = Literal["minimize", "maximize"]
TrialStatus = Literal["ok", "crash", "timeout", "nan", "oom"]


class MetricPoint(TypedDict):
    """A config and its metric (the baseline, the incumbent)."""

    config: dict[str, Any]
    metric: float | None


class PatchView(TypedDict):
    """What a code edit (`--code-edits`) did: e.g. summary "train.py +3 -1", lines 4 (added and
    removed), repair_of: the crashed trial it fixes (None: a new idea)."""

    summary: str
    lines: int
    repair_of: int | None


class Candidate(TypedDict):
    """A proposal: the changes to the incumbent's config, who proposed it, and why. A code
    edit's candidate also has "patch" (a PatchView, plus the version's references): `review`
    may drop it (keeping the changes)
    or veto the candidate, but cannot change or add one: returned unchanged, it stays."""

    changes: dict[str, Any]
    source: str
    hypothesis: str


class TrialView(TypedDict):
    """A trial as `accept` sees it."""

    trial: int
    config: dict[str, Any]
    changes: dict[str, Any]
    metric: float | None
    status: TrialStatus


class HistoryEntry(TrialView):
    """A decided trial in ctx["history"]; a trial that ran a code edit also has "patch"
    (a PatchView)."""

    accepted: bool
    source: str


class Ctx(TypedDict):
    """What every hook receives as ctx."""

    iteration: int
    cycle: int
    evaluations_left: int
    picks: int  # how many candidates select may choose now (parallel evaluations free)
    seed: int
    direction: Direction
    space: dict[str, dict[str, Any]]  # {name: {type, default, low/high | choices}}
    baseline: MetricPoint
    incumbent: MetricPoint
    history: list[HistoryEntry]  # oldest first
    frozen: list[str]  # parameters the researcher must not change
    neighbors: dict[str, list[Any]]
    noise_margin: float
    memory: dict[str, Any]


CTX_KEYS = tuple(Ctx.__annotations__)
HISTORY_KEYS = tuple(HistoryEntry.__annotations__)  # TrialView's keys, then its own


def history_entry(trial: dict[str, Any]) -> HistoryEntry:
    """A ledger trial row (decoded) as ctx["history"] shows it."""
    entry = {k: trial[k] for k in HISTORY_KEYS}
    entry["accepted"] = bool(entry["accepted"])
    if trial.get("patch"):
        entry["patch"] = patch_view(trial["patch"])
    return entry  # type: ignore[return-value]


def patch_view(patch: dict[str, Any]) -> PatchView:
    """A patch record (bilevel/store/sources.py) as hooks see it."""
    return {"summary": patch["summary"], "lines": patch["lines"], "repair_of": patch["repair_of"]}


def build_ctx(
    *,
    space: SearchSpace,
    iteration: int,
    cycle: int,
    evaluations_left: int,
    picks: int,
    seed: int,
    direction: Direction,
    baseline: MetricPoint,
    incumbent: MetricPoint,
    history: list[HistoryEntry],
    frozen: list[str],
    noise_margin: float,
    memory: dict[str, Any] | None = None,
) -> Ctx:
    """The ctx of one hook call (the only place one is built)."""
    return {
        "iteration": iteration,
        "cycle": cycle,
        "evaluations_left": evaluations_left,
        "picks": picks,
        "seed": seed,
        "direction": direction,
        "space": space.to_json(),
        "baseline": {"config": baseline["config"], "metric": baseline["metric"]},
        "incumbent": {"config": incumbent["config"], "metric": incumbent["metric"]},
        "history": history,
        "frozen": list(frozen),
        "neighbors": space.neighbors(incumbent["config"]),
        "noise_margin": noise_margin,
        "memory": {} if memory is None else memory,
    }


# --- mechanism records -------------------------------------------------------------------

MechanismStatus = Literal[
    "default", "installed", "candidate", "validated", "rejected", "probation", "declined",
    "adopted", "reverted",
]  # fmt: skip
# Who may become what: the built-in default never changes; a user's file is installed or
# rejected by validation; a meta-researcher's candidate is validated or rejected, a validated one
# goes on probation (or is declined by a person with --approve), and a probation ends adopted or
# reverted.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "default": (),
    "installed": (),
    "candidate": ("validated", "rejected"),
    "validated": ("probation", "declined"),
    "probation": ("adopted", "reverted"),
    "adopted": (),
    "rejected": (),
    "declined": (),
    "reverted": (),
}


class Mechanism(TypedDict):
    """A mechanism by reference: its source is the ledger's `mechanisms` row of this id and its
    memory the ledger blob `memory_ref` (None: empty), so checkpoints never copy either."""

    id: str
    name: str
    hooks: list[str]  # hooks the source defines (from validation)
    memory_ref: str | None
    parent: str | None
    status: MechanismStatus


def new_mechanism(
    mech_id: str,
    name: str,
    status: MechanismStatus,
    parent: str | None = None,
    hooks: list[str] | None = None,
) -> Mechanism:
    """A mechanism record (the only place one is built)."""
    return {
        "id": mech_id,
        "name": name,
        "hooks": list(hooks or []),
        "memory_ref": None,
        "parent": parent,
        "status": status,
    }


def with_status(mech: Mechanism, status: MechanismStatus) -> Mechanism:
    """mech moved to status; raises ValueError on a transition the lifecycle does not allow."""
    if status not in TRANSITIONS[mech["status"]]:
        raise ValueError(f"mechanism {mech['id']}: {mech['status']} -> {status} is not allowed")
    return {**mech, "status": status}


MAX_PROPOSALS = 16
MAX_ADVICE_CHARS = 2000


class HookTypeError(TypeError):
    """A hook returned something the contract does not allow."""


def better(a: float | None, b: float | None, direction: str) -> bool:
    """Is metric a strictly better than b? None and NaN are never better."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return True
    return a < b if direction == "minimize" else a > b


# --- the defaults: the standard inner loop -------------------------------------------------


def default_propose(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    return []


def default_advise(ctx: dict[str, Any]) -> str:
    return ""


def default_review(candidate: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any] | None:
    return candidate


def default_select(candidates: list[dict[str, Any]], ctx: dict[str, Any]) -> list[int]:
    return list(range(min(len(candidates), max(1, ctx.get("picks", 1)))))


def default_accept(trial: dict[str, Any], ctx: dict[str, Any]) -> bool:
    """Strictly better than the incumbent, by more than the noise margin when there is one."""
    metric = trial.get("metric")
    if trial.get("status") != "ok" or metric is None:
        return False
    margin = ctx.get("noise_margin") or 0.0
    # a minimised metric must beat the incumbent by margin: judge metric + margin
    shifted = metric + margin if ctx["direction"] == "minimize" else metric - margin
    return better(shifted, ctx["incumbent"].get("metric"), ctx["direction"])


DEFAULTS = {
    "propose": default_propose,
    "advise": default_advise,
    "review": default_review,
    "select": default_select,
    "accept": default_accept,
}


def call_default(hook: str, args: list[Any]) -> Any:
    return DEFAULTS[hook](*args)


# --- result checking ---------------------------------------------------------------------


def _is_json_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


MAX_DEPTH = 32  # nesting a result or memory may have
MAX_INT = 2**63 - 1  # what the checkpoint serializer (msgpack) can store
# Byte budgets, enforced in the sandbox worker before anything reaches the host: memory goes
# into graph state (by content hash) and every hook result may reach the ledger.
MAX_MEMORY_BYTES = 64 * 1024
MAX_VALUE_BYTES = 64 * 1024
MAX_ITEMS = 20_000  # JSON values (scalars, lists, dicts) in one result or memory


def check_plain(value: Any, depth: int = 0, budget: list[int] | None = None) -> None:
    """Raise HookTypeError unless value is JSON data the checkpointer and the ledger can store:
    64-bit ints, finite floats, UTF-8-encodable strings, no deeper than MAX_DEPTH, at most
    MAX_ITEMS values in all (so the host's work on one result is bounded)."""
    budget = [MAX_ITEMS] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise HookTypeError(f"result holds more than {MAX_ITEMS} values")
    if depth > MAX_DEPTH:
        raise HookTypeError(f"result nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise HookTypeError("integer beyond 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise HookTypeError("non-finite float")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise HookTypeError("string that is not valid UTF-8") from None
    elif isinstance(value, list):
        for item in value:
            check_plain(item, depth + 1, budget)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_plain(key, depth + 1, budget)
            check_plain(item, depth + 1, budget)
    else:
        raise HookTypeError(f"{type(value).__name__} is not JSON data")


def check_result(hook: str, value: Any, args: list[Any]) -> Any:
    """Return value if it is a valid result for hook called with args, else raise HookTypeError."""
    ctx = args[-1]
    if hook == "propose":
        if not isinstance(value, list) or len(value) > MAX_PROPOSALS:
            raise HookTypeError(f"propose must return a list of at most {MAX_PROPOSALS} dicts")
        for item in value:
            if not isinstance(item, dict) or not item:
                raise HookTypeError("propose must return non-empty dicts of parameter changes")
            if not all(isinstance(k, str) and _is_json_scalar(v) for k, v in item.items()):
                raise HookTypeError("propose dicts must map parameter names to JSON scalars")
        return value
    if hook == "advise":
        if not isinstance(value, str):
            raise HookTypeError("advise must return a string")
        return value[:MAX_ADVICE_CHARS]
    if hook == "review":
        if value is None:
            return None
        changes = value.get("changes") if isinstance(value, dict) else None
        if not isinstance(changes, dict) or not changes:
            raise HookTypeError("review must return None or a candidate dict with 'changes'")
        if not all(isinstance(k, str) and _is_json_scalar(v) for k, v in changes.items()):
            raise HookTypeError("review changes must map parameter names to JSON scalars")
        return {**args[0], "changes": changes}  # only the changes: source stays the proposer's
    if hook == "select":
        n = len(args[0])
        if not isinstance(value, list) or not value:
            raise HookTypeError("select must return a non-empty list of indices")
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in value):
            raise HookTypeError(f"select indices must be integers in [0, {n})")
        if len(set(value)) != len(value) or len(value) > max(1, ctx.get("picks", 1)):
            raise HookTypeError("select must return distinct indices, no more than ctx['picks']")
        return value
    if hook == "accept":
        if not isinstance(value, bool):
            raise HookTypeError("accept must return True or False")
        if value and args[0].get("status") != "ok":
            raise HookTypeError("accept cannot keep a trial whose status is not ok")
        return value
    raise HookTypeError(f"unknown hook {hook!r}")
