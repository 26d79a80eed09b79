"""Chance floors: majority class for classification, per-task majority answer for the text-to-text mixture."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data.baselines import majority_answer, majority_baseline, majority_class
from workbench.data.tasks import write_task


def test_majority_class_matches_classification_metrics_of_a_constant_prediction():
    from workbench.evaluate import classification_metrics

    train, ev = [0, 0, 1, 2, 0], [0, 1, 1, 1, 2, 0, 1, 1]
    out = majority_class(train, ev, num_labels=3)
    assert out["majority_label"] == 0 and out["accuracy"] == pytest.approx(2 / 8)
    logits = np.tile(np.eye(3)[0], (len(ev), 1))
    ref = classification_metrics(logits, np.asarray(ev))
    assert out["macro_f1"] == pytest.approx(ref["macro_f1"]) and "f1" not in out
    binary = majority_class([1, 1, 0], [0, 0, 1, 0])
    ref = classification_metrics(np.tile([0.0, 1.0], (4, 1)), np.asarray([0, 0, 1, 0]))
    assert binary["accuracy"] == 0.25 and binary["f1"] == pytest.approx(ref["f1"])
    assert binary["macro_f1"] == pytest.approx(ref["macro_f1"])


def test_majority_answer_per_task():
    train_t = ["yes", "Yes ", "yes", "no", "D", "D", "A", "a dog", "a cat"]
    train_k = ["wic", "wic", "wic", "wic", "retrieval", "retrieval", "retrieval", "definition", "definition"]
    ev_t = ["yes", "no", "D", "B", "a cat", "positive"]
    ev_k = ["wic", "wic", "retrieval", "retrieval", "definition", "sentiment_binary"]
    out = majority_answer(train_t, train_k, ev_t, ev_k)
    assert out["answers"] == {"definition": "a cat", "retrieval": "D", "sentiment_binary": "", "wic": "yes"}
    assert out["per_task"]["wic"]["exact_match"] == 0.5 and out["per_task"]["retrieval"]["exact_match"] == 0.5
    assert out["per_task"]["definition"]["exact_match"] == 1.0  # tie "a cat" / "a dog": sorted order
    assert out["per_task"]["sentiment_binary"]["exact_match"] == 0.0
    assert out["exact_match"] == pytest.approx(3 / 6) and 0 < out["rougeL"] <= 1
    with pytest.raises(ValueError, match="differ in length"):
        majority_answer(["a"], [], ["a"], ["t"])


def test_majority_baseline_on_prepared_tasks(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rows = lambda labels: [{"text": f"t{i}", "label": y, "genre": "x", "doc_id": str(i)}  # noqa: E731
                           for i, y in enumerate(labels)]
    write_task("genre", {"train": rows([3, 3, 5]), "validation": rows([3]), "test": rows([3, 5, 5, 7])}, tmp_path)
    out = majority_baseline("genre", cache=tmp_path)
    assert out["majority_label"] == 3 and out["accuracy"] == 0.25 and out["task"] == "genre"
    mix = lambda pairs: [{"inputs": "q", "targets": t, "task": k} for t, k in pairs]  # noqa: E731
    write_task("mixture", {"train": mix([("B", "retrieval"), ("B", "retrieval"), ("no", "wic")]),
                           "validation": mix([("B", "retrieval")]),
                           "test": mix([("B", "retrieval"), ("C", "retrieval"), ("no", "wic")])}, tmp_path)
    out = majority_baseline("mixture", cache=tmp_path)
    assert out["answers"] == {"retrieval": "B", "wic": "no"} and out["exact_match"] == pytest.approx(2 / 3)
