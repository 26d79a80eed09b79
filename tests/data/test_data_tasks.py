import json
from collections import Counter, defaultdict

import pytest

from workbench.data import wordnet as W
from workbench.data.tasks import (
    SPLITS,
    TASKS,
    build_definition,
    build_genre,
    build_mixture,
    build_retrieval,
    build_sentiment,
    build_wic,
    format_text_to_text,
    load_task,
    read_vader,
    task_card,
    write_task,
)


@pytest.fixture
def wn(wordnet_dir):
    synsets = W.load_wordnet(wordnet_dir)
    insts = list(W.instances(synsets, W.load_exceptions(wordnet_dir)))
    return synsets, insts


def test_parse_real_wordnet_line():
    line = (
        "00217593 04 n 01 kill 1 002 @ 00217014 n 0000 + 00355365 v 0101 | the destruction of an enemy plane "
        'or ship or tank or missile; "the pilot reported two kills during the mission"  '
    )
    s = W.parse_data_line(line)
    assert s.id == "n00217593" and s.lemmas == ["kill"] and s.pointers[0] == ("@", "n00217014")
    assert s.definition == "the destruction of an enemy plane or ship or tank or missile"
    assert s.examples == ["the pilot reported two kills during the mission"]


def test_find_target_inflections():
    assert W.find_target("two words were here", "word") == (4, 9)
    assert W.find_target("he ran home", "run", {"run": {"ran"}}) == (3, 6)
    assert W.find_target("they are running late", "run") == (9, 16)
    assert W.find_target("an ice cream cone", "ice_cream") == (3, 12)
    assert W.find_target("swordfish", "word") is None


def test_instances(wn):
    synsets, insts = wn
    assert len(synsets) == 92
    assert {i["sentence"] for i in insts if i["lemma"] == "run"} == {
        "he ran home",
        "they are running late",
        "she runs a shop",
        "he ran the company",
    }
    for i in insts:
        assert i["sentence"][i["start"] : i["end"]].lower()[0] == i["lemma"][0]


def test_wic_balanced_unrelated_and_split_by_word(wn):
    synsets, insts = wn
    out = build_wic(synsets, insts, max_pairs_per_word=2)
    words = {s: {r["word"] for r in out[s]} for s in SPLITS}
    assert all(words[s] for s in SPLITS)
    assert not (
        words["train"] & words["validation"] or words["train"] & words["test"] or words["validation"] & words["test"]
    )
    per_word = defaultdict(Counter)
    for s in SPLITS:
        for r in out[s]:
            per_word[r["word"]][r["label"]] += 1
            assert (r["synset_a"] == r["synset_b"]) == (r["label"] == 1)
            assert not W.related(synsets[r["synset_a"]], synsets[r["synset_b"]]) or r["label"] == 1
            assert r["text_a"][r["start_a"] : r["end_a"]].lower()[0] == r["word"][0]
    assert all(c[0] == c[1] for c in per_word.values())
    assert out == build_wic(synsets, insts, max_pairs_per_word=2)  # deterministic


def test_definition_and_retrieval_split_by_synset(wn):
    synsets, insts = wn
    d = build_definition(synsets, insts)
    syn = {s: {r["synset"] for r in d[s]} for s in SPLITS}
    assert not (syn["train"] & syn["test"] or syn["train"] & syn["validation"] or syn["validation"] & syn["test"])
    assert all(r["targets"] == synsets[r["synset"]].definition for s in SPLITS for r in d[s])
    r, corpus = build_retrieval(synsets, insts, n_candidates=5)
    assert len(corpus) == len(synsets)
    pos = {s: {x["positive_id"] for x in r[s]} for s in SPLITS}
    assert not (pos["train"] & pos["test"] or pos["train"] & pos["validation"])
    for s in SPLITS:
        for x in r[s]:
            assert len(x["candidates"]) == 5 == len(set(x["candidates"]))
            assert x["candidate_ids"][x["label"]] == x["positive_id"]
            assert x["candidates"][x["label"]] == synsets[x["positive_id"]].definition
            assert x["sentence"] not in x["candidates"]
            # hard negatives: the word's other senses are candidates
            word_senses = {sid for sid, s_ in synsets.items() if x["word"] in s_.lemmas}
            assert word_senses <= set(x["candidate_ids"])


