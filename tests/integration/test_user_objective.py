"""An objective that lives in the user's own package, found by every entry point: by its import
path (`package.module:factory`) and through the `bilevel.objectives` entry-point group."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import bilevel

QUICK = ("--iterations", "8", "--cycle", "4")
MODULE = '''
from bilevel.objectives.synthetic import make_interact


def quadratic(noise: float = 0.0):
    """The interact function, as a user's own objective."""
    return make_interact(noise)
'''


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch) -> Path:
    """mypkg on PYTHONPATH, installed the way pip leaves it: a dist-info with entry points."""
    site = tmp_path / "site"
    (site / "mypkg").mkdir(parents=True)
    (site / "mypkg" / "__init__.py").write_text("")
    (site / "mypkg" / "objectives.py").write_text(MODULE)
    info = site / "mypkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[bilevel.objectives]\nmypkg-quadratic = mypkg.objectives:quadratic\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return tmp_path


def test_by_import_path_through_run_show_and_resume(user_package: Path):
    run_dir = user_package / "run"
    name = "mypkg.objectives:quadratic"
    bilevel("run", "--objective", name, "--run-dir", str(run_dir), *QUICK)
    shown = json.loads(bilevel("show", str(run_dir), "--json").stdout)
    assert shown["objective"] == name and shown["trials"] == 9 and shown["best_metric"] < 1
    again = json.loads(bilevel("resume", str(run_dir), "--json").stdout)  # finished: no new trial
    assert again["trials"] == 9


def test_by_entry_point_through_objectives_run_and_bench(user_package: Path):
    assert "mypkg-quadratic\tloss\tminimize\t6" in bilevel("objectives").stdout
    run_dir = user_package / "run"
    bilevel("run", "--objective", "mypkg-quadratic", "--run-dir", str(run_dir), *QUICK)
    assert json.loads(bilevel("show", str(run_dir), "--json").stdout)["trials"] == 9
    out = user_package / "bench"
    bench = bilevel(
        "bench", "--objectives", "mypkg-quadratic", "--arms", "inner,full", "--seeds", "0",
        "--out", str(out), *QUICK,
    )  # fmt: skip
    assert "mypkg-quadratic" in bench.stdout


def test_an_import_path_that_does_not_import_is_one_line(tmp_path: Path):
    proc = bilevel("run", "--objective", "nosuch.module:f", "--run-dir", str(tmp_path / "r"),
                   check=False)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot load nosuch.module:f" in proc.stderr
