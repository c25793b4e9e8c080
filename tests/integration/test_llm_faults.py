"""The LLM path end to end against a real OpenAI-compatible server on loopback.

The server (tests/openai_server.py) answers from a script: every fault a real provider shows
(429, 500, 503, a stall past the timeout, a truncated body, prose instead of JSON, empty
`choices`, valid JSON of the wrong schema) interleaved with good replies; a scripted good
mechanism that the inner loop then really calls; and a token budget that runs out mid-run.
Everything is checked from the ledger and from what the server received.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bilevel import RunConfig, arun
from bilevel.config import LLMSettings
from tests.helpers import bilevel, show_json
from tests.openai_server import (
    TRANSIENT_KINDS,
    Behaviour,
    OpenAIServer,
    empty_choices,
    ok,
    prose,
    stall,
    status,
    truncated,
    wrong_schema,
)

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.0
RETRIES = 2

# --- what the bilevel prompts ask for, and good answers --------------------------------------


def last_user(request: dict[str, Any]) -> str:
    users = [m for m in request.get("messages") or [] if m.get("role") == "user"]
    return str(users[-1].get("content") or "") if users else ""


def purpose_of(request: dict[str, Any]) -> str:
    """Which call of the bilevel loop this request is (from the prompts in agents/prompts.py)."""
    text = last_user(request)
    system = str((request.get("messages") or [{}])[0].get("content") or "")
    if system.startswith("You are an ML researcher"):
        return "repair" if "Your reply could not be used" in text else "propose"
    if "The mechanism was rejected by validation" in text:
        return "meta_repair"
    if "adjust the inner loop's own parameters" in text:
        return "params"
    for step in ("explore", "critique", "specify", "generate"):
        if re.search(rf"Step \d \({step}\)", text):
            return step
    raise AssertionError(f"unrecognised request: {text[:200]!r}")


def role_of(purpose: str) -> str:
    return "researcher" if purpose in ("propose", "repair") else "meta"


SPACE_LINE = re.compile(
    r"^- (\w+): (float|logfloat), \[([-+0-9.e]+), ([-+0-9.e]+)\], default", re.M
)


def good_proposal(request: dict[str, Any], index: int) -> dict[str, Any]:
    """A valid, untried Proposal for the researcher prompt in request: one float parameter that is
    not frozen, moved to a value spread over its range by the call index."""
    prompt = str(request["messages"][1]["content"])  # the researcher's first user message
    frozen_line = re.search(r"Do not change these frozen parameters: (.*)", prompt)
    frozen = set((frozen_line.group(1) if frozen_line else "").replace(" ", "").split(","))
    incumbent = json.loads(
        re.search(r"Current best configuration \(metric [^)]*\):\n(\{.*\})", prompt).group(1)
    )
    params = [m for m in SPACE_LINE.findall(prompt) if m[0] not in frozen]
    assert params, "the researcher prompt lists no free float parameter"
    name, kind, low, high = params[index % len(params)]
    low, high = float(low), float(high)
    frac = 0.1 + 0.8 * ((index * 0.6180339887) % 1.0)
    value = low * (high / low) ** frac if kind == "logfloat" else low + (high - low) * frac
    value = float(f"{value:.6g}")
    if value == incumbent.get(name):
        value = float(f"{(value + high) / 2:.6g}")
    return {
        "changes": [{"param": name, "value": value}],
        "hypothesis": f"moving {name} to {value} should lower the metric",
        "expected_direction": "lower",
    }


GOOD_PARAMS = {
    "diagnosis": "the researcher keeps changing one parameter at a time",
    "strategy": "explore",
    "freeze": [],
    "unfreeze": [],
    "guidance": "move lr and batch_size together",
    "temperature": 1.0,
    "candidates": 1,
}

ADVISE_MECHANISM = '''\
"""Advice only: remind the researcher to move lr and batch_size together."""


def advise(ctx):
    memory = ctx["memory"]
    memory["calls"] = memory.get("calls", 0) + 1
    return "Move lr and batch_size together (advice " + str(memory["calls"]) + ")."
'''

# propose(): one neighbouring step of the least-touched free parameter; memory counts its own
# proposals so that it walks through the parameters and through each one's neighbours.
LEAST_TOUCHED_MECHANISM = '''\
"""Least touched: propose one neighbouring step of the parameter changed least often."""

import math

STEP = 1


def touched_counts(ctx):
    counts = {}
    for trial in ctx.get("history") or []:
        for name in trial.get("changes") or {}:
            counts[name] = counts.get(name, 0) + 1
    return counts


def propose(ctx):
    memory = ctx["memory"]
    proposed = memory.get("proposed") or {}
    neighbors = ctx.get("neighbors") or {}
    frozen = ctx.get("frozen") or []
    counts = touched_counts(ctx)
    best_name = None
    best_score = math.inf
    for name in sorted(neighbors):
        if name in frozen or not neighbors[name]:
            continue
        score = counts.get(name, 0) + proposed.get(name, 0)
        if score < best_score:
            best_name = name
            best_score = score
    if best_name is None:
        return []
    values = neighbors[best_name]
    count = proposed.get(best_name, 0)
    proposed[best_name] = count + STEP
    memory["proposed"] = proposed
    memory["calls"] = memory.get("calls", 0) + 1
    return [{best_name: values[count % len(values)]}]
'''


def good_reply(request: dict[str, Any], index: int, mechanism: str) -> Any:
    purpose = purpose_of(request)
    if purpose in ("propose", "repair"):
        return good_proposal(request, index)
    if purpose == "params":
        return GOOD_PARAMS
    if purpose in ("generate", "meta_repair"):
        return f"Here is the module.\n\n```python\n{mechanism}```\n\nIt follows the contract."
    return f"{purpose}: the loop fixates on one parameter; a bandit over parameters would help."


class RoleScript:
    """Faults by role: the n-th researcher request gets researcher[n], the n-th meta request
    meta[n] (then good replies). Good replies are valid for the call that asked."""

    def __init__(self, researcher: list[str], meta: list[str], mechanism: str) -> None:
        self.plans = {"researcher": list(researcher), "meta": list(meta)}
        self.counts: Counter[str] = Counter()
        self.mechanism = mechanism
        self.log: list[tuple[int, str, str]] = []  # (request index, purpose, kind)
        self.lock = threading.Lock()

    def __call__(self, request: dict[str, Any], index: int) -> Behaviour:
        purpose = purpose_of(request)
        role = role_of(purpose)
        with self.lock:
            n = self.counts[role]
            self.counts[role] += 1
            plan = self.plans[role]
            kind = plan[n] if n < len(plan) else "ok"
            self.log.append((index, purpose, kind))
        good = good_reply(request, index, self.mechanism)
        return {
            "ok": lambda: ok(good),
            "429": lambda: status(429),
            "500": lambda: status(500),
            "503": lambda: status(503),
            "stall": lambda: stall(TIMEOUT_S + 0.75, good),
            "truncated": lambda: truncated(good),
            "prose": lambda: prose(),
            "empty": lambda: empty_choices(),
            "wrong_schema": lambda: wrong_schema(),
        }[kind]()


def good_script(mechanism: str = LEAST_TOUCHED_MECHANISM) -> RoleScript:
    return RoleScript([], [], mechanism)


# --- ledger access -----------------------------------------------------------------------------


def rows(run_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params).fetchall()]
    finally:
        db.close()


class Watcher:
    """A progress callback that snapshots the ledger at every event, read-only, from outside."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "ledger.sqlite"
        self.snapshots: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            calls, tokens = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(input_tokens + output_tokens), 0) FROM llm_calls"
            ).fetchone()
            statuses = dict(db.execute("SELECT id, status FROM mechanisms").fetchall())
        finally:
            db.close()
        self.snapshots.append({**event, "llm_calls": calls, "tokens": tokens, "status": statuses})


