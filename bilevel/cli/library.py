"""`bilevel mechanisms list|show|diff`: the mechanism library from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bilevel.cli.common import err, fail
from bilevel.library import Library, library_path, open_library
from bilevel.terminal import safe

mechanisms_app = typer.Typer(
    no_args_is_help=True, help="The mechanism library: every validated mechanism of every run."
)


def _library() -> Library:

    library = open_library()
    if library is None:
        fail("the mechanism library is off (BILEVEL_LIBRARY=off)")
    return library


@mechanisms_app.command("list")
def list_mechanisms(
    objective: Annotated[str | None, typer.Option(help="Only uses on this objective.")] = None,
) -> None:
    """Mechanisms with their uses, objectives, adoptions and mean reward (best first)."""
    library = _library()
    try:
        rows = library.mechanisms(objective)
    finally:
        library.close()
    print(f"# {library_path()}: {len(rows)} mechanisms")
    print(f"{'id':<12}  {'name':<14} {'uses':>4} {'adopted':>7} {'reward':>8}  objectives")
    for r in rows:
        reward = "-" if r["mean_reward"] is None else f"{r['mean_reward']:.3g}"
        print(
            safe(
                f"{r['id']:<12}  {r['name']:<14} {r['uses']:>4} {r['adopted'] or 0:>7} "
                f"{reward:>8}  {r['objectives']}"
            )
        )


@mechanisms_app.command("show")
def show_mechanism(
    mechanism_id: Annotated[str, typer.Argument(help="A library id (or its prefix).")],
) -> None:
    """A mechanism's source, parent and every run that tried it."""

    library = _library()
    try:
        m = library.get(mechanism_id)
    except ValueError as exc:
        fail(str(exc))
    finally:
        library.close()
    parent = m["parent"] or "default"
    print(safe(f"# {m['id']} {m['name']} (origin {m['origin']}, parent {parent})"))
    for u in m["uses"]:
        gain = "-" if u["improvement"] is None else f"{u['improvement']:.6g}"
        print(f"#   {u['objective']} {u['arm']} s{u['seed']}: {u['status']}, cycle gain {gain}")
    source = safe(m["source"])  # model-written text: controls shown, never interpreted
    print(source, end="" if source.endswith("\n") else "\n")


@mechanisms_app.command("diff")
def diff_mechanisms(
    a: Annotated[str, typer.Argument(help="A library id (or prefix).")],
    b: Annotated[str, typer.Argument(help="Another library id (or prefix).")],
) -> None:
    """The unified diff between two mechanisms' sources."""

    library = _library()
    try:
        print(safe(library.diff(a, b)), end="")
    except ValueError as exc:
        fail(str(exc))
    finally:
        library.close()


def library_start(
    objective: str, options: dict[str, Any], learn: bool
) -> tuple[str, dict[str, Any]]:
    """The library's best mechanism source for a similar objective, and (with learn) the meta
    prior; ValueError when the library is off or has nothing for this objective."""
    from bilevel.library import library_path, open_library
    from bilevel.objectives import make_objective

    library = open_library()
    if library is None:
        raise ValueError("the mechanism library is off (BILEVEL_LIBRARY=off)")
    try:
        metric = make_objective(objective, **options).metric
        best = library.best_for(objective, metric)
        prior = library.prior_for(objective, metric) if learn else {}
    finally:
        library.close()
    if best is None:
        raise ValueError(
            f"the library ({library_path()}) has no adopted mechanism for {objective} or its "
            f"metric {metric}: run a mechanism or full arm first"
        )

    err.print(
        f"from the library: {best['id']} ({best['name']}, mean reward {best['mean_reward']:.3g})"
    )
    return best["source"], prior
