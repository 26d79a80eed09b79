"""The claims registry (`workbench.claims`): sane, and every claim resolves against the committed cpu metrics."""

import csv
from pathlib import Path

import pytest

from workbench import claims, report, results

RESULTS = Path(__file__).resolve().parents[2] / "results"


def test_registry_is_sane():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids)), ids
    assert not {"T9", "T10"} & set(ids), "T9 duplicates E1 and T10 duplicates E4: one of each pair is kept"
    for c in claims.CLAIMS:
        assert c.margin > 0 and c.translation.strip() and c.text.strip() and c.paper.strip(), c.id
        assert report.direction_symbol(c.direction) in (">", "<", "≥", "≤", "≈"), c.id
        assert claims.keys(c), f"{c.id}: its measure names no recorded key"
        assert "matched compute" not in c.text or "cap" in c.text, f"{c.id}: say what a capped run measures"
    assert claims.keys(claims.BY_ID["T2"])[-1] == "sizes/task_scores/mixture/dec-S/mean task score"
    assert claims.BY_ID["E2"].direction == "≥"  # a tie must be able to satisfy 'at least as good'


@pytest.fixture(scope="module")
def cpu_table():
    records = results.load_records(RESULTS)
    metrics = {k: r["metrics"] for k, r in records.items()}
    params = {k: r["provenance"].get("parameters", {}) for k, r in records.items()}
    return report.claims_table(claims.CLAIMS, metrics, params=params)


def test_every_claim_resolves_against_the_committed_cpu_metrics(cpu_table):
    """Catches a renamed metric key: the committed cpu results hold every metric the notebooks record."""
    assert not (missing := report.missing_data(cpu_table)), f"claims without data: {missing}"
    # a claim whose runs the cpu preset leaves out has no seeds, a 'not measured' verdict and says so
    skipped = cpu_table["reason"].astype(str).str.contains("not run at this scale")
    assert (cpu_table.loc[skipped, "verdict"] == report.NOT_MEASURED).all()
    assert (cpu_table.loc[skipped, "n"] == 0).all()
    short = cpu_table[(cpu_table["n"] < report.MIN_SEEDS) & ~skipped]
    assert short.empty, f"claims with fewer than {report.MIN_SEEDS} seeds at cpu: {list(short['id'])}"
    assert set(cpu_table["verdict"]) <= set(report.VERDICTS)
    assert (cpu_table.loc[~skipped, "detectable"] > 0).all()


def test_cpu_reasons_name_what_the_run_cannot_measure(cpu_table, monkeypatch):
    why = dict(zip(cpu_table["id"], cpu_table["reason"], strict=True))
    verdict = dict(zip(cpu_table["id"], cpu_table["verdict"], strict=True))
    pretrain = results.read_json(RESULTS / "pretrain" / "metrics.json")["metrics"]
    if any(pretrain[r]["below_bigram_floor"] < pretrain["floors"]["margin"] for r in ("small", "large")):
        for cid in ("T1", "T5", "T11", "T12", "E1"):  # the stand-ins miss the quality bar: that reason comes first
            assert verdict[cid] == report.NOT_MEASURED and "quality bar" in why[cid], cid
    # the run-specific reasons behind it: a capped scratch run, a reading inside the warm-up
    params = {k: r["provenance"].get("parameters", {}) for k, r in results.load_records(RESULTS).items()}
    monkeypatch.setenv("WORKBENCH_RESULTS", str(RESULTS))  # _scratch_capped reads scratch/budgets.csv there
    cap = params["scratch"]["max_scratch_steps"]
    assert f"max_scratch_steps = {cap}" in claims._scratch_capped(params)
    # the adapted runs continue at the final pretraining LR with a 3-step warm-up: step 5 is read after it
    assert params["scratch"]["adapt_train"]["warmup_steps"] < 5 and claims._inside_warmup(params) is None
    inside = {"scratch": {**params["scratch"], "adapt_train": {**params["scratch"]["adapt_train"], "warmup_steps": 10}}}
    assert "inside the 10-step LR warm-up" in claims._inside_warmup(inside)  # read at step 5 of a 10-step warm-up


def test_committed_report_lists_the_registry():
    with open(RESULTS / "report" / "claims.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [c.id for c in claims.CLAIMS], "re-render: --scale cpu --only report"
    assert {r["verdict"] for r in rows} <= set(report.VERDICTS)


def _it_scores(s_s: dict, dec_s: dict) -> dict:
    gain = {"S-S beats dec-S": {"it_rougeL_gain": [0.1, 0.12, 0.08]}}
    tree = {"mixture": {"S-S": {"mean task score": s_s}, "dec-S": {"mean task score": dec_s}}}
    return {"sizes": {"claims": gain, "task_scores": tree}}


def test_it_claims_are_judged_only_where_both_models_clear_the_constant_answer_floor():
    from workbench import sizes_study

    assert (claims._MIXTURE, claims._MIXTURE_METRIC) == (sizes_study.MIXTURE, sizes_study.MIXTURE_METRIC)
    t2 = claims.BY_ID["T2"]
    learnt = {"mean": 0.4, "lo": 0.35, "hi": 0.45, "chance": 0.3, "above_chance": 1, "seeds": 3, "over_seeds": 1}
    row = report.evaluate(t2, _it_scores(learnt, learnt))
    assert row["n"] == 3 and row["verdict"] == report.HOLDS and row["mean"] == pytest.approx(0.1)
    at_floor = {**learnt, "mean": 0.29, "lo": 0.25, "hi": 0.33, "above_chance": 0}
    row = report.evaluate(t2, _it_scores(learnt, at_floor))
    assert row["verdict"] == report.NOT_MEASURED and row["n"] == 3  # the values are there, not judged
    assert "dec-S 0.29 [0.25, 0.33]" in row["reason"] and "floor 0.3" in row["reason"]
    assert "S-S 0.4" not in row["reason"]
    no_tree = {"sizes": {"claims": _it_scores(learnt, learnt)["sizes"]["claims"]}}
    row = report.evaluate(t2, no_tree)  # scores not recorded: no data, which the registry test reports
    assert row["n"] == 0 and row["reason"].startswith(report.NO_DATA)
    assert "clear chance" in report.describe(t2.measure)


def test_t2_says_why_when_the_sizes_preset_leaves_the_it_analogue_out():
    t2 = claims.BY_ID["T2"]
    learnt = {"mean": 0.4, "lo": 0.35, "hi": 0.45, "chance": 0.3, "above_chance": 1, "seeds": 3, "over_seeds": 1}
    row = report.evaluate(t2, _it_scores(learnt, learnt), params={"sizes": {"it": {"steps": 60}}})
    assert "`it: null`" not in row["reason"] and claims._runs_it({"sizes": {"it": {"steps": 60}}}) is None
    row = report.evaluate(t2, {"sizes": {"claims": {"S-S beats dec-S": {"pt_loss_gain": [0.1] * 3}}}},
                          params={"sizes": {"it": None}})
    assert row["verdict"] == report.NOT_MEASURED and row["n"] == 0
    assert "`it: null`" in row["reason"] and "not run at this scale" in row["reason"] and "chance" in row["reason"]
    assert not row["reason"].startswith(report.NO_DATA)
