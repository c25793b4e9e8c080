"""The first node: validate the config, claim the run directory, install the first mechanism,
evaluate the baseline."""

from __future__ import annotations

import asyncio
import copy
import os
import statistics
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from bilevel.agents import classical, meta_researcher, researcher
from bilevel.config import InnerParams, RunConfig
from bilevel.contract import Mechanism, new_mechanism
from bilevel.graphs.context import Context, context_of
from bilevel.graphs.state import Assignment, BilevelState, InputState, config_keys
from bilevel.graphs.trials import run_trial
from bilevel.objectives.jail import check_jail
from bilevel.sandbox.validation import validate_mechanism
from bilevel.store.ledger import AsyncLedger
from bilevel.store.results import write_results
from bilevel.store.rundir import claim_run_dir
from bilevel.store.sources import default_edit_files, read_edit_files, record_original


def default_mechanism() -> Mechanism:
    return new_mechanism("default", "default", "default")


def mechanism_row(
    mech: Mechanism,
    source: str,
    origin: str,
    cycle: int,
    diff: str,
    params: dict[str, Any],
    validation: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": mech["id"],
        "name": mech["name"],
        "origin": origin,
        "parent": mech["parent"],
        "cycle": cycle,
        "source": source,
        "diff": diff,
        "params": params,
        "validation": validation,
        "status": mech["status"],
        "effect": None,
    }


def labels(config: RunConfig) -> dict[str, str]:
    """What proposes and what writes mechanisms, said plainly (the CLI and the ledger show it)."""

    def llm(role: str) -> str:
        return f"llm ({config.llm.model_for(role)} via {config.llm.provider})"

    return {
        "researcher": classical.LABELS[config.spec.proposer]
        if config.spec.proposer != "researcher"
        else llm("researcher")
        if config.researcher == "llm"
        else researcher.LABEL,
        "meta": llm("meta") if config.meta == "llm" else meta_researcher.LABEL,
    }


async def install_user_mechanism(context: Context, ledger: AsyncLedger, source: str) -> Mechanism:
    """`--mechanism FILE`: validated like generated code; the default stays if it is rejected."""
    report = await validate_mechanism(await context.sandbox(), source)
    status = "installed" if report.ok else "rejected"
    mech = new_mechanism("user", "user", status, parent="default", hooks=report.hooks)
    diff = meta_researcher.diff("", source, "default", "user")
    await ledger.add_mechanism(mechanism_row(mech, source, "file", 0, diff, {}, report.to_json()))
    return mech if report.ok else default_mechanism()


async def measure_noise(
    context: Context,
    ledger: AsyncLedger,
    run_config: RunConfig,
    baseline: Assignment,
    first: dict[str, Any],
) -> tuple[float | None, float]:
    """--noise-repeats r: the baseline evaluated r more times (trials 1..r, W at a time, from the
    budget). Returns the baseline metric (their mean) and the acceptance margin k x sigma; both
    land in the ledger (meta "noise"). Without repeats: the single baseline metric and 0."""
    repeats = run_config.noise_repeats
    if repeats == 0:
        return first["metric"], 0.0
    gate = asyncio.Semaphore(run_config.parallel)

    async def one(i: int) -> dict[str, Any]:
        async with gate:
            a = {**baseline, "trial": i, "source": "baseline-repeat"}
            return await run_trial(context, ledger, run_config, a)  # type: ignore[arg-type]

    rows = [first, *await asyncio.gather(*(one(i) for i in range(1, repeats + 1)))]
    ok = [r["metric"] for r in rows if r["status"] == "ok" and r["metric"] is not None]
    mean = statistics.fmean(ok) if ok else None
    sigma = statistics.stdev(ok) if len(ok) > 1 else 0.0
    margin = run_config.noise_k * sigma
    for r in rows[1:]:
        await ledger.set_accepted(r["trial"], False, mean)
    await ledger.set_meta(
        "noise",
        {"repeats": repeats, "ok": len(ok), "mean": mean, "sigma": sigma, "margin": margin},
    )
    return mean, margin


async def setup(
    state: InputState, runtime: Runtime[Context], config: RunnableConfig
) -> BilevelState:
    context = context_of(runtime)
    fields = {k: v for k, v in state.items() if k in config_keys() and v is not None}
    run_config = RunConfig(**fields)
    thread = (config.get("configurable") or {}).get("thread_id", "default")
    # abspath reads the working directory: a blocking call, refused on a server's event loop
    run_dir = await asyncio.to_thread(
        os.path.abspath, state.get("run_dir") or os.path.join("runs", str(thread))
    )
    ledger = await context.aledger(run_dir)
    await asyncio.to_thread(claim_run_dir, ledger.sync, run_config)
    await ledger.set_meta("labels", labels(run_config))
    cfg = run_config.model_dump()
    mechanism = default_mechanism()
    await ledger.add_mechanism(
        mechanism_row(mechanism, meta_researcher.DEFAULT_SOURCE, "builtin", 0, "", {}, None)
    )
    if run_config.mechanism_source:
        mechanism = await install_user_mechanism(context, ledger, run_config.mechanism_source)
    if run_config.code_edits:  # the user's files as they are now: what every patch starts from
        options = run_config.objective_options
        names = run_config.edit_files or default_edit_files(options)
        files = await asyncio.to_thread(read_edit_files, options["workdir"], names)
        if run_config.jail_edits:  # patched trials run jailed: refuse now, not at trial 1
            await asyncio.to_thread(check_jail)
        await asyncio.to_thread(record_original, ledger.sync, files)
    context.report({"event": "setup", "run_dir": run_dir, "total": run_config.evaluations})
    defaults = context.objective(run_config).space.defaults()
    baseline: Assignment = {
        "trial": 0,
        "config": defaults,
        "changes": {},
        "source": "baseline",
        "description": "baseline",
        "base": defaults,
        "mechanism": mechanism["id"],
        "trace": 0,
        "cycle": 0,
        "iteration": 0,
    }
    partial = {"run_dir": run_dir, "config": cfg, "trace": 0, "cycle_index": 0, "iteration": 0}
    trial = await run_trial(context, ledger, run_config, baseline)
    await ledger.set_accepted(0, trial["status"] == "ok", trial["metric"])  # a crash is no keep
    metric, margin = await measure_noise(context, ledger, run_config, baseline, trial)
    await asyncio.to_thread(write_results, ledger.sync)
    point = {"config": defaults, "metric": metric, "trial": 0, "code": None}
    first = 1 + run_config.noise_repeats
    return {
        **partial,
        "next_trial": first,
        "cycle_decided": 0,
        "cycle_first_trial": first,
        "evals_left": run_config.iterations * run_config.parallel - run_config.noise_repeats,
        "noise_margin": margin,
        "inflight": [],
        "filling": False,
        "baseline": point,
        "incumbent": point,
        "cycle_start_metric": metric,
        "mechanism": mechanism,
        "previous_mechanism": None,
        "candidate_mechanism": None,
        "inner_params": InnerParams().model_dump(),
        "meta_memory": {"stats": copy.deepcopy(run_config.meta_prior)}
        if run_config.meta_prior
        else {},
        "assessment": {},
        "done": False,
    }
