"""Batch functions are deterministic per step; evaluation helpers compute the documented metrics."""

import jax
import numpy as np
import pytest

from workbench import config as C
from workbench import decoder, encdec, evaluate, objectives, recipes
from workbench.data.pipeline import UL2_MIXTURE


def test_row_batches_deterministic_and_cover_epoch():
    data = {"tokens": np.arange(40).reshape(10, 4), "labels": np.arange(10)}
    get = recipes.row_batches(data, 5, seed=3)
    a, b = get(1), recipes.row_batches(data, 5, seed=3)(1)
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    epoch = np.concatenate([get(0)["labels"], get(1)["labels"]])
    assert sorted(epoch) == list(range(10))
    np.testing.assert_array_equal(a["tokens"][:, 0] // 4, a["labels"])
    with pytest.raises(ValueError, match="not enough data"):
        recipes.row_batches(np.zeros((3, 4)), 5)


def test_ul2_batches_use_mode_tokens_and_sentinels():
    toks = np.random.default_rng(0).integers(200, 300, size=(16, 64)).astype(np.int32)
    sentinels, modes = list(range(4, 104)), {"[NLU]": 104, "[NLG]": 105, "[S2S]": 106}
    get = recipes.ul2_batches(toks, 8, sentinels, modes, seed=1, mixture=UL2_MIXTURE)
    b = get(0)
    np.testing.assert_array_equal(b["inputs"], get(0)["inputs"])
    assert set(b["inputs"][:, 0]) <= {104, 105, 106}
    assert b["inputs"].shape == (8, 65) and b["targets"].shape == (8, 65)
    assert all(1 in row for row in b["targets"])  # every target ends with EOS


def test_eval_loss_matches_loss_fn_and_ignores_filler_rows():
    cfg = C.decoder_preset("tiny")
    params = decoder.init(cfg, jax.random.key(0))
    toks = np.random.default_rng(0).integers(3, 500, size=(5, 12)).astype(np.int32)
    loss_fn = objectives.causal_lm_loss(cfg)
    full = loss_fn(params, {"tokens": toks})[0]
    ev = evaluate.eval_loss(loss_fn, params, {"tokens": toks}, batch_size=4)  # 4 + 1 real rows, 3 filler
    assert abs(ev["loss"] - float(full)) < 1e-5 and ev["tokens"] == 5 * 11
    assert abs(ev["perplexity"] - np.exp(ev["loss"])) < 1e-6
    with pytest.raises(ValueError, match="empty"):
        evaluate.eval_loss(loss_fn, params, {"tokens": toks[:0]})


@pytest.mark.parametrize("kind", ["encdec", "decoder"])
def test_rank_classify_is_each_candidates_summed_log_likelihood(kind):
    """Row i, candidate c: minus the loss factory's CE of that single (input, candidate) pair times its target
    tokens; filler rows of the last batch change nothing; the argmax picks a planted most likely candidate."""
    rng = np.random.default_rng(0)
    if kind == "encdec":
        cfg = C.encdec_preset("tiny-tiny")
        params, loss_fn = encdec.init(cfg, jax.random.key(0)), objectives.encdec_seq2seq_loss(cfg)
    else:
        cfg = C.decoder_preset("tiny")
        params, loss_fn = decoder.init(cfg, jax.random.key(0)), objectives.decoder_seq2seq_loss(cfg)
    inputs = rng.integers(3, 500, size=(5, 10)).astype(np.int32)
    inputs[1, 7:] = 0  # padded prompt
    cands = np.zeros((3, 4), np.int32)
    cands[0, :2], cands[1, :3], cands[2, :1] = [7, 1], [9, 8, 1], [1]
    ll = evaluate.rank_classify(loss_fn, params, inputs, cands, batch_size=4)
    assert ll.shape == (5, 3)
    for i in (0, 1, 4):
        for c in range(3):
            loss, m = loss_fn(params, {"inputs": inputs[i:i + 1], "targets": cands[c:c + 1]})
            assert abs(ll[i, c] - float(-loss * m["tokens"])) < 1e-4
    assert np.all(ll < 0)
    with pytest.raises(ValueError, match="candidates"):
        evaluate.rank_classify(loss_fn, params, inputs, cands[:0])


def test_eval_loss_and_predict_compile_once_per_function():
    cfg = C.decoder_preset("tiny")
    p0, p1 = decoder.init(cfg, jax.random.key(0)), decoder.init(cfg, jax.random.key(1))
    toks = np.random.default_rng(1).integers(3, 500, size=(6, 12)).astype(np.int32)
    inner, traces = objectives.causal_lm_loss(cfg), []

    def loss_fn(params, batch):
        traces.append(1)  # Python side effect: runs only while JAX traces
        return inner(params, batch)

    a = evaluate.eval_loss(loss_fn, p0, {"tokens": toks}, batch_size=4)
    b = evaluate.eval_loss(loss_fn, p1, {"tokens": toks}, batch_size=4)  # new params, same program
    assert len(traces) == 1
    assert a["loss"] != b["loss"] and abs(b["loss"] - float(inner(p1, {"tokens": toks})[0])) < 1e-5
    other = evaluate.eval_loss(lambda p, x: loss_fn(p, x), p0, {"tokens": toks}, batch_size=4)
    assert len(traces) == 2 and other["loss"] == a["loss"]  # another function object compiles its own program

    calls = []

    def logits(params, batch):
        calls.append(1)
        return decoder.forward(params, cfg, batch["tokens"])[:, -1]

    first = evaluate.predict(logits, p0, {"tokens": toks}, batch_size=4)
    second = evaluate.predict(logits, p1, {"tokens": toks}, batch_size=4)
    assert len(calls) == 1 and first.shape == second.shape == (6, cfg.vocab_size)
    assert not np.allclose(first, second)


def test_metrics():
    m = evaluate.classification_metrics(np.array([[2.0, 1], [0, 1], [0, 1], [1, 0]]), np.array([0, 1, 0, 1]))
    assert m["accuracy"] == 0.5 and abs(m["f1"] - 0.5) < 1e-9
    r = evaluate.regression_metrics(np.array([1.0, 2, 3]), np.array([2.0, 4, 6.5]))
    assert r["pearson"] > 0.99 and r["spearman"] == 1.0
    k = evaluate.ranking_metrics(np.array([[0.1, 0.9, 0.5], [0.6, 0.7, 0.5], [0.9, 0.8, 0.7]]), np.array([1, 0, 2]))
    assert k["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3) and k["recall@1"] == pytest.approx(1 / 3)
    assert evaluate.ranking_metrics(np.array([[0.9, 0.8, 0.7]]), np.array([2]), k=2)["mrr@2"] == 0.0
    t = evaluate.text_metrics(["A cat", "dog runs"], ["a  cat", "the dog"])
    assert t["exact_match"] == 0.5 and 0 < t["rougeL"] < 1