def config(url: str, **llm: Any) -> dict[str, Any]:
    return {
        "objective": "synthetic:interact",
        "seed": 0,
        "researcher": "llm",
        "meta": "llm",
        "llm": LLMSettings(provider=url, model="fake", **llm),
    }


# --- fault injection -------------------------------------------------------------------------

# One entry per researcher request, in order; retries and repair rounds are requests too.
RESEARCHER_FAULTS = [
    "429", "ok",  # iteration 0: rate limited, the retry succeeds -> llm
    "stall", "ok",  # iteration 1: timed out, the retry succeeds -> llm
    "truncated",  # iteration 2: a 200 with half a body: not retried -> prior
    "prose", "ok",  # iteration 3: prose, the repair round succeeds -> llm
    "wrong_schema", "prose",  # iteration 4: the repair round fails too -> prior
    "empty",  # iteration 5: choices [] -> prior
    "500", "503", "429",  # iteration 6: every retry fails -> prior
    "ok",  # iteration 7 -> llm
]  # fmt: skip
# One entry per meta-researcher request (3 meta rounds, after cycles 0, 1 and 2).
META_FAULTS = [
    "wrong_schema",  # round 1 params: wrong fields -> library params
    "500", "ok",  # explore: server error, retried
    "ok", "ok",  # critique, specify
    "prose",  # generate: prose is no code -> rejected by validation -> repair round
    "ok",  # repair: the good mechanism -> c1-llm-r1 on probation
    "ok",  # round 2 params
    "stall", "ok",  # explore: timed out, retried
    "truncated",  # critique: half a body -> library mechanism for this round
    "empty",  # round 3 params: choices [] -> library params
    "ok", "ok", "ok", "ok",  # explore .. generate -> c3-llm
]  # fmt: skip
LLM_ITERATIONS = {0, 1, 3, 7}
PRIOR_ITERATIONS = {2, 4, 5, 6}
EXPECTED_SHAPE = {
    "json_mode": lambda body, name: (
        body["response_format"]["type"] == "json_object"
        and body["response_format"]["schema"]["title"] == name
        and "tools" not in body
    ),
    "json_schema": lambda body, name: (
        body["response_format"]["type"] == "json_schema"
        and body["response_format"]["json_schema"]["name"] == name
        and body["response_format"]["json_schema"]["strict"] is True
        and "tools" not in body
    ),
    "function_calling": lambda body, name: (
        body["tools"][0]["function"]["name"] == name
        and body["tool_choice"]["function"]["name"] == name
        and "response_format" not in body
    ),
}