def test_sentiment(vader_dir):
    rows = read_vader(vader_dir)
    assert len(rows) == 119 + 87 and rows[0]["domain"] == "tweets"
    binary, reg = build_sentiment(rows)
    groups = {s: {r["id"].rsplit("_", 1)[0] for r in reg[s] if r["domain"] == "amazon"} for s in SPLITS}
    assert not (groups["train"] & groups["test"])
    assert sum(len(v) for v in reg.values()) == len(rows)
    assert all(abs(r["label"]) >= 0.5 for s in SPLITS for r in reg[s] if r["id"] in {b["id"] for b in binary[s]})
    assert all(isinstance(r["label"], int) for r in binary["train"])


def test_vader_bad_line_names_file(tmp_path):
    (tmp_path / "tweets_GroundTruth.txt").write_text("1\t0.5\tok\n2\tnot-a-number\ttext\n")
    with pytest.raises(Exception, match=r"tweets_GroundTruth.txt:2"):
        read_vader(tmp_path)


def test_genre_split_by_document():
    docs = [
        {"doc_id": f"brown/c{g[0]}{i:02d}", "genre": g, "sentences": [f"S{j} of {g}." for j in range(12)]}
        for g in ("news", "humor")
        for i in range(10)
    ]
    from workbench.data.corpus import brown_doc_split

    out = build_genre(docs, brown_doc_split(docs), sentences_per_example=5)
    ids = {s: {r["doc_id"] for r in out[s]} for s in SPLITS}
    assert not (ids["train"] & ids["test"] or ids["train"] & ids["validation"])
    assert {r["genre"] for r in out["test"]} == {"news", "humor"}
    assert sum(len(v) for v in out.values()) == 20 * 2


def test_mixture_and_formatting(wn, vader_dir, tmp_path, monkeypatch):
    synsets, insts = wn
    binary, reg = build_sentiment(read_vader(vader_dir))
    parts = {
        "sentiment_binary": binary,
        "sentiment_regression": reg,
        "wic": build_wic(synsets, insts),
        "definition": build_definition(synsets, insts),
        "retrieval": build_retrieval(synsets, insts)[0],
    }
    mix = build_mixture(parts, caps={"train": 20, "validation": 5, "test": 5})
    assert {r["task"] for r in mix["train"]} == set(parts)
    assert all(r["inputs"] and r["targets"] for s in SPLITS for r in mix[s])
    ex = format_text_to_text({"word": "bank", "text_a": "a", "text_b": "b", "label": 1}, "wic", template=0)
    assert ex["targets"] == "yes" and '"bank"' in ex["inputs"]
    # storage + loading through datasets, deterministic bytes
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    write_task("wic", parts["wic"], cache=tmp_path)
    first = (tmp_path / "tasks/wic/train.jsonl").read_bytes()
    write_task("wic", build_wic(synsets, insts), cache=tmp_path)
    assert (tmp_path / "tasks/wic/train.jsonl").read_bytes() == first
    ds = load_task("wic", cache=tmp_path)
    assert set(ds) == set(SPLITS) and ds["train"].num_rows == len(parts["wic"]["train"])
    card = task_card("wic", cache=tmp_path)
    assert "WiC" in card and "Prepared sizes" in card
    assert json.loads((tmp_path / "tasks/wic/info.json").read_text())["kind"] == "classification"


def test_every_task_has_card_and_metadata():
    for name, meta in TASKS.items():
        assert meta["kind"] in {"classification", "regression", "seq2seq", "ranking"}
        card = task_card(name, cache="/nonexistent")
        for word in ("Source", "License", "Construction", "Caveats"):
            assert word in card, (name, word)
