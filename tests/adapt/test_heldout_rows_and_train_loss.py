"""Held-out LM rows come from every corpus source; the training-set loss covers the whole training split."""

from __future__ import annotations

from collections import Counter

import jax
import numpy as np
import pytest

from workbench import config as C
from workbench import decoder, evaluate, objectives, recipes
from workbench.data.pipeline import lm_arrays


class WordIds:
    """Stub tokenizer: each whitespace word is an integer id; EOS 1."""

    eos_id = 1

    def encode_batch(self, texts):
        return [[int(w) for w in t.split()] for t in texts]


SOURCE_ID = {"speeches": 10, "fortunes": 11, "spam": 12, "novels": 13}


def _split():
    """Like the corpus validation split: long documents of one source first, then many short ones."""
    texts, sources = [" ".join(["10"] * 1500)] * 4, ["speeches"] * 4
    for i in range(60):
        s = ("fortunes", "spam", "novels")[i % 3]
        texts.append(" ".join([str(SOURCE_ID[s])] * (20 + i)))
        sources.append(s)
    return texts, sources


def _shares(rows: np.ndarray) -> dict[str, float]:
    c = Counter(int(t) for t in rows.ravel() if t > 1)
    total = sum(c.values())
    return {s: c[i] / total for s, i in SOURCE_ID.items()}


def test_heldout_rows_sample_across_sources():
    texts, sources = _split()
    old = lm_arrays(texts, WordIds(), 32)[:24]  # what the notebooks did: the split's first rows
    assert _shares(old)["speeches"] == 1.0
    rows = recipes.heldout_lm_rows(texts, sources, WordIds(), 32, 24, seed=0)
    assert rows.shape == (24, 32) and rows.dtype == np.int32 and (rows != 0).all()
    shares = _shares(rows)
    assert all(v > 0.1 for v in shares.values()) and shares["speeches"] < 0.5, shares
    np.testing.assert_array_equal(rows, recipes.heldout_lm_rows(texts, sources, WordIds(), 32, 24, seed=0))
    assert not np.array_equal(rows, recipes.heldout_lm_rows(texts, sources, WordIds(), 32, 24, seed=1))


def test_heldout_rows_cap_grows_only_as_needed():
    texts, sources = _split()
    speech = lambda rows: int((rows == 10).sum())  # noqa: E731  (tokens of the 4 long documents)
    small = recipes.heldout_lm_rows(texts, sources, WordIds(), 32, 24)
    assert speech(small) <= 4 * 32  # default cap: one row's worth per document
    many = recipes.heldout_lm_rows(texts, sources, WordIds(), 32, 150)  # needs more of the long documents
    assert many.shape == (150, 32) and speech(many) > 4 * 32
    with pytest.raises(ValueError, match="rows of 32 tokens"):
        recipes.heldout_lm_rows(texts, sources, WordIds(), 32, 10_000)
    with pytest.raises(ValueError, match="at most 8 tokens"):
        recipes.heldout_lm_rows(texts, sources, WordIds(), 32, 100, max_doc_tokens=8)


def test_train_set_loss_is_the_token_weighted_mean_over_the_split():
    cfg = C.decoder_preset("tiny")
    params = decoder.init(cfg, jax.random.key(0))
    rng = np.random.default_rng(0)
    toks = rng.integers(3, 500, size=(11, 12)).astype(np.int32)
    for i, n in enumerate(rng.integers(3, 12, size=11)):  # rows of different lengths: per-batch means differ
        toks[i, n:] = 0
    loss_fn = objectives.causal_lm_loss(cfg)
    whole = float(loss_fn(params, {"tokens": toks})[0])  # one batch of every row = the token-weighted mean
    out = recipes.train_set_loss(loss_fn, params, {"tokens": toks}, batch_size=4)
    assert out["loss"] == pytest.approx(whole, abs=1e-5)
    assert out["tokens"] == float((toks[:, 1:] != 0).sum())
    last_batch = float(loss_fn(params, {"tokens": toks[8:]})[0])  # what `history[-1]["loss"]` reports
    batch_means = np.mean([float(loss_fn(params, {"tokens": toks[i:i + 4]})[0]) for i in range(0, 11, 4)])
    assert abs(out["loss"] - last_batch) > 1e-4 and abs(out["loss"] - batch_means) > 1e-5
    assert out == evaluate.eval_loss(loss_fn, params, {"tokens": toks}, 4)