@pytest.mark.parametrize("method", ["json_mode", "json_schema", "function_calling"])
async def test_every_fault_is_survived_and_recorded(tmp_path: Path, method: str):
    script = RoleScript(RESEARCHER_FAULTS, META_FAULTS, ADVISE_MECHANISM)
    run_dir = tmp_path / "run"
    with OpenAIServer(script) as server:
        cfg = RunConfig(
            arm="full",
            iterations=8,
            cycle=2,
            **config(
                server.url,
                timeout_s=TIMEOUT_S,
                retries=RETRIES,
                repair_rounds=1,
                structured_output=method,
            ),
        )
        summary = await arun(cfg, run_dir)
        requests = server.chat_requests()
        assert not server.errors, server.errors
    assert summary["finished"] and summary["trials"] == summary["budget"] == 9
    assert summary["cycles"] == 4

    # The whole script was served: every fault kind, as planned.
    served = Counter(r.behaviour for r in requests)
    for kind in ("status", "stall", "truncated", "prose", "empty", "wrong_schema", "ok"):
        assert served[kind] > 0, (kind, served)
    plan = RESEARCHER_FAULTS + META_FAULTS
    assert Counter(k for _, _, k in script.log) == Counter(plan) + Counter(
        {"ok": len(script.log) - len(plan)}
    )

    # Every request the server received is one llm_calls row, with the right outcome.
    calls = rows(run_dir, "SELECT * FROM llm_calls")
    outcomes = Counter(c["outcome"] for c in calls)
    assert len(calls) == len(requests)
    assert outcomes["retry"] == sum(served[k] for k in TRANSIENT_KINDS)
    assert outcomes["error"] == served["truncated"] + served["empty"]
    assert outcomes["ok"] == served["ok"] + served["prose"] + served["wrong_schema"]
    errors = [c["error"] for c in calls if c["outcome"] == "retry"]
    planned = Counter(plan)
    for code in ("429", "500", "503"):
        assert sum(f"Error code: {code}" in e for e in errors) == planned[code], (code, errors)
    assert sum("timed out" in e for e in errors) == served["stall"] == planned["stall"]
    assert all(c["error"] for c in calls if c["outcome"] != "ok")
    assert all(c["model"] == "fake" for c in calls)
    assert Counter(c["purpose"] for c in calls)["propose:1"] == 2  # two researcher repairs
    assert Counter(c["purpose"] for c in calls)["meta:repair"] == 1

    # tenacity really retried: after each transient fault the same request came again, up to
    # retries + 1 attempts; a run of identical requests ends in a reply or in the last attempt.
    bodies = [json.dumps(r.body, sort_keys=True) for r in requests]
    runs: list[list[int]] = []
    for i, body in enumerate(bodies):
        if i and body == bodies[i - 1] and requests[i - 1].behaviour in TRANSIENT_KINDS:
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        assert len(run) <= RETRIES + 1
        assert all(requests[i].behaviour in TRANSIENT_KINDS for i in run[:-1])
        if requests[run[-1]].behaviour in TRANSIENT_KINDS:
            assert len(run) == RETRIES + 1, run  # gave up only after the last attempt
    for i, r in enumerate(requests[:-1]):
        if r.behaviour in TRANSIENT_KINDS and not any(i == run[-1] for run in runs):
            assert bodies[i + 1] == bodies[i]
    retried = [run for run in runs if len(run) > 1]
    assert len(retried) == 5  # 429, stall, 500/503/429 (researcher); 500, stall (meta)
    assert {requests[run[0]].behaviour for run in retried} == {"status", "stall"}

    # Structured calls were shaped as the method says; text calls carry no format at all.
    for r, (_, purpose, _) in zip(requests, script.log, strict=True):
        if purpose in ("propose", "repair"):
            assert EXPECTED_SHAPE[method](r.body, "Proposal"), r.body
        elif purpose == "params":
            assert EXPECTED_SHAPE[method](r.body, "ParamsAdvice"), r.body
        else:
            assert "response_format" not in r.body and "tools" not in r.body
        assert r.body["model"] == "fake" and r.body["max_tokens"] == 1024

    # The researcher fell back to the prior researcher exactly where no usable reply came.
    notes = rows(run_dir, "SELECT * FROM notes WHERE kind = 'llm_fallback'")
    research_notes = {n["iteration"]: json.loads(n["detail"])["reason"] for n in notes
                      if not n["key"].startswith("meta:")}  # fmt: skip
    assert set(research_notes) == PRIOR_ITERATIONS
    assert "does not fit Proposal" in research_notes[4]
    assert "RateLimitError" in research_notes[6] or "429" in research_notes[6]
    assert "JSONDecodeError" in research_notes[2]
    assert "IndexError" in research_notes[5]
    trials = rows(run_dir, "SELECT iteration, source, mechanism FROM trials WHERE trial > 0")
    assert [t["iteration"] for t in trials] == list(range(8))
    for t in trials:
        if t["iteration"] in LLM_ITERATIONS:
            assert t["source"] == "llm", t
        else:  # the prior researcher, unless a (library) mechanism's proposal came first
            assert t["source"] == "prior" or t["source"].startswith("mechanism:"), t
    sources = {t["source"] for t in trials}
    assert {"llm", "prior"} <= sources

    # The meta-researcher's faults: params fell back twice, one round used the library.
    meta_notes = {n["key"]: json.loads(n["detail"])["reason"] for n in notes
                  if n["key"].startswith("meta:")}  # fmt: skip
    assert set(meta_notes) == {
        "meta:1:llm_fallback:params",
        "meta:2:llm_fallback:generate",
        "meta:3:llm_fallback:params",
    }
    assert "does not fit ParamsAdvice" in meta_notes["meta:1:llm_fallback:params"]
    mechs = {m["id"]: m for m in rows(run_dir, "SELECT * FROM mechanisms")}
    assert mechs["c1-llm"]["status"] == "rejected" and mechs["c1-llm"]["origin"] == "llm"
    assert json.loads(mechs["c1-llm"]["validation"])["ok"] is False
    repaired = mechs["c1-llm-r1"]
    assert repaired["origin"] == "llm-repair" and repaired["status"] in ("adopted", "reverted")
    assert json.loads(repaired["validation"])["ok"] is True
    assert [m for m in mechs.values() if m["cycle"] == 2 and m["origin"] == "library"]
    assert mechs["c3-llm"]["origin"] == "llm" and mechs["c3-llm"]["status"] in (
        "adopted",
        "reverted",
    )
    # The repaired mechanism's advice reached the researcher's prompt in the next cycle.
    advice = rows(
        run_dir,
        "SELECT outcome, changed FROM hook_calls WHERE mechanism = 'c1-llm-r1' AND hook = 'advise'",
    )
    assert advice and all(a["outcome"] == "ok" and a["changed"] == 1 for a in advice)
    assert any("Move lr and batch_size together" in last_user(r.body) for r in requests)


