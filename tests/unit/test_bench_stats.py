"""The statistics behind `bilevel bench` and the adoption gate."""

from __future__ import annotations

import pytest

from bilevel.graphs.assessment import adopt_rule, gate_evidence
from bilevel.reporting.stats import bootstrap_ci, paired


def test_bootstrap_ci_brackets_the_mean():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    low, high = bootstrap_ci(values)
    assert low < 3.0 < high and low >= 1.0 and high <= 5.0
    assert bootstrap_ci([2.0]) == (2.0, 2.0)


def test_paired_sign_flip_p_is_exact():
    # five positive differences: only the all-plus and all-minus flips are as extreme
    result = paired([0.1, 0.2, 0.3, 0.4, 0.5])
    assert result["p"] == pytest.approx(2 / 32)
    assert result["mean_diff"] == pytest.approx(0.3) and result["d_z"] > 0
    assert paired([0.2, -0.2])["p"] == 1.0
    assert paired([0.1, 0.1])["d_z"] is None  # no spread, no effect size
    assert paired([])["n"] == 0


def test_the_gate_adopts_only_credible_gains():
    strong = gate_evidence([0.1] * 10 + [0.0] * 2, [0.0] * 12, alpha=0.1, seed=1)
    assert strong["adopt"] and strong["p"] < 0.01
    lucky = gate_evidence([0.3] + [-0.1] * 11, [0.05, 0.0] + [-0.1] * 10, alpha=0.1, seed=1)
    assert not lucky["adopt"] and lucky["p"] > 0.1  # one good trial is not evidence
    worse = gate_evidence([0.0] * 12, [0.1] * 12, alpha=0.1, seed=1)
    assert not worse["adopt"]
    assert gate_evidence([], [0.1], alpha=0.1, seed=1)["adopt"] is False


def test_the_adoption_rule_the_readme_states():
    """README: adopted only if it gained more per evaluation than its parent on the matched
    trials of its probation cycle; a tie keeps the parent; keeping a worse trial counts against."""
    assert adopt_rule([0.0, 0.2, 0.0], [0.0, 0.1, 0.0])
    assert not adopt_rule([0.0, 0.1], [0.1, 0.0])  # a tie keeps the parent
    assert not adopt_rule([0.0, 0.0], [0.0, 0.0])
    assert not adopt_rule([0.3, -0.3, -0.1], [0.0, 0.0, 0.0])  # kept worse trials cost
    assert adopt_rule([0.01], [])  # no parent trial to compare: any gain adopts


def test_gap_closed_is_the_share_of_the_baseline_gap_to_the_known_optimum():
    from bilevel.objectives import make_objective
    from bilevel.reporting.bench import gap_closed

    optimum = make_objective("suite:branin").optimum  # what summary_of records
    run = {"objective": "suite:branin", "baseline_metric": 10.397887, "best_metric": 5.397887,
           "improvement": 5.0, "optimum": optimum}  # fmt: skip
    assert gap_closed(run) == pytest.approx(0.5)  # Branin's optimum is 0.397887
    assert gap_closed({**run, "best_metric": None}) is None
