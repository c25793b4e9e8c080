"""Decided trials, read from the ledger once: each step decodes only the trials decided since
the last one, so the cost of a step does not grow with the run's length.

Trials with ids below `decided_before` are final (decisions are made oldest first and a row
never changes after its decision), so a cache of them is never stale; a replayed node asking
for an earlier point gets a prefix.
"""

from __future__ import annotations

import bisect
from typing import Any

from bilevel.agents.researcher import trial_key
from bilevel.store.ledger import AsyncLedger


class EvaluatedBefore:
    """`canonical(config) in this`: was the config evaluated by a trial below `before`, with
    source version code (None: the user's own source)?"""

    def __init__(self, first_seen: dict[str, int], before: int, code: str | None = None) -> None:
        self.first_seen, self.before, self.code = first_seen, before, code

    def __contains__(self, key: object) -> bool:
        if self.code is not None:
            key = f"{key}@{self.code}"  # researcher.trial_key
        first = self.first_seen.get(key)  # type: ignore[call-overload]
        return first is not None and first < self.before


class TrialHistory:
    """One run's decided trials, oldest first, per trace and over the whole run."""

    def __init__(self) -> None:
        self.loaded_before = 0  # trials 0 .. loaded_before - 1 are here
        self.by_trace: dict[int, list[dict[str, Any]]] = {}
        self.ids: dict[int, list[int]] = {}
        self.first_seen: dict[str, int] = {}  # config -> the first trial that evaluated it

    async def _load(self, ledger: AsyncLedger, before: int) -> None:
        if before <= self.loaded_before:
            return
        rows = await ledger.trials(after=self.loaded_before - 1, before=before)
        for t in rows:
            self.by_trace.setdefault(t["trace"], []).append(t)
            self.ids.setdefault(t["trace"], []).append(t["trial"])
            self.first_seen.setdefault(trial_key(t["config"], t.get("code")), t["trial"])
        self.loaded_before = before

    async def trials(
        self, ledger: AsyncLedger, trace: int, before: int, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Decided trials of trace with ids below before, the last `limit` of them."""
        await self._load(ledger, before)
        end = bisect.bisect_left(self.ids.get(trace, []), before)
        start = 0 if limit is None else max(0, end - limit)
        return self.by_trace.get(trace, [])[start:end]

    async def evaluated(
        self, ledger: AsyncLedger, config: dict[str, Any], before: int, code: str | None = None
    ) -> int | None:
        """The first trial below `before` (any trace) that evaluated exactly this config (with
        source version code)."""
        await self._load(ledger, before)
        first = self.first_seen.get(trial_key(config, code))
        return first if first is not None and first < before else None

    async def evaluated_before(
        self, ledger: AsyncLedger, before: int, code: str | None = None
    ) -> EvaluatedBefore:
        """Every config evaluated below `before` (with source version code), as a container of
        canonical keys."""
        await self._load(ledger, before)
        return EvaluatedBefore(self.first_seen, before, code)