# --- a scripted good mechanism -----------------------------------------------------------------


def check_good_mechanism_run(run_dir: Path, requests: list[Any]) -> None:
    assert rows(run_dir, "SELECT * FROM notes WHERE kind = 'llm_fallback'") == []
    calls = rows(run_dir, "SELECT outcome FROM llm_calls")
    assert len(calls) == len(requests) and {c["outcome"] for c in calls} == {"ok"}
    mechs = {m["id"]: m for m in rows(run_dir, "SELECT * FROM mechanisms")}
    cycles = {c["cycle"]: c for c in rows(run_dir, "SELECT * FROM cycles")}
    assert set(cycles) == {0, 1, 2}
    for cycle in (1, 2):
        mid = f"c{cycle}-llm"
        m = mechs[mid]
        assert m["origin"] == "llm" and m["name"] == "llm"
        assert m["source"] == LEAST_TOUCHED_MECHANISM
        validation = json.loads(m["validation"])
        assert validation["ok"] is True and validation["hooks"] == ["propose"]
        # This script's run is deterministic: both improve on the cycle before, so both adopted.
        assert m["status"] == "adopted"
        verb = "adopt"
        assert cycles[cycle]["mechanism"] == mid
        assert cycles[cycle]["decision"].startswith(f"{verb} {mid}:")
        assert json.loads(m["effect"])["cycle"] == cycle
        # The inner loop really called it on its turn of its probation cycle (the other turn is
        # its parent's: the LLM researcher under the default, then c1-llm), and it changed
        # what ran.
        hooks = rows(
            run_dir,
            "SELECT hook, outcome, changed, cycle FROM hook_calls "
            "WHERE mechanism = ? AND cycle = ?",
            (mid, cycle),
        )
        assert len(hooks) == 1
        assert all(h == {**h, "hook": "propose", "outcome": "ok", "changed": 1} for h in hooks)
        trials = rows(run_dir, "SELECT source FROM trials WHERE cycle = ?", (cycle,))
        parent = "llm" if cycle == 1 else "mechanism:c1-llm"
        assert [t["source"] for t in trials] == [f"mechanism:{mid}", parent]
    first = rows(run_dir, "SELECT source FROM trials WHERE cycle = 0 AND trial > 0")
    assert [t["source"] for t in first] == ["llm", "llm"]


