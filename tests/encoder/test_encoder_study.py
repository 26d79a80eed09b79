"""workbench.encoder_study: task subsets, length-bucketed evaluation, resumable runs, paired claims, the design."""

import jax
import numpy as np
import pytest

from workbench import adapt, encoder, evaluate
from workbench import config as C
from workbench import encoder_study as es
from workbench.data import load_task, load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def DEC(tok):
    return C.decoder_preset("tiny", num_layers=2, vocab_size=len(tok))


@pytest.fixture(scope="module")
def data(tok):
    return {"sentiment_binary": es.task_data("sentiment_binary", tok, n_train=24, n_test=20, max_len=24),
            "retrieval": es.task_data("retrieval", tok, n_train=6, n_test=5, max_len=24, candidates=3)}


def test_task_data_is_a_fixed_bos_prefixed_subset(tok, data):
    d = data["sentiment_binary"]
    assert d["kind"] == "classification" and d["num_labels"] == 2
    assert d["train"]["tokens"].shape == (24, 24) and d["test"]["tokens"].shape == (20, 24)
    assert (d["train"]["tokens"][:, 0] == tok.bos_id).all()
    again = es.task_data("sentiment_binary", tok, n_train=24, n_test=20, max_len=24)
    np.testing.assert_array_equal(again["test"]["tokens"], d["test"]["tokens"])
    other = es.task_data("sentiment_binary", tok, n_train=24, n_test=20, max_len=24, seed=1)
    assert not np.array_equal(other["test"]["tokens"], d["test"]["tokens"])
    texts = es.task_texts("sentiment_binary", n_train=24, n_test=20)
    assert len(texts) == 44 and all(isinstance(t, str) for t in texts)
    with pytest.raises(ValueError, match="unknown task"):
        es.task_data("no_such_task", tok, n_train=2, n_test=2, max_len=8)


def test_cut_candidates_keeps_the_positive():
    full = es.subset(load_task("retrieval")["test"], 30, 0)
    cut = es._cut_candidates(full, 3)
    for row, new in zip(full, cut, strict=True):
        assert len(new["candidates"]) == 3
        assert new["candidates"][new["label"]] == row["candidates"][row["label"]]
        assert set(new["candidates"]) <= set(row["candidates"])
    with pytest.raises(ValueError, match="only"):
        es._cut_candidates(full, 99)


def test_chance_levels(data):
    d = data["retrieval"]
    assert d["test"]["tokens"].shape[:2] == (5, 3)
    assert es.chance(d) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    s = data["sentiment_binary"]
    majority = np.bincount(s["train"]["labels"]).argmax()
    assert es.chance(s) == pytest.approx(np.mean(s["test"]["labels"] == majority))
    assert es.chance({"kind": "regression", "train": {}, "test": {}}) == 0.0


@pytest.mark.parametrize("pooling", ["mean", "last", "attention"])
def test_bucketed_predict_equals_full_width(data, pooling, DEC):
    """Cutting right padding per length bucket does not change any output (classification and ranking)."""
    for task, kind in (("sentiment_binary", "classification"), ("retrieval", "ranking")):
        cfg = C.EncoderOnlyConfig(encoder=DEC, pooling=pooling, pooling_heads=2, task=kind)
        params = adapt.decoder_to_encoder_only(adapt.from_scratch(DEC, jax.random.key(0)), cfg, jax.random.key(1))
        params = jax.tree.map(lambda x: x + 0.05, params)  # a non-zero head

        def fn(p, b, cfg=cfg):
            t = b["tokens"]
            flat = t.reshape(-1, t.shape[-1])
            out = encoder.forward(p, cfg, flat, flat != 0)
            return out.reshape(*t.shape[:-1], *out.shape[1:])

        tokens = data[task]["test"]["tokens"]
        full = evaluate.predict(fn, params, {"tokens": tokens}, 4)
        got = es.bucketed_predict(fn, params, tokens, 8)
        np.testing.assert_allclose(got, full, atol=1e-5, rtol=1e-5)
        assert len(np.unique(es._lengths(tokens))) > 1  # several buckets really were used


def test_variant_and_design_validation():
    with pytest.raises(ValueError, match="attention"):
        es.Variant(attention="sideways")
    with pytest.raises(ValueError, match="pooling"):
        es.Variant(pooling="max")
    with pytest.raises(ValueError, match="dropout"):
        es.Variant(dropout=1.0)
    plan = es.design({"attention": "bidirectional", "pooling": "mean", "dropout": 0.1},
                     {"t": [{"attention": "causal"}, {"pooling": "attention"}, {"dropout": 0.0}]})
    assert list(plan["t"]) == ["default", "attention_causal", "pooling_attention", "dropout_0"]
    assert plan["t"]["dropout_0"] == es.Variant(dropout=0.0)
    with pytest.raises(ValueError, match="exactly one knob"):
        es.design({}, {"t": [{"attention": "causal", "dropout": 0.0}]})
    with pytest.raises(ValueError, match="equals the default"):
        es.design({}, {"t": [{"pooling": "mean"}]})


