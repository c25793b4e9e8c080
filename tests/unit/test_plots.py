"""What the report's figures show: every cycle's decision, legends off the bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.colors import to_rgba  # noqa: E402

from bilevel.reporting import plots  # noqa: E402


def captured(monkeypatch) -> list:
    figures: list = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    return figures


def test_a_cycle_that_gained_nothing_still_shows_its_decision(monkeypatch, tmp_path: Path):
    figures = captured(monkeypatch)
    cycles = [
        {"cycle": 0, "mechanism": "default", "improvement": 0.01, "decision": None},
        {"cycle": 1, "mechanism": "c1-tpe", "improvement": 0.0, "decision": "revert c1-tpe: ..."},
        {"cycle": 2, "mechanism": "c2-gp", "improvement": 0.0, "decision": "adopt c2-gp: ..."},
    ]
    plots.cycles_plot(cycles, tmp_path / "cycles.png")
    (ax,) = figures[0].axes
    (markers,) = ax.collections  # one marker per cycle, at the top of its bar
    assert [tuple(o) for o in markers.get_offsets()] == [(0, 0.01), (1, 0.0), (2, 0.0)]
    colours = [tuple(c) for c in markers.get_facecolors()]
    assert colours[1] == to_rgba("tab:red") and colours[2] == to_rgba("tab:green")


def test_the_hooks_legend_sits_beside_the_bars_with_one_name(monkeypatch, tmp_path: Path):
    figures = captured(monkeypatch)
    calls = [{"mechanism": "c1-tpe", "hook": "propose", "calls": 6, "changed": 6, "failed": 0}]
    plots.hooks_plot(calls, tmp_path / "hooks.png")
    (ax,) = figures[0].axes
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["calls", "changed a decision"]
    assert "changed a decision" in ax.get_title()
    anchor = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    assert anchor.x0 >= 1.0  # outside the axes, so it covers no bar
