"""The live progress display of a run (rich, on stderr): evaluations, cycle, incumbent."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=not enabled,
        )
        self.task: Any = None
        self.warned: set[str] = set()  # each distinct trial warning is printed once
        self.done = 0
        self.run_dir: str | None = None

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def update(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "setup":
            self.run_dir = event["run_dir"]
        if not self.enabled:
            return
        if kind == "setup":
            self.console.print(f"run dir {event['run_dir']}", highlight=False)
            self.task = self.progress.add_task("evaluations", total=event["total"], status="")
        elif kind == "trial" and self.task is not None:
            self.done += 1
            self.progress.update(self.task, completed=self.done)
            for warning in event.get("warnings", []):
                if warning not in self.warned:
                    self.warned.add(warning)
                    line = f"warning (trial {event['trial']}): {warning}"
                    self.console.print(line, highlight=False, markup=False)
        elif kind == "iteration" and self.task is not None:
            best = event["incumbent"]
            shown = "-" if best is None else f"{best:.6f}"
            self.progress.update(
                self.task,
                status=f"cycle {event['cycle']}  incumbent {shown}  mechanism {event['mechanism']}",
            )
        elif kind == "cycle":
            decision = f"  {event['decision']}" if event["decision"] else ""
            self.console.print(
                f"cycle {event['cycle']}: improvement {event['improvement']:.6g}{decision}",
                highlight=False,
            )
