"""The mechanism library outlives runs: recorded at the end of every run, listed, shown and
diffed from the CLI, the source of a new run's first mechanism and of the offline
meta-researcher's prior (both written into the new run's config, so it stays reproducible)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bilevel.library import Library, source_id
from tests.helpers import bilevel

pytestmark = pytest.mark.slow

RUN = ["--objective", "synthetic:late-lever", "--iterations", "24", "--cycle", "4"]


def config_of(run_dir: Path) -> dict:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    value = db.execute("SELECT value FROM run WHERE key = 'config'").fetchone()[0]
    db.close()
    return json.loads(value)


def test_the_library_across_runs(tmp_path: Path, monkeypatch):
    path = tmp_path / "library.sqlite"
    monkeypatch.setenv("BILEVEL_LIBRARY", str(path))
    for seed in ("0", "1"):
        bilevel("run", *RUN, "--seed", seed, "--run-dir", str(tmp_path / f"s{seed}"))
    library = Library(path)
    rows = library.mechanisms()
    assert rows and all(r["objectives"] == "synthetic:late-lever" for r in rows)
    assert sum(r["uses"] for r in rows) >= 2 * 4  # every validated mechanism of both runs
    adopted = [r for r in rows if r["adopted"]]
    assert adopted
    child = next(r for r in rows if r["parent"] is not None)
    library.close()

    listed = bilevel("mechanisms", "list").stdout
    assert child["id"] in listed and "synthetic:late-lever" in listed
    shown = bilevel("mechanisms", "show", child["id"][:8]).stdout
    assert f"# {child['id']} {child['name']}" in shown and "def " in shown
    diff = bilevel("mechanisms", "diff", child["id"], child["parent"]).stdout
    assert diff.startswith("---") and "+++" in diff

    # --from-library: the best adopted mechanism for this objective, written into the config
    first = tmp_path / "from"
    proc = bilevel("run", *RUN, "--arm", "inner", "--from-library", "--run-dir", str(first))
    best = Library(path).best_for("synthetic:late-lever", "loss")
    assert best is not None and f"from the library: {best['id']}" in proc.stderr
    assert config_of(first)["mechanism_source"] == best["source"]
    assert source_id(config_of(first)["mechanism_source"]) == best["id"]

    # --learn-from-library: the meta-researcher's prior, written into the config; reproducible
    prior_a, prior_b = tmp_path / "prior-a", tmp_path / "prior-b"
    for run_dir in (prior_a, prior_b):  # each from the same library (a run adds to its copy)
        copy = tmp_path / f"{run_dir.name}.sqlite"
        copy.write_bytes(path.read_bytes())
        monkeypatch.setenv("BILEVEL_LIBRARY", str(copy))
        bilevel("run", *RUN, "--learn-from-library", "--run-dir", str(run_dir))
    prior = config_of(prior_a)["meta_prior"]
    assert prior and all(s["n"] == 1 for s in prior.values())
    assert config_of(prior_b)["meta_prior"] == prior
    assert (prior_a / "results.tsv").read_text() == (prior_b / "results.tsv").read_text()


def test_library_off(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BILEVEL_LIBRARY", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    bilevel("run", *RUN, "--run-dir", str(tmp_path / "run"))
    assert not (tmp_path / ".local").exists()
    proc = bilevel("run", *RUN, "--from-library", "--run-dir", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "library is off" in proc.stderr
    assert "Traceback" not in proc.stderr
