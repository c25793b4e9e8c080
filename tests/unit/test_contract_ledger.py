import pytest

from bilevel.contract import HookTypeError, better, check_plain, check_result
from bilevel.store.ledger import Ledger

CTX = {"picks": 2, "direction": "minimize", "incumbent": {"metric": 1.0}}


def test_better_respects_direction_and_missing_values():
    assert better(0.5, 1.0, "minimize") and better(2.0, 1.0, "maximize")
    assert not better(None, 1.0, "minimize") and not better(float("nan"), 1.0, "minimize")
    assert better(3.0, None, "minimize")


@pytest.mark.parametrize(
    "hook, value, args",
    [
        ("propose", {"lr": 1}, [CTX]),
        ("propose", [{"lr": float("inf")}], [CTX]),
        ("propose", [{}], [CTX]),
        ("advise", 3, [CTX]),
        ("review", {"nochanges": 1}, [{"changes": {"a": 1}}, CTX]),
        ("select", [0, 0], [[{}, {}, {}], CTX]),
        ("select", [0, 1, 2], [[{}, {}, {}], CTX]),
        ("select", [True], [[{}, {}], CTX]),
        ("select", [], [[{}], CTX]),
        ("accept", 1, [{"status": "ok"}, CTX]),
        ("accept", True, [{"status": "crash"}, CTX]),
    ],
)
def test_check_result_refuses_what_the_contract_does_not_allow(hook, value, args):
    with pytest.raises(HookTypeError):
        check_result(hook, value, args)


def test_check_result_passes_and_trims():
    assert check_result("advise", "x" * 5000, [CTX]) == "x" * 2000
    assert check_result("review", None, [{"changes": {"a": 1}}, CTX]) is None
    merged = check_result(
        "review", {"changes": {"a": 2}}, [{"changes": {"a": 1}, "source": "s"}, CTX]
    )
    assert merged == {"changes": {"a": 2}, "source": "s"}
    assert check_result("select", [1], [[{}, {}], CTX]) == [1]


def test_ledger_rows_are_written_once(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    row = {
        "trial": 0,
        "trace": 0,
        "cycle": 0,
        "iteration": 0,
        "config": {"a": 1},
        "changes": {},
        "base": {"a": 1},
        "source": "baseline",
        "description": "",
        "mechanism": "default",
        "metric": 1.0,
        "status": "ok",
        "seconds": 0.1,
        "extra": {},
        "log_tail": "",
        "accepted": None,
        "incumbent_metric": None,
    }
    ledger.add_trial(row)
    ledger.add_trial({**row, "metric": 9.0})  # a replayed node: ignored
    assert [t["metric"] for t in ledger.trials()] == [1.0]
    ledger.add_trial({**row, "trial": 1, "trace": 1})
    assert [t["trial"] for t in ledger.trials(trace=1)] == [1]
    assert [t["trial"] for t in ledger.trials(before=1)] == [0]
    ledger.set_accepted(0, True, 1.0)
    assert ledger.trial(0)["accepted"] is True
    ledger.close()


NESTED: list = [0]
for _ in range(40):
    NESTED = [NESTED]


@pytest.mark.parametrize(
    "value, needle",
    [
        (10**19, "64 bits"),
        (NESTED, "nested deeper"),
        ({"k": chr(0xD800)}, "UTF-8"),
        (float("nan"), "non-finite"),
        ({1, 2}, "not JSON data"),
    ],
)
def test_check_plain_refuses_what_the_checkpointer_cannot_store(value, needle):
    with pytest.raises(HookTypeError, match=needle):
        check_plain(value)
    check_plain({"ok": [1, 2.5, "x", None, True, {"n": 2**63 - 1}]})


def test_ledger_stores_untrusted_text(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add_hook_call(
        {
            "key": "k",
            "mechanism": "m",
            "hook": "propose",
            "cycle": 0,
            "iteration": 0,
            "outcome": "error",
            "changed": 0,
            "error": "bad " + chr(0xD800),
            "ms": 1.0,
        }
    )
    assert ledger.query("SELECT error FROM hook_calls")[0]["error"] == "bad \\ud800"
    ledger.close()
