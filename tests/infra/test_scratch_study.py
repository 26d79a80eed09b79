"""workbench.scratch_study: the per-seed numbers behind claims T11 and T12."""

import pytest

from workbench import scratch_study as sc


def test_claim_metrics_read_the_curves():
    adapted = [(0, 5.0), (5, 4.0), (10, 3.8), (15, 3.7), (20, 3.6)]  # a quarter of 20 steps: step 5
    curves = {("small", "adapted", 0): adapted, ("small", "scratch", 0): [(0, 9.0), (40, 6.0)],
              ("small", "adapted", 1): [(0, 5.0), (20, 5.2)], ("small", "scratch", 1): [(0, 9.0), (40, 5.0)]}
    m = sc.claim_metrics(curves, ["small"], [0, 1])
    assert m["adapted_advantage"]["small"] == pytest.approx([2.4, -0.2])
    assert m["adapt_fraction_of_gain_at_25pct"]["small"] == pytest.approx([1.0 / 1.4, 0.0])  # no gain: 0
    assert m["final_loss"]["small"] == {"adapted": [3.6, 5.2], "scratch": [6.0, 5.0]}
    assert sc.at_fraction(adapted, 0.5) == 3.8


def test_run_curve_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be"):
        sc.run_curve({}, "cpu", "small", "distilled", 0, 1, None, {})
