"""Checks on the real prepared data; skipped unless `workbench data prepare` has run."""

import json

import pytest

from workbench.data import cache_dir

SUMMARY = cache_dir() / "prepare_summary.json"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SUMMARY.is_file(), reason="real data not prepared (workbench data prepare)"),
]

MIN_SIZES = {
    "sentiment_binary": 10_000,
    "sentiment_regression": 15_000,
    "wic": 5_000,
    "definition": 30_000,
    "retrieval": 25_000,
    "genre": 7_000,
    "mixture": 10_000,
}


def test_real_tasks_sizes_and_leakage():
    from workbench.data import load_task

    summary = json.loads(SUMMARY.read_text())
    for name, n_train in MIN_SIZES.items():
        sizes = summary["tasks"].get(name)
        if not isinstance(sizes, dict):
            pytest.skip(f"{name} not built: {sizes}")
        assert sizes["train"] >= n_train and sizes["validation"] > 0 and sizes["test"] > 0
    wic = load_task("wic")
    words = [set(wic[s]["word"]) for s in ("train", "validation", "test")]
    assert not (words[0] & words[1] or words[0] & words[2] or words[1] & words[2])
    genre = load_task("genre")
    docs = [set(genre[s]["doc_id"]) for s in ("train", "validation", "test")]
    assert not (docs[0] & docs[2]) and len(set(genre["test"]["label"])) == 15


def test_real_corpus_and_tokenizer():
    from workbench.data import load_corpus, load_tokenizer

    summary = json.loads(SUMMARY.read_text())
    assert summary["corpus"]["train"]["mb"] > 20 and summary["corpus"]["train"]["tokens"] > 5_000_000
    corpus = load_corpus()
    assert set(corpus) == {"train", "validation"}
    assert not set(corpus["train"]["doc_id"]) & set(corpus["validation"]["doc_id"])
    tok = load_tokenizer()
    assert tok.vocab_size == 8192 and (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    assert len(tok.sentinel_ids) == 100 and set(tok.mode_ids) == {"[NLU]", "[NLG]", "[S2S]"}