async def test_scripted_good_mechanism_is_validated_called_and_judged(tmp_path: Path):
    run_dir = tmp_path / "run"
    watcher = Watcher(run_dir)
    with OpenAIServer(good_script()) as server:
        cfg = RunConfig(arm="mechanism", iterations=6, cycle=2, **config(server.url, timeout_s=10))
        summary = await arun(cfg, run_dir, progress=watcher)
        requests = server.chat_requests()
        assert not server.errors, server.errors
    assert summary["finished"] and summary["trials"] == summary["budget"] == 7
    check_good_mechanism_run(run_dir, requests)
    # json_mode is what `auto` picks for a URL provider.
    assert all(
        r.body["response_format"]["type"] == "json_object"
        for r in requests
        if purpose_of(r.body) in ("propose", "params")
    )
    # On probation during its cycle, judged after it.
    during = [s["status"].get("c1-llm") for s in watcher.snapshots if s.get("cycle") == 1
              and s["event"] == "iteration"]  # fmt: skip
    assert during and set(during) == {"probation"}
    final = rows(run_dir, "SELECT status FROM mechanisms WHERE id = 'c1-llm'")[0]["status"]
    assert watcher.snapshots[-1]["status"]["c1-llm"] == final


def test_scripted_good_mechanism_through_the_cli(tmp_path: Path):
    run_dir = tmp_path / "cli"
    with OpenAIServer(good_script()) as server:
        bilevel(
            "run",
            "--llm",
            server.url,
            "--llm-model",
            "fake",
            "--arm",
            "mechanism",
            "--objective",
            "synthetic:interact",
            "--iterations",
            "6",
            "--cycle",
            "2",
            "--run-dir",
            str(run_dir),
            timeout=120,
        )
        requests = server.chat_requests()
        assert not server.errors, server.errors
    summary = show_json(run_dir)
    assert summary["finished"] and summary["trials"] == summary["budget"] == 7
    assert summary["researcher"] == "llm" and summary["meta"] == "llm"
    listed = {m["id"]: m for m in summary["mechanisms"]}
    for mid, calls in (("c1-llm", 2), ("c2-llm", 1)):  # c1-llm: its turn, then its parent's
        assert listed[mid]["origin"] == "llm"
        assert listed[mid]["hook_calls"] == {"propose": calls}
        assert listed[mid]["failed_calls"] == 0
    check_good_mechanism_run(run_dir, requests)


# --- token budget ------------------------------------------------------------------------------

