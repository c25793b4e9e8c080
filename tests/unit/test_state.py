from typing import get_type_hints

from bilevel.config import RunConfig
from bilevel.graphs.state import InputState


def test_input_state_carries_every_run_config_field():
    # LangGraph drops input keys that the input schema does not declare.
    assert set(RunConfig.model_fields) <= set(get_type_hints(InputState))


async def test_every_ctx_builder_gives_the_contract_keys(tmp_path):
    from bilevel.contract import CTX_KEYS, HISTORY_KEYS
    from bilevel.graphs.context import Context
    from bilevel.graphs.node_run import NodeRun
    from bilevel.objectives import make_objective
    from bilevel.sandbox.validation import synthetic_contexts
    from bilevel.store.ledger import AsyncLedger, Ledger

    for name, ctx in synthetic_contexts():
        assert set(ctx) == set(CTX_KEYS), name
        assert all(set(t) == set(HISTORY_KEYS) for t in ctx["history"]), name

    objective = make_objective("synthetic:interact")
    config = objective.space.defaults()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add_trial(
        {
            "trial": 0,
            "trace": 0,
            "cycle": 0,
            "iteration": 0,
            "config": config,
            "changes": {},
            "base": config,
            "source": "baseline",
            "description": "",
            "mechanism": "default",
            "metric": 1.0,
            "status": "ok",
            "seconds": 0.0,
            "extra": {},
            "log_tail": "",
            "accepted": True,
            "incumbent_metric": 1.0,
        }
    )
    point = {"config": config, "metric": 1.0, "trial": 0}
    state = {
        "config": {"parallel": 1, "seed": 0},
        "trace": 0,
        "next_trial": 1,
        "iteration": 0,
        "cycle_index": 0,
        "evals_left": 5,
        "inflight": [],
        "baseline": point,
        "incumbent": point,
        "inner_params": {"frozen": []},
        "mechanism": {"id": "default", "memory": {}},
    }
    ctx = await NodeRun(Context(), AsyncLedger(ledger), objective, state).ctx()
    assert set(ctx) == set(CTX_KEYS)
    assert set(ctx["history"][0]) == set(HISTORY_KEYS)
    ledger.close()
