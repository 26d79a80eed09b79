"""workbench.embed: normalised embeddings with each pooling, ranking, search, and clear errors on bad input."""

import jax
import numpy as np
import pytest

from workbench import adapt, embed, encoder
from workbench import config as C
from workbench.data import TASKS


class WordTokenizer:
    """Deterministic stand-in for the SentencePiece tokenizer: one id per word (ids >= 3), EOS 1, pad 0."""

    eos_id, pad_id, bos_id = 1, 0, 2

    def __init__(self, vocab_size=512):
        self.vocab_size = vocab_size

    def encode_batch(self, texts):
        return [[3 + sum(map(ord, w)) * 7919 % (self.vocab_size - 3) for w in t.split()] for t in texts]


TOK = WordTokenizer()
DEC = C.decoder_preset("tiny", num_layers=2)


def _spread(params):
    """Scale random kernels up so the tiny model's pooled vectors differ visibly between texts."""
    return jax.tree_util.tree_map(lambda x: 3 * x if x.ndim == 2 else x, params)


@pytest.fixture(scope="module", params=["mean", "first", "last", "attention"])
def model(request):
    cfg = C.EncoderOnlyConfig(encoder=DEC, pooling=request.param, pooling_heads=2)
    params = adapt.decoder_to_encoder_only(_spread(adapt.from_scratch(DEC, jax.random.key(0))), cfg,
                                           jax.random.key(1))
    return cfg, params


TEXTS = ["the river bank was muddy", "she deposited money at the bank", "a cat", "dogs bark at night",
         "the bank raised its interest rates again this year"]


