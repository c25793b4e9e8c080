"""Every callable the allowed modules export is either reviewed and handed out, or left out
with the reason it would reach past the policy; the views cannot be changed."""

from __future__ import annotations

import types

import pytest

from bilevel.sandbox import policy
from bilevel.sandbox.pool import SandboxPool


def public(name: str) -> set[str]:
    module = __import__(name)
    return {
        k
        for k, v in vars(module).items()
        if not k.startswith("_") and not isinstance(v, types.ModuleType)
    }


@pytest.mark.parametrize("name", sorted(policy.ALLOWED_MODULES))
def test_every_public_name_is_reviewed(name: str) -> None:
    denied = {k.split(".", 1)[1] for k in policy.DENIED_EXPORTS if k.startswith(f"{name}.")}
    unreviewed = public(name) - policy.MODULE_EXPORTS[name] - denied
    assert not unreviewed, f"{name}: review these and allow or deny them: {sorted(unreviewed)}"
    assert not (policy.MODULE_EXPORTS[name] & denied)
    assert all(reason for reason in policy.DENIED_EXPORTS.values())


def test_views_hold_exactly_the_reviewed_names() -> None:
    for name, view in policy._MODULE_VIEWS.items():
        module = __import__(name)
        expected = {k for k in policy.MODULE_EXPORTS[name] if hasattr(module, k)}
        assert set(dir(view)) <= expected
        for key in dir(view):  # no sub-modules, no shared mutable data
            assert not isinstance(getattr(view, key), types.ModuleType | list | dict | set)
    functools_view = policy._MODULE_VIEWS["functools"]
    for gone in ("update_wrapper", "wraps", "singledispatch", "total_ordering"):
        assert not hasattr(functools_view, gone)
    assert not hasattr(policy._MODULE_VIEWS["random"], "SystemRandom")
    assert not hasattr(policy._MODULE_VIEWS["statistics"], "Fraction")


def test_views_refuse_writes_even_from_unguarded_code() -> None:
    view = policy._MODULE_VIEWS["math"]
    with pytest.raises(TypeError):
        view.sqrt = abs
    with pytest.raises(TypeError):
        view.pi = 3
    with pytest.raises(TypeError):
        del view.sqrt
    assert view.sqrt(4) == 2.0


def test_seeding_from_the_os_is_refused() -> None:
    rnd = policy._MODULE_VIEWS["random"]
    with pytest.raises(ValueError):
        rnd.seed(None)
    with pytest.raises(ValueError):
        rnd.Random(None)
    assert rnd.Random(3).random() == rnd.Random(3).random()


async def call(source: str, hook: str = "advise") -> tuple[str, object]:
    async with SandboxPool(workers=1) as pool:
        result = await pool.call(source, hook, [{"memory": {}}])
    return result.outcome, result.value if result.outcome == "ok" else result.error


@pytest.mark.parametrize(
    "body, needle",
    [
        ("import collections\n    return str(collections.UserDict.mro())", "'mro' is not allowed"),
        ("return str(id([]))", "NameError"),
        ("return str(hash(advise))", "hash() of function"),
        ("import functools\n    return str(functools.wraps)", "no attribute 'wraps'"),
        ("import random\n    return str(random.SystemRandom)", "no attribute 'SystemRandom'"),
        ("import math\n    math.pi = 3\n    return ''", "cannot modify ModuleView"),
    ],
)
async def test_worker_refuses(body: str, needle: str) -> None:
    outcome, error = await call(f"def advise(ctx):\n    {body}\n")
    assert outcome == "error" and needle in str(error), error


async def test_values_still_hash_the_same_in_every_worker() -> None:
    source = "def advise(ctx):\n    return str(hash(('a', 1, 2.5)))\n"
    first, second = await call(source), await call(source)  # two fresh worker processes
    assert first[0] == "ok" and first == second
