"""What every `bilevel` command shares: the consoles, the user-error types and `fail`.

User mistakes (an unknown objective, impossible numbers, another run's directory) exit with
status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import shlex
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from bilevel.execution.local_llm import LocalModelError
from bilevel.objectives import UnknownObjective
from bilevel.sandbox.pool import ConfinementError
from bilevel.store.ledger import NotARunDir
from bilevel.store.rundir import RunDirConflict
from bilevel.terminal import safe

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
USER_ERRORS = (
    ValidationError,
    UnknownObjective,
    RunDirConflict,
    NotARunDir,
    FileNotFoundError,
    ValueError,
    LocalModelError,
    ConfinementError,
)


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(safe(message))}", highlight=False)  # keep "[bench]"
    raise typer.Exit(2)


async def validate_source(source: str, timeout: float) -> Any:
    """A mechanism validated exactly as generated code is (`mechanism check`, `run --mechanism`)."""
    from bilevel.sandbox.pool import SandboxPool
    from bilevel.sandbox.validation import validate_mechanism

    async with SandboxPool(workers=1) as pool:
        return await validate_mechanism(pool, source, timeout_s=timeout)


def shell_line(env: dict[str, str], argv: list[str]) -> str:
    """A command as a user pastes it into a shell: NAME=value assignments, then the argv."""
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(argv)])
