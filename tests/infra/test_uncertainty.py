"""Task-score intervals: bootstrap over test examples, t-interval over seeds, chance, the report's table."""

import numpy as np
import pandas as pd
import pytest

from workbench import evaluate, report, results, uncertainty
from workbench.sizes_study import MIXTURE, MIXTURE_METRIC, it_chance, it_task_scores


def test_per_example_terms_average_to_the_metrics():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(200, 3)), rng.integers(0, 3, 200)
    acc = uncertainty.per_example_primary("classification", logits, labels)
    assert acc.mean() == pytest.approx(evaluate.classification_metrics(logits, labels)["accuracy"])
    scores, pos = rng.normal(size=(150, 12)), rng.integers(0, 12, 150)
    scores[:5] = 0.0  # tied rows: broken as ranking_metrics breaks them
    rr = uncertainty.per_example_primary("ranking", scores, pos)
    assert rr.mean() == pytest.approx(evaluate.ranking_metrics(scores, pos, k=10)["mrr@10"])
    assert uncertainty.per_example_primary("regression", scores[:, 0], pos) is None


@pytest.mark.parametrize("kind", ["classification", "regression", "ranking"])
def test_bootstrap_interval_brackets_the_score_and_shrinks_with_more_examples(kind):
    rng = np.random.default_rng(1)

    def sample(n):
        y = rng.integers(0, 2, n) if kind != "ranking" else rng.integers(0, 4, n)
        if kind == "classification":
            return rng.normal(size=(n, 2)) + 1.5 * np.eye(2)[y], y
        if kind == "regression":
            return y + rng.normal(size=n), y.astype(float)
        return rng.normal(size=(n, 4)) + 1.5 * np.eye(4)[y], y

    widths = []
    for n in (100, 1600):
        out, y = sample(n)
        lo, hi = uncertainty.bootstrap_primary(kind, out, y)
        metric = (evaluate.classification_metrics(out, y)["accuracy"] if kind == "classification" else
                  evaluate.regression_metrics(out, y)["pearson"] if kind == "regression" else
                  evaluate.ranking_metrics(out, y)["mrr@10"])
        assert lo < metric < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2.5  # ~ 1 / sqrt(16) = 1/4


def test_summarise_uses_seeds_when_there_are_several_else_the_runs_bootstrap():
    many = uncertainty.summarise([0.70, 0.72, 0.74], [(0.6, 0.8)] * 3)
    lo, hi, _ = report.interval(0.72, 0.02, 3)
    assert (many["interval"], many["seeds"]) == ("seeds", 3)
    assert (many["lo"], many["hi"]) == pytest.approx((lo, hi))
    one = uncertainty.summarise([0.7], [(0.65, 0.75)])
    assert (one["interval"], one["lo"], one["hi"]) == ("test bootstrap", 0.65, 0.75)
    assert uncertainty.summarise([0.7])["interval"] == "none"


def test_summarise_frame_groups_and_compares_with_chance():
    runs = pd.DataFrame({"task": ["a"] * 3 + ["b"], "model": ["m"] * 4, "score": [0.8, 0.82, 0.81, 0.52],
                         "score_lo": [0.7, 0.7, 0.7, 0.45], "score_hi": [0.9, 0.9, 0.9, 0.59]})
    out = uncertainty.summarise_frame(runs, ["task", "model"], chance={"a": 0.5, "b": 0.5}).set_index("task")
    assert out.loc["a", "interval"] == "seeds" and bool(out.loc["a", "above chance"])
    assert out.loc["b", "interval"] == "test bootstrap" and not bool(out.loc["b", "above chance"])
    assert out.loc["b", "chance"] == 0.5


def test_it_chance_is_the_best_constant_answer():
    refs = ["yes", "no", "Yes", "yes", "a cat", "a small dog"]
    tasks = ["wic"] * 4 + ["definition"] * 2
    chance = it_chance(refs, tasks)
    assert chance["wic"] == pytest.approx(0.75)  # "yes" (case-normalised) three times in four
    assert 0.5 < chance["definition"] < 1.0  # one definition repeated: itself 1, the other partly
    rows = pd.DataFrame({"task": ["wic"] * 3 + ["definition"] * 3, "model": ["S"] * 6, "seed": [0, 1, 2] * 2,
                         "exact_match": [0.9, 0.92, 0.91, 0.0, 0.0, 0.0], "rougeL": [0.9, 0.9, 0.9, 0.1, 0.2, 0.1]})
    scores = it_task_scores(rows, chance).set_index("task")
    assert scores.loc["wic", "metric"] == "exact_match" and bool(scores.loc["wic", "above chance"])
    assert scores.loc["definition", "metric"] == "rougeL" and not bool(scores.loc["definition", "above chance"])
    # the whole mixture: per seed the mean over tasks of their scores, against the mean of the tasks' chance
    mix = scores.loc[MIXTURE]
    assert mix["metric"] == MIXTURE_METRIC and mix["seeds"] == 3
    assert mix["mean"] == pytest.approx(np.mean([(0.9 + 0.1) / 2, (0.92 + 0.2) / 2, (0.91 + 0.1) / 2]))
    assert mix["chance"] == pytest.approx((chance["wic"] + chance["definition"]) / 2)
    assert bool(mix["above chance"]) == (mix["lo"] > mix["chance"])


def test_recorded_tree_is_numbers_only_and_the_report_reads_it_back(tmp_path):
    runs = pd.DataFrame({"task": ["a"] * 3 + ["b", "c"], "model": ["m"] * 5, "score": [0.8, 0.82, 0.81, 0.52, 0.6],
                         "score_lo": [0.7] * 3 + [0.45, float("nan")], "score_hi": [0.9] * 3 + [0.59, float("nan")]})
    frame = uncertainty.summarise_frame(runs, ["task", "model"], chance={"a": 0.5, "b": 0.5}).assign(metric="acc")
    tree = uncertainty.tree(frame)
    results.check_finite({"task_scores": tree})  # what record_metrics requires: finite numbers only
    assert tree["a"]["m"]["acc"]["over_seeds"] == 1 and tree["a"]["m"]["acc"]["above_chance"] == 1
    assert "lo" not in tree["c"]["m"]["acc"] and "chance" not in tree["c"]["m"]["acc"]
    results.record_metrics("x", {"task_scores": tree}, out_dir=tmp_path)
    table = report.task_scores_table({"x": results.read_json(tmp_path / "metrics.json")["metrics"], "y": {"o": 1},
                                      "z": None, "report": {"task_scores": 26}}).set_index("task")
    assert set(table.reset_index().columns) == set(report.TASK_SCORE_COLUMNS)
    assert table.loc["a", "interval"] == "seeds" and bool(table.loc["a", "above chance"])
    assert table.loc["b", "interval"] == "test bootstrap" and not bool(table.loc["b", "above chance"])
    assert table.loc["c", "interval"] == "none" and np.isnan(table.loc["c", "chance"])
    assert (table["experiment"] == "x").all() and table.loc["b", "mean"] == pytest.approx(0.52)