PER_CALL = (40, 20)  # the usage block every reply reports: 60 tokens a call
BUDGET = 200


async def test_token_budget_stops_llm_calls_and_the_offline_path_takes_over(tmp_path: Path):
    run_dir = tmp_path / "run"
    watcher = Watcher(run_dir)
    with OpenAIServer(good_script(ADVISE_MECHANISM), usage=PER_CALL) as server:
        cfg = RunConfig(
            arm="full",
            iterations=8,
            cycle=2,
            **config(server.url, timeout_s=10, token_budget=BUDGET),
        )
        summary = await arun(cfg, run_dir, progress=watcher)
        requests = server.chat_requests()
        assert not server.errors, server.errors
    assert summary["finished"] and summary["trials"] == summary["budget"] == 9

    # Calls go on while under budget: the one that crosses it is the last one.
    calls = rows(run_dir, "SELECT * FROM llm_calls ORDER BY rowid")
    per_call = sum(PER_CALL)
    expected = math.ceil(BUDGET / per_call)  # 4 calls: 180 tokens < 200, then 240
    assert len(calls) == len(requests) == expected
    assert all(c["outcome"] == "ok" for c in calls)
    assert [(c["input_tokens"], c["output_tokens"]) for c in calls] == [PER_CALL] * expected
    assert [purpose_of(r.body) for r in requests] == ["propose", "propose", "params", "explore"]
    # The number of llm_calls rows stops growing once the budget is spent.
    counts = [s["llm_calls"] for s in watcher.snapshots]
    spent_at = next(i for i, s in enumerate(watcher.snapshots) if s["tokens"] >= BUDGET)
    assert set(counts[spent_at:]) == {expected} and len(counts) - spent_at > 10

    # Every step after that fell back, saying why; the prior researcher and library took over.
    notes = rows(run_dir, "SELECT * FROM notes WHERE kind = 'llm_fallback'")
    reasons = {n["key"]: json.loads(n["detail"])["reason"] for n in notes}
    assert all(f"token budget {BUDGET} spent" in r for r in reasons.values()), reasons
    research = sorted(n["iteration"] for n in notes if not n["key"].startswith("meta:"))
    assert research == list(range(2, 8))
    assert {k for k in reasons if k.startswith("meta:")} == {
        "meta:1:llm_fallback:generate",  # critique hit the budget mid-way through the 4 steps
        "meta:2:llm_fallback:params",
        "meta:2:llm_fallback:generate",
        "meta:3:llm_fallback:params",
        "meta:3:llm_fallback:generate",
    }
    trials = rows(run_dir, "SELECT iteration, source FROM trials WHERE trial > 0")
    assert [t["source"] for t in trials[:2]] == ["llm", "llm"]
    assert all(t["source"] == "prior" or t["source"].startswith("mechanism:") for t in trials[2:])
    assert "prior" in {t["source"] for t in trials[2:]}
    library = rows(run_dir, "SELECT id FROM mechanisms WHERE origin = 'library'")
    assert len(library) == 3  # one per meta round, none from the LLM
    assert rows(run_dir, "SELECT id FROM mechanisms WHERE origin LIKE 'llm%'") == []


def test_server_replies_look_like_openai(tmp_path: Path):
    """The server itself, through the real openai client: content, tool calls, models, errors."""
    import openai

    def script(request: dict[str, Any], index: int) -> Behaviour:
        return [ok("hello"), ok({"a": 1}), status(429), prose("plain words")][index]

    with OpenAIServer(script, usage=(7, 3)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=5)
        assert [m.id for m in client.models.list()] == ["fake"]
        reply = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.object == "chat.completion" and reply.choices[0].message.content == "hello"
        assert reply.choices[0].finish_reason == "stop"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 3)
        assert reply.usage.total_tokens == 10
        tool = {"type": "function", "function": {"name": "F", "parameters": {"type": "object"}}}
        reply = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "hi"}], tools=[tool]
        )
        call = reply.choices[0].message.tool_calls[0]
        assert call.function.name == "F" and json.loads(call.function.arguments) == {"a": 1}
        assert reply.choices[0].finish_reason == "tool_calls"
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": "x"}]
            )
        reply = client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "hi"}], tools=[tool]
        )
        assert reply.choices[0].message.content == "plain words"
        assert not reply.choices[0].message.tool_calls
    assert [r.behaviour for r in server.chat_requests()] == ["ok", "ok", "status", "prose"]
