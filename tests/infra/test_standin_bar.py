"""The stand-in quality bar: claims built on stand-ins that miss the bigram floor are not measured, and say why."""

import json

import pytest

from workbench import claims, report, results


def _pretrain(root, small, large, floor=5.0, margin=0.3):
    d = root / "pretrain"
    d.mkdir(parents=True, exist_ok=True)
    m = {"small": {"below_bigram_floor": floor - small}, "large": {"below_bigram_floor": floor - large},
         "floors": {"bigram": floor, "unigram": 7.0, "margin": margin}}
    (d / "metrics.json").write_text(json.dumps({"metrics": m}))


def test_bar(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RESULTS", str(tmp_path))
    assert results.results_dir() == tmp_path
    assert "no count floors" in claims._standins_clear_floor({})
    _pretrain(tmp_path, small=5.7, large=4.6)
    why = claims._standins_clear_floor({})
    assert "small 5.70" in why and "large" not in why and "5.00" in why
    _pretrain(tmp_path, small=4.69, large=4.5)
    assert claims._standins_clear_floor({}) is None
    # through the registry: a stand-in claim with data gets the reason; the real-Gemma claims do not read it
    _pretrain(tmp_path, small=5.7, large=5.5)
    row = report.evaluate(claims.BY_ID["E1"], {"gemma_encoder": {"claims": {"bidirectional_gt_causal":
                                                                            {"values": [0.1, 0.2, 0.3]}}}},
                          params={"gemma_encoder": {}})
    assert row["verdict"] == report.NOT_MEASURED and "quality bar" in row["reason"] and row["n"] == 3
    stand_in = [c.id for c in claims.CLAIMS if c.check is not None and "quality bar" in (c.check({
        "sizes": {"models": ["S-S", "dec-S", "L-S", "L-S-nowarm", "L-L", "dec-L"]},
        "objectives": {"objectives": ["prefixlm", "ul2"]},
        "scratch": {"sizes": ["small", "large"], "max_scratch_steps": None, "adapt_steps": 100,
                    "eval_every": {"adapted": 10}, "train": {"warmup_steps": 5}},
        "gemma_encoder": {"grid": {"dropout": [0.0]}, "default": {"dropout": 0.1}},
        "real_encoder": {"model": "gemma3-270m", "variants": {
            "sentiment_binary": [{"attention": "causal"}, {"pooling": "attention"}, {"dropout": 0.0}],
            "sentiment_regression": [{"attention": "causal"}], "retrieval": [{"attention": "causal"}]}},
        "real_t5gemma": {"model": "gemma3-270m", "run": True, "scale": "gpu"}}) or "")]
    # the real-Gemma claims (G, R) do not depend on the stand-ins
    assert set(stand_in) == {"T1", "T2", "T3", "T5", "T6", "T7", "T8", "T11", "T12", "E1", "E2", "E3", "E4", "E5"}


@pytest.mark.parametrize("bad", ["{", json.dumps({"metrics": {"small": {}}})])
def test_unreadable_pretrain_metrics_are_a_reason(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("WORKBENCH_RESULTS", str(tmp_path))
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "metrics.json").write_text(bad)
    assert "no count floors" in claims._standins_clear_floor({})


def _record(root, experiment, date, **extra):
    d = root / experiment
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps({"metrics": {}, "provenance": {"date_utc": date}, **extra}))


def test_results_older_than_the_stand_ins_are_not_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RESULTS", str(tmp_path))
    _record(tmp_path, "pretrain", "2026-12-03T12:00:00+00:00")  # trained in the batch: its own date counts
    _record(tmp_path, "sizes", "2026-12-03T11:00:00+00:00")
    _record(tmp_path, "objectives", "2026-12-03T13:00:00+00:00")
    assert "results/sizes (2026-12-03T11:00) predate the current stand-ins" in claims._fresh("sizes")({})
    assert claims._fresh("objectives")({}) is None
    assert "results/sizes" in claims._fresh("objectives", "sizes")({})
    assert claims._fresh("scratch")({}) is None  # no record: the claim's missing data speaks
    # committed stand-ins: their training date counts, not when 01_pretrain loaded them
    (tmp_path / "pretrain" / "standins.json").write_text(json.dumps(
        {"small": {"date_utc": "2026-12-03T10:30:00+00:00"}, "large": {"date_utc": "2026-12-03T10:00:00+00:00"}}))
    assert claims._fresh("sizes")({}) is None
    _record(tmp_path, "sizes", "2026-12-03T09:59:00+00:00")
    assert "predate the current stand-ins (2026-12-03T10:00)" in claims._fresh("sizes")({})