def test_encode_shapes_norms_and_consistency(model):
    cfg, params = model
    v = embed.encode_texts(params, cfg, TOK, TEXTS, max_len=16, batch_size=2)
    assert v.shape == (len(TEXTS), DEC.embed_dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    # same vectors whatever the batch size (padding rows and batch composition do not leak in)
    np.testing.assert_allclose(v, embed.encode_texts(params, cfg, TOK, TEXTS, max_len=16, batch_size=32), atol=1e-5)
    # equal to encoder.embed on the documented layout (ids + EOS, right-padded), normalised
    ids = TOK.encode_batch(TEXTS[:1])[0] + [TOK.eos_id]
    row = np.zeros((1, 16), np.int32)
    row[0, : len(ids)] = ids
    ref = np.asarray(encoder.embed(params, cfg, row, row != 0))
    np.testing.assert_allclose(v[0], ref[0] / np.linalg.norm(ref[0]), atol=1e-5)
    assert not np.allclose(v[0], v[1], atol=1e-3)  # different texts, different vectors
    raw = embed.encode_texts(params, cfg, TOK, TEXTS, max_len=16, batch_size=2, normalized=False)
    np.testing.assert_allclose(embed.normalize(raw), v, atol=1e-5)


def test_rank_matches_brute_force_and_search_finds_itself():
    cfg = C.EncoderOnlyConfig(encoder=DEC, pooling="mean")
    params = adapt.decoder_to_encoder_only(_spread(adapt.from_scratch(DEC, jax.random.key(0))), cfg,
                                           jax.random.key(1))
    corpus = embed.encode_texts(params, cfg, TOK, TEXTS, max_len=16)
    idx, scores = embed.rank(corpus[[3, 0]], corpus, k=3)
    sims = corpus[[3, 0]] @ corpus.T
    np.testing.assert_array_equal(idx, np.argsort(-sims, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(scores, np.sort(sims, axis=1)[:, ::-1][:, :3], atol=1e-6)
    assert list(idx[:, 0]) == [3, 0] and np.all(np.diff(scores, axis=1) <= 1e-7)
    hits = embed.search(params, cfg, TOK, TEXTS[2], TEXTS, k=2, max_len=16)
    assert [h["rank"] for h in hits] == [1, 2] and hits[0]["index"] == 2 and hits[0]["text"] == TEXTS[2]
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    again = embed.search(params, cfg, TOK, TEXTS[2], TEXTS, k=2, max_len=16, corpus_vecs=corpus)
    assert [h["index"] for h in again] == [h["index"] for h in hits]


def test_rank_edge_cases():
    c = np.eye(3, dtype=np.float32)
    idx, scores = embed.rank(np.array([1.0, 0.0, 0.0]), c, k=10)  # 1-D query, k capped at corpus size
    assert idx.shape == (1, 3) and idx[0, 0] == 0 and scores[0, 0] == 1.0
    assert list(idx[0, 1:]) == [1, 2]  # tied zeros: lower index first
    with pytest.raises(ValueError, match="dimension mismatch"):
        embed.rank(np.ones((1, 4)), c)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        embed.rank(c, c, k=0)
    with pytest.raises(ValueError, match="nothing to rank"):
        embed.rank(np.zeros((0, 3)), c)


def test_bad_texts_give_clear_errors():
    cfg = C.EncoderOnlyConfig(encoder=DEC)
    params = encoder.init(cfg, jax.random.key(0))
    enc = lambda texts, **kw: embed.encode_texts(params, cfg, TOK, texts, max_len=8, **kw)  # noqa: E731
    with pytest.raises(ValueError, match="empty: nothing to encode"):
        enc([])
    with pytest.raises(ValueError, match=r"empty or whitespace-only text at index 1, 2"):
        enc(["fine", "", "   "])
    with pytest.raises(TypeError, match="single str"):
        enc("just one string")
    with pytest.raises(TypeError, match="must hold strings"):
        enc(["ok", 3])
    long_text = " ".join(f"w{i}" for i in range(20))
    with pytest.raises(ValueError, match=r"longer than max_len - 1 = 7 tokens \(index: length 1: 20\).*truncate"):
        enc(["short", long_text])
    # the documented truncation rule: the first max_len - 1 tokens, then EOS
    v = enc([long_text], overflow="truncate")
    first7 = " ".join(f"w{i}" for i in range(7))
    np.testing.assert_allclose(v, enc([first7]), atol=1e-6)
    with pytest.raises(ValueError, match="overflow must be one of"):
        enc(["a"], overflow="drop")
    with pytest.raises(ValueError, match="corpus_texts is empty"):
        embed.search(params, cfg, TOK, "query", [], k=3)
    with pytest.raises(ValueError, match="empty or whitespace-only"):
        embed.search(params, cfg, TOK, "", ["a doc"], k=3)


def test_check_labels():
    np.testing.assert_array_equal(embed.check_labels([0, 1, 1], "sentiment_binary"), [0, 1, 1])
    assert embed.check_labels(np.arange(15), TASKS["genre"]).dtype == np.int32
    with pytest.raises(ValueError, match=r"2 label\(s\) outside \{0, \.\.\., 1\} \(negative, positive\): "
                                         r"\[1\]=2, \[2\]=-1"):
        embed.check_labels([0, 2, -1], "sentiment_binary")
    with pytest.raises(ValueError, match="outside integers"):
        embed.check_labels([0.0, 0.5], "wic")
    with pytest.raises(ValueError, match=r"\{0, \.\.\., 14\}"):
        embed.check_labels([15], "genre")
    out = embed.check_labels([-3.5, 0.0, 4.0], "sentiment_regression")
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"outside the range \[-4, 4\]: \[1\]=5"):
        embed.check_labels([1.0, 5.0], "sentiment_regression")
    with pytest.raises(ValueError, match="finite"):
        embed.check_labels([np.nan], "sentiment_regression")
    embed.check_labels([0, 9], "retrieval", num_candidates=10)
    with pytest.raises(ValueError, match="candidate indices"):
        embed.check_labels([10], "retrieval", num_candidates=10)
    with pytest.raises(ValueError, match="num_candidates"):
        embed.check_labels([0], "retrieval")
    with pytest.raises(ValueError, match="non-empty"):
        embed.check_labels([], "wic")
    with pytest.raises(ValueError, match="numbers"):
        embed.check_labels(["pos"], "sentiment_binary")
    with pytest.raises(ValueError, match="classification, regression and ranking"):
        embed.check_labels([0], "definition")
    with pytest.raises(KeyError, match="unknown task"):
        embed.check_labels([0], "sst2")