def test_study_runs_pairs_and_resumes(data, tmp_path, monkeypatch, DEC):
    kw = dict(learning_rate=1e-3, batch_size={"sentiment_binary": 8, "retrieval": 2}, eval_rows=8, store=tmp_path)
    study = es.Study(DEC, adapt.from_scratch(DEC, jax.random.key(0)), data, **kw)
    assert study.updates("sentiment_binary") == 3 and study.updates("retrieval") == 3  # one epoch
    plan = es.design({}, {"sentiment_binary": [{"attention": "causal"}], "retrieval": [{"attention": "causal"}]})
    frame = es.run_design(study, plan, [0, 1], log=None)
    assert len(frame) == 8 and set(frame["seed"]) == {0, 1}
    m = study.run("sentiment_binary", es.Variant(), 0)
    assert m["score"] == m["accuracy"] and m["steps"] == 3 and m["train_flops"] > 0
    assert m["score_lo"] <= m["score"] <= m["score_hi"] and m["score_hi"] - m["score_lo"] > 0.05  # 20 test rows
    assert {"mrr@10", "recall@1"} <= set(study.run("retrieval", es.Variant(), 1))
    a, b = es.Variant(), es.Variant(attention="causal")
    pair = study.paired("sentiment_binary", a, b, [0, 1])
    assert pair["values"] == pytest.approx([x - y for x, y in zip(pair["a"], pair["b"], strict=True)])
    claims = es.claims(study, plan, [0, 1], {"sentiment_binary": 0.5})
    assert set(claims["sentiment_binary"]) == {"attention_causal", "beats_tfidf"}
    assert claims["sentiment_binary"]["beats_tfidf"]["values"] == pytest.approx([x - 0.5 for x in pair["a"]])
    with pytest.raises(ValueError, match="vocabulary"):
        es.Study(DEC.replace(vocab_size=16), study.params, data)
    use = study.utilisation(1e6)
    assert 0 < use["fraction_in_steps"] < 1 and use["train_flops_per_s"] > 0
    assert len(list(tmp_path.glob("*.json"))) == 8  # every finished run is stored
    # a new study over the same store resumes: nothing is trained again
    monkeypatch.setattr(es, "train", lambda *a, **k: pytest.fail("a stored run was trained again"))
    again = es.Study(DEC, adapt.from_scratch(DEC, jax.random.key(0)), data, **kw)
    assert again.run("sentiment_binary", es.Variant(), 0) == m


def test_custom_init_fixed_steps_and_kept_params(data, DEC):
    """`init` replaces the decoder initialisation (here: random weights), `steps` fixes the updates, `keep` holds
    the finetuned parameters (and trains a cached run again to get them)."""
    calls = []

    def init(cfg, key):
        calls.append(cfg.causal)
        return adapt.from_scratch(cfg, key)

    study = es.Study(DEC, None, data, init=init, steps=2, learning_rate=1e-3, batch_size=8, eval_rows=8)
    assert study.updates("sentiment_binary") == 2 and study.updates("retrieval") == 2
    m = study.run("sentiment_binary", es.Variant(attention="causal"), 0)
    assert m["steps"] == 2 and calls == [True] and not study.kept
    again = study.run("sentiment_binary", es.Variant(attention="causal"), 0, keep=True)
    assert calls == [True, True] and again["steps"] == 2
    params = study.kept[("sentiment_binary", es.Variant(attention="causal"), 0)]
    assert set(params) >= {"encoder"}
    study.run("sentiment_binary", es.Variant(attention="causal"), 0, keep=True)
    assert len(calls) == 2  # held: not trained a third time


def test_epochs_per_task(data, DEC):
    """`epochs` may be given per task (updates follow each task's own), and must name every task, each > 0."""
    kw = dict(learning_rate=1e-3, batch_size={"sentiment_binary": 8, "retrieval": 2}, eval_rows=8)
    study = es.Study(DEC, None, data, epochs={"sentiment_binary": 3, "retrieval": 1}, **kw)
    assert study.updates("sentiment_binary") == 9 and study.updates("retrieval") == 3
    assert study.task_epochs("sentiment_binary") == 3.0
    with pytest.raises(ValueError, match="retrieval"):
        es.Study(DEC, None, data, epochs={"sentiment_binary": 3}, **kw)
    with pytest.raises(ValueError, match="epochs > 0"):
        es.Study(DEC, None, data, epochs={"sentiment_binary": 3, "retrieval": 0}, **kw)
